"""Benchmark the mock issuer: start-up time and tokens minted per second next to raw pyjwt in the same run."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jwt
from makrx_contracts.harness.issuer import Issuer


def start_once(seed: int | None, algorithm: str, **kwargs: object) -> tuple[float, float]:
    """Seconds for ``Issuer(...).start()``, and for start plus the first token."""
    t0 = time.perf_counter()
    issuer = Issuer(seed=seed, algorithm=algorithm, warm=False, **kwargs).start()
    t1 = time.perf_counter()
    issuer.mint(audience="bench-api", user=issuer.user(0))
    t2 = time.perf_counter()
    issuer.stop()
    return t1 - t0, t2 - t0


def paired_rates(a, b, seconds: float, batch: int = 25) -> tuple[float, float]:
    """Calls per second of ``a`` and ``b``, timed in alternating small batches over about ``seconds``,
    so both see the same machine load (other processes on a small CI box move single-shot figures a lot)."""
    spent_a = spent_b = 0.0
    n = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for _ in range(batch):
            a()
        t1 = time.perf_counter()
        for _ in range(batch):
            b()
        t2 = time.perf_counter()
        spent_a += t1 - t0
        spent_b += t2 - t1
        n += batch
    return n / spent_a, n / spent_b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="repetitions; medians are printed (default: %(default)s)")
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="duration of each rate measurement (default: %(default)s)"
    )
    parser.add_argument("--algorithm", choices=["RS256", "ES256"], default="RS256")
    args = parser.parse_args()

    # The first issuer of a process pays the one-off faker import and makes its first key (keys are made on
    # first use, once per process and seed); later issuers of the same seed reuse them.
    first_start, first_token = start_once(0, args.algorithm)
    starts, firsts = zip(*(start_once(0, args.algorithm) for _ in range(args.runs)), strict=True)
    new_seed = [start_once(10_000 + i, args.algorithm) for i in range(args.runs)]
    random_keys = [start_once(None, args.algorithm) for _ in range(args.runs)]

    with Issuer(seed=0, algorithm=args.algorithm).start() as issuer:
        key = issuer.keys.active
        user = issuer.user(0)
        claims = issuer.claims(audience="bench-api", roles=("user",), client_roles={"bench-api": ["admin"]}, user=user)
        headers = {"kid": key.kid}

        def ours() -> None:
            issuer.mint(audience="bench-api", roles=("user",), client_roles={"bench-api": ["admin"]}, user=user)

        def raw() -> None:
            jwt.encode(claims, key.private_key, algorithm=args.algorithm, headers=headers)

        ours(), raw()
        ours_rates, raw_rates, ratios = [], [], []
        for _ in range(args.runs):
            o, r = paired_rates(ours, raw, args.seconds)
            ours_rates.append(o)
            raw_rates.append(r)
            ratios.append(o / r)

    med = statistics.median
    print(f"makrx issuer benchmark ({args.algorithm}, {args.runs} runs, medians; Python {sys.version.split()[0]})")
    print(f"  start-up  Issuer(...).start()            {med(starts) * 1000:8.2f} ms   (goal <= 300 ms)")
    print(f"  start-up + first token                   {med(firsts) * 1000:8.2f} ms")
    print(
        f"  first start + first token in a process   {first_start * 1000:8.2f} ms"
        f" + {(first_token - first_start) * 1000:.0f} ms (one-off faker import and first key)"
    )
    print(
        f"  start-up, then first token, new seed     {med(t for t, _ in new_seed) * 1000:8.2f} ms"
        f" + {med(f - t for t, f in new_seed) * 1000:.0f} ms   (its signing key made on first use)"
    )
    print(
        f"  start-up, then first token, seed=None    {med(t for t, _ in random_keys) * 1000:8.2f} ms"
        f" + {med(f - t for t, f in random_keys) * 1000:.0f} ms   (a fresh key per issuer)"
    )
    print(
        f"  mint      issuer.mint(...)               {med(ours_rates):8.0f} tokens/s (fresh Keycloak claims each call)"
    )
    print(f"  raw       jwt.encode(same claims, key)   {med(raw_rates):8.0f} tokens/s")
    print(f"  ratio     mint / raw pyjwt               {med(ratios):8.3f}      (goal >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
