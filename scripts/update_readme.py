"""Regenerate the README's generated parts: the settings tables (`--about --format=markdown`)
and the phone type translation table (`crmphones.translation`).

Run after changing a setting: `python scripts/update_readme.py`; tests/test_docs.py fails
until the README matches the code.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

from crmphones.translation import type_table

ROOT = pathlib.Path(__file__).resolve().parents[1]
PLUGINS = {"tap-crmphones": "tap_crmphones", "target-crmphones": "target_crmphones"}


def settings_table(module: str) -> str:
    """The plugin's settings table, as the SDK prints it."""
    about = subprocess.run([sys.executable, "-m", module, "--about", "--format", "markdown"],
                           capture_output=True, text=True, check=True).stdout
    return "\n".join(line for line in about.splitlines() if line.startswith("|"))


def main() -> None:
    """Replace the text between each plugin's markers."""
    readme = (ROOT / "README.md").read_text()
    for plugin, module in PLUGINS.items():
        begin, end = f"<!-- {plugin} settings -->", f"<!-- /{plugin} settings -->"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        readme = pattern.sub(f"{begin}\n{settings_table(module)}\n{end}", readme)
    begin, end = "<!-- type translation -->", "<!-- /type translation -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    readme = pattern.sub(f"{begin}\n{type_table()}\n{end}", readme)
    (ROOT / "README.md").write_text(readme)


if __name__ == "__main__":
    main()
