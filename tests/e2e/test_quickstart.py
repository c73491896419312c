"""The README's Quickstart, `./scripts/demo.sh`, run as the README writes it in a fresh copy of
the checkout. (The recipes, the three ways crmphones is used, run in test_recipes.py.)"""

from __future__ import annotations

import re
import typing as t

from tests.e2e.conftest import copy_checkout, free_port, ok, recipe, shell

if t.TYPE_CHECKING:
    import pathlib


def test_quickstart_demo(tmp_path: pathlib.Path) -> None:
    """`./scripts/demo.sh` in a fresh copy (it installs the plugins itself): the first run
    creates every valid number, the second writes nothing, and each run's counts add up."""
    project = copy_checkout(tmp_path / "crmphones")
    (command,) = recipe("Quickstart")
    ports = {"CRMPHONES_SOURCE_PORT": str(free_port()),
             "CRMPHONES_DESTINATION_PORT": str(free_port()),
             "CRMPHONES_DEMO_RECORDS": "60"}  # the demo's size knob: a small account
    output = ok(shell(project, command, env=ports), command)

    runs = [dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", line))
            for line in output.splitlines() if line.strip().startswith("received=")]
    assert len(runs) == 2, output
    first, second = runs
    for run in runs:
        assert run["received"] == sum(v for k, v in run.items() if k != "received"), run
    held = re.search(r"Destination account now holds (\d+) phone numbers", output)
    assert held, output
    assert int(held.group(1)) == first["created"] > 0
    assert second["created"] == second["updated"] == 0, "the same input writes nothing"
    assert "Top reject reasons, run 2:" in output
