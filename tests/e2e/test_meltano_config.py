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
import typing as t

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent

pytestmark = pytest.mark.e2e


def _meltano(project: pathlib.Path, *args: str) -> str:
    result = subprocess.run(
        [str(BIN / "meltano"), *args], cwd=project, capture_output=True, text=True, timeout=300,
        check=False, env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _own_config(project_file: dict[str, t.Any], plugin: str) -> dict[str, t.Any]:
    """The `config` a plugin's own entry in meltano.yml holds (no environment's)."""
    (entry,) = [entry for kind in ("extractors", "loaders")
                for entry in project_file["plugins"].get(kind, []) if entry["name"] == plugin]
    return t.cast("dict[str, t.Any]", entry.get("config") or {})


def test_config_set_round_trips(tmp_path: pathlib.Path) -> None:
    """One `meltano config set` per setting, as a user types them; then what Meltano gives each
    plugin in the `emulator` environment (the default one, which `meltano run` uses), one
    `meltano config print` per plugin; and where meltano.yml holds each value.

    Without an environment, Meltano gives a plugin its own entry's `config` cast by the
    setting's kind: that the set value sits there with its type (read from the file itself)
    is what a `--no-environment` print showed, so the file is read instead of asking
    Meltano a second time per plugin."""
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

    project_file = yaml.safe_load("\n".join(after))
    for plugin, name, _, value in settings:
        held = _own_config(project_file, plugin)
        assert held.get(name) == value, (plugin, name, "in the plugin's own config")
        assert type(held[name]) is type(value), (plugin, name)
    for plugin in dict.fromkeys(plugin for plugin, *_ in settings):
        config = json.loads(_meltano(tmp_path, "--environment=emulator", "config", "print",
                                     plugin))
        for name, value in [(n, v) for p, n, _, v in settings if p == plugin]:
            assert config[name] == value, (plugin, name)
            assert type(config[name]) is type(value), (plugin, name)
