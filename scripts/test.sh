#!/usr/bin/env bash
# Set up .venv (only python3 needed) and run the linter and the whole test suite.
# Extra arguments go to pytest, e.g. `./scripts/test.sh tests/core -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
ruff check .
exec python -m pytest "$@"
