"""State follows durability: a STATE line is printed only once every record before it is
written to the CRM or rejected, and the ledger holds its outcome; killed mid-load, the
printed states never cover an unwritten record. A run's decisions are made once its input has
ended, so its latest state is passed on then.

The kills are real processes; the runs that end by themselves run in-process, their printed
states captured from stdout as the SDK writes them.
"""

from __future__ import annotations

import json
import random
import typing as t

import duckdb

from crmphones_emulators import Faults
from tests.reliability.conftest import (
    DESTINATIONS,
    killed_among_writes,
    run_here,
    serve,
    singer_input,
)

if t.TYPE_CHECKING:
    import pathlib

    import pytest

RECORDS = 300
EVERY = 25
#: Killed runs before the one that ends by itself. Each kill lands among the writes (they
#: once came at random times, most of them still in start-up, before any write).
KILLS = 2
#: A kill comes once 1 to this many of the run's writes reached the emulator: among the
#: writes, where a STATE printed too early would cover one not yet written.
KILL_AFTER = 60


def _settled(staging: pathlib.Path) -> int:
    with duckdb.connect(str(staging), read_only=True) as con:
        settled = con.execute("SELECT count(DISTINCT seq) FROM outcomes").fetchone()
    assert settled is not None
    return settled[0]


def test_no_printed_state_covers_an_unwritten_record(workdir: pathlib.Path) -> None:
    lines = singer_input("outreach", RECORDS, seed=4, state_every=EVERY)
    server = serve("outreach", faults=Faults(latency_ms=6))
    rng = random.Random("state-kills")
    checked = 0
    try:
        for attempt in range(KILLS + 1):
            staging = workdir / f"ledger-{attempt}.duckdb"
            config = {**DESTINATIONS["outreach"].settings(server.url), "staging_path": str(staging),
                      "batch_size_rows": EVERY, "report_dir": ""}
            if attempt == KILLS:  # the last run ends by itself
                printed, error = run_here(config, lines)
                assert error is None, error
            else:  # pull the plug at a random point among the writes
                rest = killed_among_writes(config, lines, workdir, server,
                                           rng.randint(1, KILL_AFTER))
                printed = [json.loads(line) for line in rest if line.strip()]
            if not printed:
                continue
            upto = printed[-1]["bookmarks"]["phones"]["upto"]
            # Every record up to the printed bookmark has its outcome in the ledger.
            settled = _settled(staging)
            assert settled >= upto, f"state says {upto} but only {settled} settled"
            checked += 1
    finally:
        server.stop()
    assert checked >= 1, "no run printed a state"


def test_the_latest_state_is_passed_on_once_the_run_is_written(workdir: pathlib.Path) -> None:
    """States come every 25 records, batches every 100: the run passes the latest state on at
    its end, once every record has its outcome, and none before (the SDK repeats it at its
    final drain, which is harmless to Meltano)."""
    lines = singer_input("outreach", RECORDS, seed=4, state_every=EVERY)
    server = serve("outreach")
    try:
        config = {**DESTINATIONS["outreach"].settings(server.url), "report_dir": "",
                  "staging_path": str(workdir / "ledger.duckdb"), "batch_size_rows": 100}
        states, error = run_here(config, lines)
        assert error is None, error
    finally:
        server.stop()
    printed = [state["bookmarks"]["phones"]["upto"] for state in states]
    assert set(printed) == {RECORDS}, printed
    assert _settled(workdir / "ledger.duckdb") == RECORDS


def test_a_dry_run_prints_no_state(workdir: pathlib.Path, caplog: pytest.LogCaptureFixture
                                   ) -> None:
    """A preview must not move the bookmark: Meltano would save it under the real run's state
    id, and the migration after it would skip what the preview only planned."""
    lines = singer_input("outreach", RECORDS, seed=4, state_every=EVERY)
    server = serve("outreach")
    try:
        config = {**DESTINATIONS["outreach"].settings(server.url), "dry_run": True,
                  "report_dir": "", "staging_path": str(workdir / "ledger.duckdb"),
                  "batch_size_rows": 100}
        with caplog.at_level("INFO"):
            printed, error = run_here(config, lines)
        assert error is None, error
    finally:
        server.stop()
    assert printed == []
    assert "dry run: no STATE is passed on" in caplog.text
    assert not [r for r in server.requests if r.method in ("POST", "PUT", "PATCH")]
