"""Helpers to drive the target as Meltano does: a subprocess fed Singer lines on stdin."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t

import duckdb
import pytest

if t.TYPE_CHECKING:
    import pathlib

SCHEMA = {"type": "SCHEMA", "stream": "phones", "key_properties": [],
          "schema": {"type": "object", "properties": {}}}


def record(**fields: t.Any) -> dict[str, t.Any]:
    """A RECORD message on the ``phones`` stream."""
    return {"type": "RECORD", "stream": "phones", "record": fields}


class TargetRunner:
    """Runs target-crmphones in a subprocess with a config file."""

    def __init__(self, tmp_path: pathlib.Path) -> None:
        self.tmp_path = tmp_path

    def run(self, config: dict[str, t.Any], messages: t.Iterable[dict[str, t.Any] | str],
            *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Feed messages (dicts or raw lines) and return the finished process."""
        config_file = self.tmp_path / "target-config.json"
        config_file.write_text(json.dumps(config))
        lines = [m if isinstance(m, str) else json.dumps(m) for m in messages]
        result = subprocess.run(
            [sys.executable, "-m", "target_crmphones", "--config", str(config_file)],
            input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=300,
            check=False, cwd=self.tmp_path,  # default report_dir is relative: keep it here
        )
        if check and result.returncode != 0:
            pytest.fail(f"target failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result


@pytest.fixture
def target_runner(tmp_path: pathlib.Path) -> TargetRunner:
    """A runner writing its config under the test's tmp dir."""
    return TargetRunner(tmp_path)


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
