"""``replay --rotate``: a key rotation of a running issuer, each step judged against a backend that trusts it
(AUTH-KEY-ROTATION, AUTH-KEY-RETIRED)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, TextIO

from makrx_contracts.harness.issuer.backend_env import JWKS_TTL_SECONDS

from .remote import DEFAULT_ISSUER, Answer, Backend
from .replay import RATE_LIMITED, Session, exit_code, open_session, print_table

__all__ = ["Step", "rotate"]

POLL_SECONDS: Final = 0.2
SETTLE_EXTRA: Final = 3.0  # as contracts/lab.py: past the JWKS TTL, a cached JWKS expires and a refetch cooldown passes


@dataclass(frozen=True)
class Step:
    """One check of the rotation; ``ok`` None when it could not be judged."""

    name: str
    level: str
    contract: str
    expected: str
    got: str
    ok: bool | None
    why: str = ""


def _poll(
    backend: Backend, token: str, good: Callable[[int | None], bool], seconds: float, what: str
) -> tuple[Answer, float]:
    """Send ``token`` until ``good(status)`` or ``seconds`` pass (at least once; a 429 ends it, as more requests
    only prolong the limit): the last answer, and when."""
    started = time.monotonic()
    while True:
        answer = backend.send(token, what=what)
        elapsed = time.monotonic() - started
        if good(answer.status) or answer.status == 429 or elapsed + POLL_SECONDS >= seconds:
            return answer, elapsed
        time.sleep(POLL_SECONDS)


def _accepted(status: int | None) -> bool:
    """Past authentication: not 401/403, not rate-limited, not a crash (a 404 or 422 after auth counts)."""
    return status is not None and status < 500 and status not in (401, 403, 429)


def _got(answer: Answer, took: float | None = None) -> str:
    got = str(answer.status) if answer.status is not None else answer.error
    return got if took is None else f"{got} after {took:.1f} s"


def _step(
    name: str, level: str, contract: str, expected: str, answer: Answer, took: float | None, ok: bool, why: str
) -> Step:
    """A judged step; ``why`` (for a failure) gives way to what a rate limit or a missing answer says."""
    if answer.status == 429:
        why = RATE_LIMITED
    elif answer.status is None:
        why = f"no answer: {answer.error}"
    return Step(name, level, contract, expected, _got(answer, took), ok, why)


def rotate(
    backend_url: str,
    *,
    method: str = "GET",
    issuer_url: str = DEFAULT_ISSUER,
    audience: str | None = None,
    ttl: float = JWKS_TTL_SECONDS,
    strict: bool = False,
    out: TextIO,
) -> int:
    """Rotate the issuer's keys as Keycloak does (publish the next key, promote it, retire the old one) and check
    the backend follows each step without a restart, as AUTH-KEY-ROTATION and AUTH-KEY-RETIRED do; then restore
    the keys. ``ttl``: the backend's JWKS cache TTL (its KEYCLOAK_PK_TTL_SECONDS), which bounds every wait."""
    settle = ttl + SETTLE_EXTRA
    with open_session(backend_url, method, issuer_url, audience, out) as session:
        issuer, backend = session.issuer, session.backend
        if [k["state"] for k in issuer.keys() if k["use"] == "sig"] != ["active"]:  # noqa: SIM118 (a client call)
            issuer.reset_keys()  # a next key already published would make "publish" fail
            print("the issuer's keys were rotated before: reset to one active key first", file=out)
        session.start()
        print(f"rotating the keys of {issuer_url} (backend JWKS TTL {ttl:g} s, as --ttl says)", file=out)
        widths = (13, 6, 48, 16, 4)
        print_table(out, [("step", "level", "expected", "got", "verdict")], widths)
        steps: list[Step] = []
        try:
            for step in _rotation(session, ttl):
                steps.append(step)
                verdict = "skip" if step.ok is None else "ok" if step.ok else "FAIL"
                print_table(out, [(step.name, step.level, step.expected, step.got, verdict)], widths)
                out.flush()
        finally:
            issuer.reset_keys()
        answer, took = _poll(backend, session.valid().token, _accepted, settle, "a valid token after the restore")
        restored = "accepted again" if _accepted(answer.status) else f"refused: {_got(answer, took)}"
        print(f"keys restored (POST /admin/keys/reset): a valid token is {restored}", file=out)
        failed = [s for s in steps if s.ok is False]
        for step in failed:
            print(f"\nFAIL {step.name} ({step.level}, {step.contract}): {step.why}", file=out)
        skipped = [s for s in steps if s.ok is None]
        for step in skipped:
            print(f"\nnot judged: {step.name}: {step.why}", file=out)
        print(
            f"{len(steps)} steps: {sum(s.ok is True for s in steps)} ok, {len(failed)} FAIL"
            + (f", {len(skipped)} not judged" if skipped else ""),
            file=out,
        )
        return exit_code([s.level for s in failed], strict, out)


def _rotation(session: Session, ttl: float) -> Iterator[Step]:
    """Each step's check as it happens; the caller restores the keys."""
    issuer, backend, settle = session.issuer, session.backend, ttl + SETTLE_EXTRA
    old = session.valid().token
    issuer.publish_next()
    answer = backend.send(old, what="the old key's token")
    yield _step(
        "publish",
        "MUST",
        "AUTH-VALID-TOKEN",
        "old-key token accepted (next key published)",
        answer,
        None,
        _accepted(answer.status),
        "a valid token of the active key was refused once the JWKS held a second signing key: select the key by kid",
    )
    issuer.promote()
    answer, took = _poll(backend, session.valid().token, _accepted, settle, "the new key's token")
    yield _step(
        "promote",
        "SHOULD",
        "AUTH-KEY-ROTATION",
        f"new-key token accepted within {settle:g} s",
        answer,
        took,
        _accepted(answer.status),
        f"a token signed by a newly promoted key was refused for {settle:g} s, "
        "without a restart: refetch the JWKS (rate-limited) when a token names an unknown kid",
    )
    answer = backend.send(old, what="the old key's token")
    yield _step(
        "promote",
        "SHOULD",
        "AUTH-KEY-ROTATION",
        "old-key token accepted (still published)",
        answer,
        None,
        _accepted(answer.status),
        "a token of the previous key, still published, was refused: keep using every published key",
    )
    yield _promote_again(session, ttl)
    issuer.retire()
    answer, took = _poll(backend, old, lambda status: status == 401, settle, "the retired key's token")
    yield _step(
        "retire",
        "SHOULD",
        "AUTH-KEY-RETIRED",
        f"old-key token refused with 401 within {settle:g} s",
        answer,
        took,
        answer.status == 401,
        f"a token signed by a retired key was still accepted {settle:g} s after "
        f"its retirement: cache the JWKS with a TTL (KEYCLOAK_PK_TTL_SECONDS, {ttl:g} s per --ttl)",
    )


def _promote_again(session: Session, ttl: float) -> Step:
    """AUTH-KEY-ROTATION's second half: the JWKS the backend just loaded holds the last key; a key promoted now is
    only accepted before that cache is TTL old if the backend refetches on the unknown kid."""
    expected = f"new-key token accepted within the {ttl:g} s JWKS TTL"
    age = session.issuer.jwks_age()
    if age is None or age > ttl - 1.0:
        return Step(
            "promote again",
            "SHOULD",
            "AUTH-KEY-ROTATION",
            expected,
            "-",
            None,
            "the backend's cached JWKS is not known to be fresh (no recent JWKS fetch at the issuer), so "
            "an accepted token would not show a refetch on an unknown kid",
        )
    cutoff = time.monotonic() - age + ttl - 0.3  # less a margin for the request's way there
    session.issuer.promote()
    answer, took = _poll(
        session.backend, session.valid().token, _accepted, cutoff - time.monotonic(), "the newest key's token"
    )
    return _step(
        "promote again",
        "SHOULD",
        "AUTH-KEY-ROTATION",
        expected,
        answer,
        took,
        _accepted(answer.status),
        f"a token with a just-rotated kid was refused while the cached JWKS was fresh (fetched {age:.1f} s "
        f"before, TTL {ttl:g} s): refetch the JWKS (rate-limited) when a token names an unknown kid",
    )
