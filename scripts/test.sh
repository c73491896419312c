#!/usr/bin/env bash
# Set up .venv (only python3 needed) and run the linter and the whole test suite.
# Extra arguments go to pytest, e.g. `./scripts/test.sh tests/core -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
ruff check .
# The suite starts many Python processes (the target, the tap, meltano and its plugins): each
# may keep the project's compiled modules for the next instead of compiling them again.
unset PYTHONDONTWRITEBYTECODE
# Three workers on two cores: part of the suite waits (on `meltano`, on emulated latency), and
# tests are independent (ephemeral ports, files under tmp_path). `loadfile` keeps a file's
# tests on one worker: each worker's e2e tests share one `meltano install`.
exec python -m pytest -n 3 --dist loadfile "$@"
