# Sourced by test.sh and demo.sh from the repository root: set up .venv (only python3 needed)
# unless it is up to date, i.e. installed after the last change of either pyproject.toml.
stamp=.venv/.installed
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] \
    || [ -n "$(find pyproject.toml emulators/pyproject.toml -newer "$stamp")" ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  # The emulators are a distribution of their own: the plugins' wheel holds no test server.
  .venv/bin/python -m pip install --quiet -e ./emulators -e '.[test]'
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
