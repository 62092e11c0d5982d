"""Wall time of the full gate against the reference app, cold (empty service cache) and warm.

    python bench/bench_gate.py --runs 5

Cold: MAKRX_CACHE_DIR points at a fresh empty dir, so the Postgres binaries are copied and the
template cluster is initdb'd in the run. Warm: the default cache, already filled. Each run is the
command a user types (`pytest --makrx-target=reference -q`), as a subprocess; medians are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "pytest", "--makrx-target=reference", "-q", "-p", "no:cacheprovider"]


def timed_run(env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(COMMAND, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"gate failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per mode (default 5)")
    args = parser.parse_args()
    cold, warm = [], []
    timed_run(dict(os.environ))  # fill the default cache and the OS page cache once
    for _ in range(args.runs):
        cache = Path(tempfile.mkdtemp(prefix="bench-cache-", dir="/var/tmp"))
        cache.chmod(0o755)
        try:
            cold.append(timed_run({**os.environ, "MAKRX_CACHE_DIR": str(cache)}))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        warm.append(timed_run(dict(os.environ)))
    print(f"command: {' '.join(COMMAND[2:])}   runs: {args.runs} per mode")
    print(f"cold (empty cache)  median {statistics.median(cold):6.2f} s   all {[round(t, 2) for t in cold]}")
    print(f"warm (cached)       median {statistics.median(warm):6.2f} s   all {[round(t, 2) for t in warm]}")
    print(f"cold / warm         {statistics.median(cold) / statistics.median(warm):.2f}x")


if __name__ == "__main__":
    main()
