"""A write given up holds the bookmark back: no STATE is printed past a record whose write
the API kept failing (a run's decisions are one, so none is), the run fails in one line, and
the next run, reading again from that bookmark as a tap would, writes what was owed and
nothing twice.

The runs are in-process, on a `FakeClock`: the retries that end in giving up back off in
simulated time. The run's failure is the error the CLI prints as its one line and exits 1 on
(tests/e2e/test_meltano_run.py reads that line through `meltano run`).
"""

from __future__ import annotations

import json
import typing as t

import duckdb
import pytest

from crmphones.clock import FakeClock
from crmphones.errors import WritesGivenUpError
from tests.reliability.conftest import (
    DESTINATIONS,
    clean_view,
    run_counts,
    run_here,
    serve,
    singer_input,
)

if t.TYPE_CHECKING:
    import pathlib

RECORDS = 160
EVERY = 20


def _number_of(dialect: str, phone: tuple) -> str:
    """The number as the dialect writes it in a request body (its digits, no extension)."""
    number = phone[2] if dialect in ("onedegree", "ticketevolution") else phone[1]
    return str(number).split()[0][-7:]


def _given_up(staging: str) -> list[int]:
    with duckdb.connect(staging, read_only=True) as con:
        return [seq for (seq,) in con.execute(
            "SELECT seq FROM outcomes WHERE detail LIKE 'given up%' ORDER BY seq").fetchall()]


@pytest.mark.parametrize("dialect", list(DESTINATIONS))
def test_a_given_up_write_holds_the_bookmark_back(dialect: str, workdir: pathlib.Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("crmphones.clock.DEFAULT_CLOCK", clock)
    lines = singer_input(dialect, RECORDS, seed=9, state_every=EVERY)
    # Batches as small as the runs' below: a batch decides which record wins a slot (Activix).
    expected = clean_view(dialect, lines, workdir, batch_size_rows=EVERY)
    failing = _number_of(dialect, expected[len(expected) // 2])
    server = serve(dialect)
    server.faults.fail_writes_containing = failing
    try:
        staging = str(workdir / "ledger.duckdb")
        config = {**DESTINATIONS[dialect].settings(server.url), "staging_path": staging,
                  "batch_size_rows": EVERY, "report_dir": ""}
        printed, error = run_here(config, lines)
        assert isinstance(error, WritesGivenUpError), error
        assert "given up" in str(error)
        given_up = _given_up(staging)
        assert given_up, "the outage gave no write up"
        assert printed == [], "a STATE passed a write given up"
        assert clock.sleeps, "the writes given up were not retried"
        bookmark = 0
        assert f"reads this run's {RECORDS} records again" in str(error)

        # The next run: the outage is over, and the tap reads again from the saved bookmark.
        server.faults.fail_writes_containing = ""
        writes_before = sum(r.method in ("POST", "PUT", "PATCH") for r in server.requests)
        start = next((i for i, line in enumerate(lines) if json.loads(line)["type"] == "STATE"
                      and json.loads(line)["value"]["bookmarks"]["phones"]["upto"] == bookmark),
                     0)
        _, error = run_here(config, [lines[0], *lines[start + 1:]])
        assert error is None, error
        assert DESTINATIONS[dialect].view(server.app.snapshot()) == expected
        resent = sum(r.method in ("POST", "PUT", "PATCH") for r in server.requests) - writes_before
    finally:
        server.stop()
    counts = run_counts(staging)[-1]
    # Only what was owed is written again: the phones written between the bookmark and the
    # end of the first run are unchanged now.
    assert 0 < counts["created"] + counts["updated"] <= len(given_up)
    assert resent <= len(given_up)
