"""A write given up holds the bookmark back: no STATE is printed past a record whose write
the API kept failing (a run's decisions are one, so none is), the run fails in one line, and
the next run, reading again from that bookmark as a tap would, writes what was owed and
nothing twice."""

from __future__ import annotations

import json
import typing as t

import duckdb
import pytest

from tests.reliability.conftest import DESTINATIONS, clean_view, run_counts, run_target, serve, singer_input

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
def test_a_given_up_write_holds_the_bookmark_back(dialect: str, tmp_path: pathlib.Path) -> None:
    lines = singer_input(dialect, RECORDS, seed=9, state_every=EVERY)
    # Batches as small as the runs' below: a batch decides which record wins a slot (Activix).
    expected = clean_view(dialect, lines, tmp_path, batch_size_rows=EVERY)
    failing = _number_of(dialect, expected[len(expected) // 2])
    server = serve(dialect)
    server.faults.fail_writes_containing = failing
    try:
        staging = str(tmp_path / "ledger.duckdb")
        config = {**DESTINATIONS[dialect].settings(server.url), "staging_path": staging,
                  "batch_size_rows": EVERY}
        first = run_target(config, lines, tmp_path)
        assert first.returncode == 1, first.stderr[-3000:]
        assert "given up" in first.stderr.strip().splitlines()[-1]
        given_up = _given_up(staging)
        assert given_up, "the outage gave no write up"
        printed = [json.loads(line)["bookmarks"]["phones"]["upto"]
                   for line in first.stdout.splitlines() if line.strip()]
        assert printed == [], "a STATE passed a write given up"
        bookmark = 0
        assert f"reads this run's {RECORDS} records again" in first.stderr.strip().splitlines()[-1]

        # The next run: the outage is over, and the tap reads again from the saved bookmark.
        server.faults.fail_writes_containing = ""
        writes_before = sum(r.method in ("POST", "PUT", "PATCH") for r in server.requests)
        start = next((i for i, line in enumerate(lines) if json.loads(line)["type"] == "STATE"
                      and json.loads(line)["value"]["bookmarks"]["phones"]["upto"] == bookmark),
                     0)
        second = run_target(config, [lines[0], *lines[start + 1:]], tmp_path)
        assert second.returncode == 0, second.stderr[-3000:]
        assert DESTINATIONS[dialect].view(server.app.snapshot()) == expected
        resent = sum(r.method in ("POST", "PUT", "PATCH") for r in server.requests) - writes_before
    finally:
        server.stop()
    counts = run_counts(staging)[-1]
    # Only what was owed is written again: the phones written between the bookmark and the
    # end of the first run are unchanged now.
    assert 0 < counts["created"] + counts["updated"] <= len(given_up)
    assert resent <= len(given_up)
