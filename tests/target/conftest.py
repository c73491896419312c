"""Helpers to drive the target as Meltano does: its console entry point, fed Singer lines.

By default the entry point (``target_crmphones.target.main``, what ``python -m
target_crmphones`` and the ``target-crmphones`` script call) runs in this process
(``tests/entry_points.run_target``): the same code path from argv to exit code, in the test's
own interpreter. ``run(..., in_process=False)`` runs the real subprocess fed on stdin, for
tests about the process itself (``test_entry_point.py`` holds both ways to the same exit
code, STATE and log lines).
"""

from __future__ import annotations

import json
import typing as t

import duckdb
import pytest

from tap_crmphones.tap import main as tap_main
from tests.entry_points import run_entry_point, run_target

if t.TYPE_CHECKING:
    import pathlib
    import subprocess

SCHEMA = {"type": "SCHEMA", "stream": "phones", "key_properties": [],
          "schema": {"type": "object", "properties": {}}}


def record(**fields: t.Any) -> dict[str, t.Any]:
    """A RECORD message on the ``phones`` stream."""
    return {"type": "RECORD", "stream": "phones", "record": fields}


class TargetRunner:
    """Runs target-crmphones with a config file (in this process unless asked otherwise)."""

    def __init__(self, tmp_path: pathlib.Path) -> None:
        self.tmp_path = tmp_path

    def run(self, config: dict[str, t.Any], messages: t.Iterable[dict[str, t.Any] | str],
            *, check: bool = True, in_process: bool = True
            ) -> subprocess.CompletedProcess[str]:
        """Feed messages (dicts or raw lines) and return the finished run: its exit code,
        stdout (the STATE lines) and stderr (the log and the one-line errors)."""
        lines = [m if isinstance(m, str) else json.dumps(m) for m in messages]
        # The default report_dir is relative: the run's folder is tmp_path.
        result = run_target(config, lines, self.tmp_path, in_process=in_process)
        if check and result.returncode != 0:
            pytest.fail(f"target failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result


@pytest.fixture
def target_runner(tmp_path: pathlib.Path) -> TargetRunner:
    """A runner writing its config under the test's tmp dir."""
    return TargetRunner(tmp_path)


def tap_lines(config: dict[str, t.Any], workdir: pathlib.Path) -> list[str]:
    """tap-crmphones's console entry point, in this process as the target's above: its
    output lines (it must succeed)."""
    config_file = workdir / "tap-config.json"
    config_file.write_text(json.dumps(config))
    result = run_entry_point(tap_main, ["tap-crmphones", "--config", str(config_file)], workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout.splitlines()


def ledger(path: str, query: str, params: list[t.Any] | None = None) -> list[tuple]:
    """Query the staging file read-only."""
    with duckdb.connect(path, read_only=True) as con:
        return con.execute(query, params or []).fetchall()


def last_run_counts(path: str) -> dict[str, int]:
    """The counts of the latest run in a staging file."""
    rows = ledger(path, "SELECT received, created, updated, unchanged, merged, rejected "
                        "FROM runs ORDER BY started_at DESC LIMIT 1")
    keys = ("received", "created", "updated", "unchanged", "merged", "rejected")
    return dict(zip(keys, rows[0], strict=True))
