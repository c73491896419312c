"""State follows durability: a STATE line is printed only once every record before it is
written to the CRM or rejected, and the ledger holds its outcome; killed mid-load, the
printed states never cover an unwritten record. A run's decisions are made once its input has
ended, so its latest state is passed on then."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import typing as t

import duckdb

from crmphones_emulators import Faults
from tests.reliability.conftest import DESTINATIONS, run_target, serve, singer_input

if t.TYPE_CHECKING:
    import pathlib

RECORDS = 300
EVERY = 25


def test_no_printed_state_covers_an_unwritten_record(tmp_path: pathlib.Path) -> None:
    lines = singer_input("outreach", RECORDS, seed=4, state_every=EVERY)
    server = serve("outreach", faults=Faults(latency_ms=6))
    rng = random.Random("state-kills")
    checked = 0
    try:
        for attempt in range(5):
            staging = tmp_path / f"ledger-{attempt}.duckdb"
            config = {**DESTINATIONS["outreach"].settings(server.url), "staging_path": str(staging),
                      "batch_size_rows": EVERY}
            config_file = tmp_path / "target.json"
            config_file.write_text(json.dumps(config))
            process = subprocess.Popen(
                [sys.executable, "-m", "target_crmphones", "--config", str(config_file)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                cwd=tmp_path, text=True)
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.write("\n".join(lines) + "\n")
            process.stdin.close()
            if attempt < 4:  # pull the plug at a random moment; the last run ends by itself
                time.sleep(rng.uniform(0.0, 3.0))
                process.send_signal(signal.SIGKILL)
            rest = process.stdout.read().splitlines()
            process.wait(timeout=60)
            process.stdout.close()
            printed = [json.loads(line) for line in rest if line.strip()]
            if not printed:
                continue
            upto = printed[-1]["bookmarks"]["phones"]["upto"]
            with duckdb.connect(str(staging), read_only=True) as con:
                settled = con.execute("SELECT count(DISTINCT seq) FROM outcomes").fetchone()
            # Every record up to the printed bookmark has its outcome in the ledger.
            assert settled is not None
            assert settled[0] >= upto, f"state says {upto} but only {settled[0]} settled"
            checked += 1
    finally:
        server.stop()
    assert checked >= 1, "no run printed a state"


def test_the_latest_state_is_passed_on_once_the_run_is_written(tmp_path: pathlib.Path) -> None:
    """States come every 25 records, batches every 100: the run passes the latest state on at
    its end, once every record has its outcome, and none before (the SDK repeats it at its
    final drain, which is harmless to Meltano)."""
    lines = singer_input("outreach", RECORDS, seed=4, state_every=EVERY)
    server = serve("outreach")
    try:
        config = {**DESTINATIONS["outreach"].settings(server.url),
                  "staging_path": str(tmp_path / "ledger.duckdb"), "batch_size_rows": 100}
        result = run_target(config, lines, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    finally:
        server.stop()
    printed = [json.loads(line)["bookmarks"]["phones"]["upto"] for line in result.stdout.splitlines()]
    assert set(printed) == {RECORDS}, printed
    with duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT seq) FROM outcomes").fetchone() == (RECORDS,)


def test_a_dry_run_prints_no_state(tmp_path: pathlib.Path) -> None:
    """A preview must not move the bookmark: Meltano would save it under the real run's state
    id, and the migration after it would skip what the preview only planned."""
    lines = singer_input("outreach", RECORDS, seed=4, state_every=EVERY)
    server = serve("outreach")
    try:
        config = {**DESTINATIONS["outreach"].settings(server.url), "dry_run": True,
                  "staging_path": str(tmp_path / "ledger.duckdb"), "batch_size_rows": 100}
        result = run_target(config, lines, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    finally:
        server.stop()
    assert result.stdout == ""
    assert "dry run: no STATE is passed on" in result.stderr
