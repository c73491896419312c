"""A quota-bound migration per dialect (`python -m benchmarks.quota`), issue 23's figures.

Each dialect's emulator allows L requests per fixed window of an hour (`QUOTAS`), and Outreach's access
tokens live an hour too (the real 7,200 s would not expire within a few windows), refreshed
through its OAuth token endpoint. The real target writes a migration of new phones into it,
in-process, with the settings a user gets (Outreach paced under its limit by default and
learning it from `X-RateLimit-Limit`; the others pausing on their throttle: 429 +
`Retry-After`, Ticket Evolution's 503 naming no time). Time is simulated: one `FakeClock`
drives the client and the emulator, so hours pass in seconds and the figures are the ones an
hour-long run would show. Printed per dialect: simulated wall time against the floor the
quota sets (requests the server let through / (L / window)), records lost or rejected for
transient reasons, pauses, token refreshes, and requests per changed phone. The writes go one
at a time (`max_concurrency: 1`): the quota, not concurrency, bounds such a run, and a single
sender keeps the simulated time exact.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import pathlib
import tempfile
import typing as t

import duckdb

import crmphones.clock
from crmphones.clock import FakeClock
from target_crmphones.target import TargetCRMPhones
from tests.reliability.conftest import DESTINATIONS, serve, singer_input

WINDOW = 3600.0
#: Outreach's OAuth app as its emulator knows it.
OAUTH = {"client_id": "bench-client", "client_secret": "bench-client-secret",
         "refresh_token": "bench-refresh-token"}
#: Per dialect: requests a window (a few windows' worth for the migration), the window, and
#: the app options that make its throttle the documented one. Ticket Evolution publishes no
#: window and its 503 names no time: its window is the minute the client assumes
#: (``ticketevolution.THROTTLE_PAUSE``); an hour's would outlast any pause it can guess.
QUOTAS: dict[str, tuple[int, float, dict[str, t.Any]]] = {
    "outreach": (500, WINDOW, {**OAUTH, "token_lifetime": WINDOW}),
    "activix": (120, WINDOW, {}),
    "onedegree": (500, WINDOW, {}),
    "ticketevolution": (20, 60.0, {"throttle_retry_after": False}),
}


def migrate(dialect: str, records: int) -> dict[str, t.Any]:
    """Write `records` new phones into `dialect`'s emulator under its hourly quota."""
    limit, window, options = QUOTAS[dialect]
    clock = FakeClock()
    crmphones.clock.DEFAULT_CLOCK = clock
    server = serve(dialect, rate_limit=limit, rate_window=window, clock=clock,
                   **options)
    try:
        with tempfile.TemporaryDirectory() as work:
            staging = str(pathlib.Path(work) / "ledger.duckdb")
            config = {**DESTINATIONS[dialect].settings(server.url), "staging_path": staging,
                      "report_dir": "", "max_concurrency": 1}
            config.pop("max_requests_per_minute", None)  # the default pacing, as users get it
            if dialect == "outreach":
                config.pop("access_token")
                config.update(OAUTH, oauth_token_url=f"{server.url}/oauth/token",
                              token_cache_path=str(pathlib.Path(work) / "token.json"))
            target = TargetCRMPhones(config=config)
            started = clock.now()
            with contextlib.redirect_stdout(io.StringIO()):
                target.listen(file_input=io.StringIO("\n".join(singer_input(dialect, records))
                                                     + "\n"))
            wall = clock.now() - started
            client = target.dialect.client
            oauth = getattr(target.dialect, "oauth", None)
            with duckdb.connect(staging, read_only=True) as con:
                changed, transient = con.execute(
                    "SELECT count(*) FILTER (WHERE outcome IN ('created', 'updated')), "
                    "count(*) FILTER (WHERE detail LIKE '%transient%' OR detail LIKE 'given up%')"
                    " FROM outcomes").fetchone()
        log = [r for r in server.requests if "/oauth/" not in r.path]
    finally:
        server.stop()
        crmphones.clock.DEFAULT_CLOCK = crmphones.clock.SYSTEM_CLOCK
    let_through = sum(1 for r in log if r.status < 300)
    floor = let_through / (limit / window)
    return {"dialect": dialect, "records": records, "limit": limit, "window_s": window,
            "requests": len(log), "throttled": sum(1 for r in log if r.status in (429, 503)),
            "wall_h": round(wall / 3600, 3), "floor_h": round(floor / 3600, 3),
            "wall_over_floor": round(wall / floor, 3) if floor else None,
            "lost_or_transient": transient, "changed": changed,
            "requests_per_changed_phone": round(let_through / changed, 3) if changed else None,
            "pauses": client.governor.pauses, "paused_h": round(client.waited_seconds / 3600, 3),
            "token_refreshes": oauth.refreshes if oauth is not None else None}


def main() -> None:
    """Print one line of figures per dialect (JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1500)
    parser.add_argument("--dialect", choices=list(QUOTAS), action="append")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the pause and progress lines of simulated hours
    for dialect in args.dialect or list(QUOTAS):
        print(json.dumps(migrate(dialect, args.records)), flush=True)


if __name__ == "__main__":
    main()
