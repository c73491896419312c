"""`meltano config set` round trips on a copy of meltano.yml: the typed value is the one
Meltano gives the plugin, the file gains the key set and nothing else changes, and no
environment overrides what was set."""

from __future__ import annotations

import difflib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent

pytestmark = pytest.mark.e2e


def _meltano(project: pathlib.Path, *args: str) -> str:
    result = subprocess.run(
        [str(BIN / "meltano"), *args], cwd=project, capture_output=True, text=True, timeout=300,
        check=False, env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_config_set_round_trips(tmp_path: pathlib.Path) -> None:
    shutil.copy(ROOT / "meltano.yml", tmp_path / "meltano.yml")
    before = (tmp_path / "meltano.yml").read_text().splitlines()
    settings = [
        ("tap-crmphones", "stream_maps", '{"phone_numbers": {"raw": "__NULL__"}}',
         {"phone_numbers": {"raw": "__NULL__"}}),
        ("target-crmphones", "flattening_enabled", "true", True),
        ("target-crmphones", "flattening_max_depth", "1", 1),
        ("target-crmphones", "progress_seconds", "0.5", 0.5),
        ("target-crmphones", "validate_records", "false", False),
        # The migration recipe's command: the emulator environment must not override it.
        ("target-crmphones--activix", "parent_map_path", "prospect_to_lead.csv",
         "prospect_to_lead.csv"),
    ]
    for plugin, name, text, _ in settings:
        _meltano(tmp_path, "config", "set", plugin, name, text)
    after = (tmp_path / "meltano.yml").read_text().splitlines()
    edits = difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes()
    assert {op for op, *_ in edits} <= {"equal", "insert"}, "nothing but the keys set is changed"
    added = [line.strip() for op, _, _, first, last in edits if op == "insert"
             for line in after[first:last]]
    assert sorted(added) == sorted([
        "config:", "config:", "stream_maps:", "phone_numbers:", "raw: __NULL__",
        "flattening_enabled: true", "flattening_max_depth: 1", "progress_seconds: 0.5",
        "validate_records: false", "parent_map_path: prospect_to_lead.csv"]), added
    for plugin, name, _, value in settings:
        for environment in ("--environment=emulator", "--no-environment"):
            config = json.loads(_meltano(tmp_path, environment, "config", "print", plugin))
            assert config[name] == value, (plugin, name, environment)
            assert type(config[name]) is type(value), (plugin, name)
