"""Helpers to drive the target as Meltano does: its console entry point, fed Singer lines.

By default the entry point (``target_crmphones.target.main``, what ``python -m
target_crmphones`` and the ``target-crmphones`` script call) runs in this process, with its
argv, stdout, stderr and working folder set as the subprocess had them, and the process-wide
state it changes (logging handlers, signal handlers, warnings, ``sys.excepthook``) put back
after it: the same code path from argv to exit code, in the test's own interpreter. Its
input comes through ``--input`` (a file holding the lines), since the SDK's reader binds
``sys.stdin`` when it is imported; ``run(..., in_process=False)`` runs the real subprocess
fed on stdin, for tests about the process itself (``test_entry_point.py`` holds both ways
to the same exit code, STATE and log lines).
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t

import duckdb
import pytest

from tap_crmphones.tap import main as tap_main
from target_crmphones.target import main as target_main
from tests.entry_points import run_entry_point

if t.TYPE_CHECKING:
    import pathlib

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
        config_file = self.tmp_path / "target-config.json"
        config_file.write_text(json.dumps(config))
        lines = [m if isinstance(m, str) else json.dumps(m) for m in messages]
        text = "\n".join(lines) + "\n"
        if in_process:
            input_file = self.tmp_path / "target-input.jsonl"
            input_file.write_text(text)
            # The default report_dir is relative: the run's folder is tmp_path, as below.
            argv = ["target-crmphones", "--config", str(config_file), "--input", str(input_file)]
            result = run_entry_point(target_main, argv, self.tmp_path)
        else:
            result = subprocess.run(
                [sys.executable, "-m", "target_crmphones", "--config", str(config_file)],
                input=text, capture_output=True, text=True, timeout=300,
                check=False, cwd=self.tmp_path,  # default report_dir is relative: keep it here
            )
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
