"""Wall time of the full gate against the reference app, cold (empty service cache) and warm, and the
harness's own share of it.

    python bench/bench_gate.py --runs 5 [--workers auto]

Cold: MAKRX_CACHE_DIR points at a fresh empty dir, so the Postgres binaries are copied and the
template cluster is initdb'd in the run. Warm: the default cache, already filled. Each run is the
command a user types (`pytest --makrx-target=reference -q`, embedded services), as a subprocess.

Overhead = wall time - the backend's own time (uvicorn boots until it answers, alembic upgrade) - the
contracts' own time (test calls: their requests and the waits the conventions impose, e.g. a JWKS
TTL) - requests made by fixtures outside test calls (e.g. the session's provoking bursts). What is
left is pytest, the plugin, services, the issuer, fixtures' own work and teardown. The parts come
from the scorecard's timings (harness/timings.py). Medians are printed.

    python bench/bench_gate.py --runs 5 --against REV

compares this tree with an older commit instead, in one run: the cold gate as README's first command runs
it (`-n auto`, empty service cache), before and after taking turns, medians and their ratio. The older
tree is a `git worktree` whose folder is put first on PYTHONPATH as `makrx_contracts`, ahead of this
checkout's editable install; the same venv serves both.

The `-n` rows run the same gate under pytest-xdist, as README's first command does; only their wall is
shown (the parts would be summed over the workers). Runs use Python's default bytecode caching: with
PYTHONDONTWRITEBYTECODE set before pytest ever wrote its assert-rewritten copies of the plugins'
packages, each start redoes them (`pytest --co` 4.1 s instead of 1.8 s here), so it is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMAND = [
    sys.executable,
    "-m",
    "pytest",
    "--makrx-target=reference",
    "--makrx-services=embedded",
    "-q",
    "-p",
    "no:cacheprovider",
]
BACKEND_PHASES = ("backend boot", "backend migrations")


def timed_run(env: dict[str, str], *extra: str, cwd: Path = REPO) -> dict[str, float]:
    """One gate: wall, backend, contracts and overhead seconds (under -n the parts are summed over the
    workers, so only the wall means what it says)."""
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as out:
        report = Path(out) / "scorecard.md"
        start = time.perf_counter()
        done = subprocess.run(
            [*COMMAND, *extra, f"--makrx-report={report}"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"gate failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
        spent = json.loads(report.with_suffix(".json").read_text())["timings"]
    backend = sum(spent.get(name, {}).get("total_s", 0.0) for name in BACKEND_PHASES)
    contracts = spent["test calls"]["total_s"]
    requests = spent.get("requests", {}).get("total_s", 0.0)  # outside test calls only
    return {
        "wall": wall,
        "backend": backend,
        "contracts": contracts,
        "requests": requests,
        "overhead": wall - backend - contracts - requests,
        "services": spent.get("services", {}).get("total_s", 0.0),
        "issuer": spent.get("issuer", {}).get("total_s", 0.0),
    }


def row(label: str, runs: list[dict[str, float]], *, parts: bool = True) -> str:
    """Medians of ``runs``; with ``parts``, the wall split into backend, contracts, requests, overhead."""
    med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    split = (
        (
            f" = backend {med['backend']:5.2f} + contracts {med['contracts']:5.2f}"
            f" + fixture requests {med['requests']:5.2f} + overhead {med['overhead']:5.2f}"
            f" (services {med['services']:.2f}, issuer {med['issuer']:.3f})"
        )
        if parts
        else ""
    )
    return f"{label:<20} wall {med['wall']:6.2f} s{split}   walls {[round(run['wall'], 1) for run in runs]}"


def cold_run(env: dict[str, str], *extra: str, cwd: Path = REPO) -> dict[str, float]:
    """One gate with an empty service cache (the Postgres template is initdb'd in the run)."""
    cache = Path(tempfile.mkdtemp(prefix="bench-cache-", dir="/var/tmp"))
    cache.chmod(0o755)
    try:
        return timed_run({**env, "MAKRX_CACHE_DIR": str(cache)}, *extra, cwd=cwd)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


@contextlib.contextmanager
def older_tree(rev: str) -> Iterator[tuple[Path, Path]]:
    """A worktree of ``rev`` and a folder naming it `makrx_contracts`, for PYTHONPATH."""
    root = Path(tempfile.mkdtemp(prefix="bench-older-"))
    tree = root / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=REPO, check=True, capture_output=True)
    try:
        (root / "path").mkdir()
        (root / "path" / "makrx_contracts").symlink_to(tree)
        yield tree, root / "path"
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def compare(rev: str, runs: int, default: dict[str, str]) -> None:
    readme = ("--makrx-strict", "-n", "auto")
    before: list[dict[str, float]] = []
    after: list[dict[str, float]] = []
    with older_tree(rev) as (tree, path):
        old_env = {**default, "PYTHONPATH": os.pathsep.join(filter(None, [str(path), default.get("PYTHONPATH")]))}
        timed_run(old_env, *readme, cwd=tree)  # its bytecode caches, once
        timed_run(default, *readme)
        for _ in range(runs):
            before.append(cold_run(old_env, *readme, cwd=tree))
            after.append(cold_run(default, *readme))
    print(f"command: {' '.join(COMMAND[2:] + list(readme))}, empty service cache   runs: {runs} each, taking turns")
    print(row(f"before ({rev})", before, parts=False))
    print(row("after (this tree)", after, parts=False))
    ratio = statistics.median(r["wall"] for r in after) / statistics.median(r["wall"] for r in before)
    print(f"after / before wall  {ratio:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per mode (default 5)")
    parser.add_argument("--workers", default="auto", help="-n of the parallel rows (default auto, as README's gate)")
    parser.add_argument("--against", metavar="REV", help="compare the cold README gate with this commit's")
    args = parser.parse_args()
    default = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    if args.against:
        compare(args.against, args.runs, default)
        return
    parallel = ("-n", args.workers)
    cold: list[dict[str, float]] = []
    warm: list[dict[str, float]] = []
    cold_n: list[dict[str, float]] = []
    warm_n: list[dict[str, float]] = []
    timed_run(default)  # fill the default cache, the bytecode caches and the OS page cache once
    for _ in range(args.runs):
        for runs, extra in ((cold, ()), (cold_n, parallel)):
            runs.append(cold_run(default, *extra))
        warm.append(timed_run(default))
        warm_n.append(timed_run(default, *parallel))
    print(f"command: {' '.join(COMMAND[2:])}   runs: {args.runs} per mode (medians)")
    print(row("cold (empty cache)", cold))
    print(row("warm (cached)", warm))
    print(row(f"cold, -n {args.workers}", cold_n, parts=False))
    print(row(f"warm, -n {args.workers}", warm_n, parts=False))

    def ratio(slow: list[dict[str, float]], fast: list[dict[str, float]]) -> float:
        return statistics.median(r["wall"] for r in slow) / statistics.median(r["wall"] for r in fast)

    print(
        f"cold / warm wall    {ratio(cold, warm):.2f}x;  serial / -n {args.workers}: cold {ratio(cold, cold_n):.2f}x,"
        f" warm {ratio(warm, warm_n):.2f}x"
    )


if __name__ == "__main__":
    main()
