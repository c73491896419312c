"""Faults survived: with errors, dropped responses and 429 bursts injected, a load of
hundreds of records per dialect completes, accounted for, and the destination ends exactly as after a
clean run (a create whose response was lost is looked for before it is sent again).

The target runs in-process with the emulator on one `FakeClock`: the quota's windows, the
client's pauses on them and its backoffs between retries pass in simulated time, so the
run waits on none of them in real time, while every request still crosses real HTTP with
its injected fault. What the process does (exit codes, signals) is test_signals' and
test_crash_resume's.
"""

from __future__ import annotations

import typing as t

import pytest

from crmphones.clock import FakeClock
from crmphones_emulators import Faults
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

#: Enough for every fault kind to be met at about its rate (asserted below): some 560
#: requests for Outreach and One Degree, 340 for Activix, 150 for Ticket Evolution.
RECORDS = 500


@pytest.mark.parametrize("dialect", list(DESTINATIONS))
def test_load_under_faults_matches_a_clean_run(dialect: str, workdir: pathlib.Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    lines = singer_input(dialect, RECORDS)
    expected = clean_view(dialect, lines, workdir)
    assert expected, "the clean run wrote nothing to compare with"
    # One simulated clock for the client (its pauses and backoffs) and the emulator's quota.
    clock = FakeClock()
    monkeypatch.setattr("crmphones.clock.DEFAULT_CLOCK", clock)
    faults = Faults(latency_ms=1, jitter_ms=2, error_rate=0.08, drop_rate=0.04, seed=3)
    # A quota of 40 requests a second: the load runs into it in bursts (429/503 + Retry-After).
    server = serve(dialect, faults=faults, rate_limit=40, rate_window=1.0, clock=clock)
    try:
        staging = str(workdir / "faulty.duckdb")
        config = {**DESTINATIONS[dialect].settings(server.url), "staging_path": staging,
                  "report_dir": ""}
        _, error = run_here(config, lines)
        assert error is None, error
        log = server.requests
        assert DESTINATIONS[dialect].view(server.app.snapshot()) == expected
    finally:
        server.stop()
    (counts,) = run_counts(staging)
    assert counts["received"] == RECORDS
    assert sum(v for k, v in counts.items() if k != "received") == RECORDS
    injected = {kind: sum(1 for r in log if r.fault == kind) for kind in ("error", "dropped")}
    throttled = sum(1 for r in log if r.status in (429, 503) and r.fault is None)
    # The faults were met at about their rates (Ticket Evolution, one create per client,
    # sends the fewest requests: some 150 here).
    assert injected["error"] >= max(5, 0.5 * faults.error_rate * len(log))
    assert injected["dropped"] >= max(3, 0.5 * faults.drop_rate * len(log))
    if dialect != "outreach":  # Outreach's X-RateLimit headers let the client wait, not be refused
        assert throttled > 0
    # The waits were the quota's and the retries': simulated, not skipped.
    assert sum(clock.sleeps) > 0
    print(f"{dialect}: {len(log)} requests, {injected['error']} injected errors, "
          f"{injected['dropped']} dropped responses, {throttled} throttled; "
          f"{counts} accounted for; {sum(clock.sleeps):.0f} s waited in simulated time")
