"""The docs and meltano.yml stay true to the code."""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import pytest
import yaml

from crmphones.dialects import DIALECTS

ROOT = pathlib.Path(__file__).resolve().parents[1]
PLUGINS = {"tap-crmphones": "tap_crmphones", "target-crmphones": "target_crmphones"}


def _about(module: str, fmt: str) -> str:
    return subprocess.run([sys.executable, "-m", module, "--about", "--format", fmt],
                          capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.mark.parametrize(("plugin", "module"), PLUGINS.items())
def test_readme_holds_the_generated_settings_table(plugin: str, module: str) -> None:
    """README's settings tables are exactly what `--about --format=markdown` prints."""
    generated = _about(module, "markdown")
    table = [line for line in generated.splitlines() if line.startswith("|")]
    readme = (ROOT / "README.md").read_text()
    assert "\n".join(table) in readme, f"regenerate {plugin}'s settings table in README.md"


@pytest.mark.parametrize(("plugin", "module"), PLUGINS.items())
def test_meltano_yml_declares_every_setting(plugin: str, module: str) -> None:
    """meltano.yml names every setting ``--about`` lists (the SDK's built-ins too) with the
    kind ``--about`` gives it, marks secret ones sensitive (as strings: ``kind: password``
    makes `meltano config set` rewrite the file), and the capabilities ``--about`` lists."""
    about = json.loads(_about(module, "json"))
    properties = about["settings"]["properties"]
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    kind = "extractors" if plugin.startswith("tap") else "loaders"
    (declared,) = [p for p in project["plugins"][kind] if p["name"] == plugin]
    settings = {s["name"]: s for s in declared["settings"]}
    assert set(properties) == set(settings)
    assert sorted(declared["capabilities"]) == sorted(about["capabilities"])
    kinds = {"integer": {"integer"}, "number": {"decimal"}, "boolean": {"boolean"},
             "string": {"string", "options", "date_iso8601"}, "object": {"object"}}
    for name, prop in properties.items():
        if prop.get("secret"):
            assert settings[name].get("sensitive") is True, name
        types = prop.get("type", [])
        json_type = next(t for t in ([types] if isinstance(types, str) else types) if t != "null")
        assert settings[name].get("kind") in kinds[json_type], (name, json_type)
        if "default" in prop and prop["default"] is not None:
            assert settings[name].get("value") == prop["default"], name
        if settings[name].get("kind") == "options":
            offered = {o["value"] for o in settings[name]["options"]}
            assert offered <= set(prop.get("enum") or prop.get("allowed_values") or offered), name


def test_emulator_never_imports_the_client_side() -> None:
    """The emulator is written from the API notes, so it cannot share the client's bugs: it
    imports the standard library and itself, never the client (`crmphones` or the plugins)."""
    paths = list((ROOT / "emulators" / "crmphones_emulators").glob("*.py"))
    assert len(paths) > 5
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                root = name.split(".")[0]
                assert root == "crmphones_emulators" or root in sys.stdlib_module_names, (path, name)


def test_the_plugins_wheel_holds_no_emulator() -> None:
    """`pip install` of the plugins must not bring test servers into every Meltano venv."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert not any("emulator" in package for package in packages)
    assert not (ROOT / "crmphones" / "emulator").exists()
    assert "crmphones-emulator" not in project["project"]["scripts"]


def test_registry_lists_the_dialects() -> None:
    """The provider setting offers exactly the dialects that exist."""
    modules = {p.stem for p in (ROOT / "crmphones" / "dialects").glob("*.py")} - {
        "__init__", "base"}
    assert {spec.split(":")[0].rsplit(".", 1)[1] for spec in DIALECTS.values()} == modules


def test_readme_holds_the_type_translation_table() -> None:
    """The README's type table is the one the dialects apply."""
    from crmphones.translation import type_table

    assert type_table() in (ROOT / "README.md").read_text()
