#!/usr/bin/env bash
# Soak: run the full gate against the reference app N times in random order and count the results.
# Usage: scripts/soak.sh [N] [extra pytest args...]   (default N=10). Exits non-zero unless all N passed.
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
shift || true
passed=0
failed=0
for i in $(seq 1 "$runs"); do
  seed=$((RANDOM * 32768 + RANDOM))
  log="$(mktemp -t soak-XXXXXX.log)"
  if python -m pytest --makrx-target=reference --makrx-strict \
      -p no:cacheprovider -q --randomly-seed="$seed" "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "run $i/$runs (seed $seed): passed"
  else
    failed=$((failed + 1))
    echo "run $i/$runs (seed $seed): FAILED — output follows"
    tail -40 "$log"
  fi
  rm -f "$log"
done
echo "soak: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -eq "$runs" ]
