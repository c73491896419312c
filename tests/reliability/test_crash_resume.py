"""Nothing lost, nothing twice, across crashes: target-crmphones is killed with SIGKILL at
random moments while it writes, then rerun with the same input until one run completes; the
destination must end exactly as after one clean run, for every dialect.

A random moment is a random count of writes that reached the emulator in that run (so each
kill lands among the writes however busy the machine is). The killed runs are real processes;
the clean run and the run that completes (a resumption from the ledger, not about the
process) run in-process."""

from __future__ import annotations

import random
import typing as t

import pytest

from crmphones_emulators import Faults
from tests.reliability.conftest import (
    DESTINATIONS,
    clean_view,
    killed_among_writes,
    run_counts,
    run_here,
    serve,
    singer_input,
    writes_sent,
)

if t.TYPE_CHECKING:
    import pathlib

RECORDS = 240
KILLS = 3  # per dialect: 12 in all, each landing among the writes (asserted below)
#: A kill comes once 1 to this many of the run's writes reached the emulator: with the
#: max_concurrency (8) in flight, the kills leave writes owed for the last run in every
#: dialect (Ticket Evolution, one create per client, sends the fewest: some 100).
KILL_AFTER = 16


@pytest.mark.parametrize("dialect", list(DESTINATIONS))
def test_sigkill_then_rerun_ends_as_one_clean_run(dialect: str, workdir: pathlib.Path) -> None:
    lines = singer_input(dialect, RECORDS, seed=9)
    expected = clean_view(dialect, lines, workdir)
    view = DESTINATIONS[dialect].view
    # Slow enough to be caught mid-write with max_concurrency (8) requests in flight.
    server = serve(dialect, faults=Faults(latency_ms=50))
    staging = str(workdir / "ledger.duckdb")
    config = {**DESTINATIONS[dialect].settings(server.url), "staging_path": staging}
    rng = random.Random(f"kills-{dialect}")
    mid_write = 0
    try:
        for _ in range(KILLS):
            before = writes_sent(server)
            # A random point among the writes.
            killed_among_writes(config, lines, workdir, server, rng.randint(1, KILL_AFTER))
            state = view(server.app.snapshot())
            if writes_sent(server) > before and state != expected:
                mid_write += 1
        server.faults.latency_ms = 0  # the last run is no longer about landing a kill
        _, error = run_here(config, lines)
        assert error is None, error
        assert view(server.app.snapshot()) == expected
        # No stray update: the reruns only completed what the killed runs left owed.
        updates = [r for r in server.requests if r.method in ("PUT", "PATCH")]
        assert updates == []
    finally:
        server.stop()
    assert mid_write >= KILLS - 1, f"only {mid_write} kills landed while writing"
    finished = run_counts(staging)[-1]
    assert finished["received"] == RECORDS
    assert sum(v for k, v in finished.items() if k != "received") == RECORDS
    print(f"{dialect}: {mid_write} kills mid-write survived; last run {finished}")
