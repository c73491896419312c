"""Faults survived: with errors, dropped responses and 429 bursts injected, a load of
thousands of records completes, accounted for, and the destination ends exactly as after a
clean run (a create whose response was lost is looked for before it is sent again)."""

from __future__ import annotations

import typing as t

import pytest

from crmphones_emulators import Faults
from tests.reliability.conftest import DESTINATIONS, clean_view, run_counts, run_target, serve, singer_input

if t.TYPE_CHECKING:
    import pathlib

RECORDS = 1000


@pytest.mark.parametrize("dialect", list(DESTINATIONS))
def test_load_under_faults_matches_a_clean_run(dialect: str, tmp_path: pathlib.Path) -> None:
    lines = singer_input(dialect, RECORDS)
    expected = clean_view(dialect, lines, tmp_path)
    faults = Faults(latency_ms=1, jitter_ms=2, error_rate=0.08, drop_rate=0.04, seed=3)
    # A quota of 40 requests a second: the load runs into it in bursts (429/503 + Retry-After).
    server = serve(dialect, faults=faults, rate_limit=40, rate_window=1.0)
    try:
        staging = str(tmp_path / "faulty.duckdb")
        config = {**DESTINATIONS[dialect].settings(server.url), "staging_path": staging}
        result = run_target(config, lines, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
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
    print(f"{dialect}: {len(log)} requests, {injected['error']} injected errors, "
          f"{injected['dropped']} dropped responses, {throttled} throttled; "
          f"{counts} accounted for")
