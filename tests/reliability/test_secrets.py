"""Secrets never appear in logs, state, the DuckDB ledger or the run report, even when the
API fails and errors are logged."""

from __future__ import annotations

import typing as t

import pytest

from crmphones_emulators import Faults
from tests.reliability.conftest import DESTINATIONS, SECRET, TOKEN, run_target, serve, singer_input

if t.TYPE_CHECKING:
    import pathlib


@pytest.mark.parametrize("dialect", list(DESTINATIONS))
def test_no_secret_in_any_output(dialect: str, tmp_path: pathlib.Path) -> None:
    lines = singer_input(dialect, 120, state_every=40)
    server = serve(dialect, faults=Faults(error_rate=0.2, drop_rate=0.05, seed=2))
    outputs: list[str | bytes] = []
    try:
        for token_ok in (True, False):
            settings: dict[str, t.Any] = {**DESTINATIONS[dialect].settings(server.url),
                                          "staging_path": str(tmp_path / "ledger.duckdb"),
                                          "report_dir": str(tmp_path / "reports")}
            if not token_ok:  # a refused credential is reported, not echoed
                settings = {k: (f"{v}-wrong" if v in (TOKEN, SECRET) else v)
                            for k, v in settings.items()}
            result = run_target(settings, lines, tmp_path)
            outputs += [result.stdout, result.stderr]
    finally:
        server.stop()
    outputs += [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()
                and path.name != "target.json"]  # the config file itself holds them, by design
    for output in outputs:
        text = output if isinstance(output, str) else output.decode("latin-1")
        assert TOKEN not in text
        assert SECRET not in text
