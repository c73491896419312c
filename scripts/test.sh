#!/usr/bin/env bash
# Set up .venv (only python3 needed) and run the linter and the whole test suite.
# Extra arguments go to pytest, e.g. `./scripts/test.sh tests/core -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
exec python -m pytest "$@"
