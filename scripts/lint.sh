#!/usr/bin/env bash
# Format, lint and types, as .ci/run checks them: ruff on the whole tree (the reference app keeps its own
# ruff.toml), mypy --strict on the harness.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff format --check .
ruff check .
# The checkout's folder is the package `makrx_contracts` only once installed (package-dir); mypy needs
# the name on disk.
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
ln -s "$PWD" "$root/makrx_contracts"
(cd "$root" && mypy --config-file "$OLDPWD/pyproject.toml" -p makrx_contracts.harness)
