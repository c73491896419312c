"""A quota-bound migration per dialect (`python benchmarks/quota.py`), issue 23's figures.

Each dialect's emulator allows L requests per window of W seconds (an hour's window scaled
down to a few seconds; Ticket Evolution throttles with a 503 naming no time, the others with
429 + Retry-After, Outreach also with its X-RateLimit headers), and the real target writes a
migration into it as Meltano runs it, pacing off (`max_requests_per_minute: 0`: the quota is
what bounds the run). Printed per dialect: wall time against the floor the quota sets
(requests the server let through / (L / W)), records lost or rejected for transient reasons,
the pauses the server saw (gaps between requests of half a window or more), and requests per
changed phone. Wall time is the span from the first request to the last answer (the
process's start-up is printed apart). A fixed window lets a burst through at its start, so a
short run can beat the floor. Token refreshes: the OAuth flow (issue 23 item 1) is not in this
tree; the column stays empty until it is.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import subprocess
import sys
import tempfile
import time
import typing as t

import duckdb

from tests.reliability.conftest import DESTINATIONS, serve, singer_input

if t.TYPE_CHECKING:
    from crmphones_emulators.server import LoggedRequest

#: Per dialect: requests a window and the app options that make its throttle the documented one.
QUOTAS: dict[str, tuple[int, dict[str, t.Any]]] = {
    "outreach": (60, {}),
    "activix": (60, {}),
    "onedegree": (60, {}),
    "ticketevolution": (60, {"throttle_retry_after": False}),
}


def _pauses(log: list[LoggedRequest], window: float) -> int:
    times = sorted(r.at for r in log)
    return sum(1 for a, b in itertools.pairwise(times) if b - a >= window / 2)


def migrate(dialect: str, records: int, window: float) -> dict[str, t.Any]:
    """Write `records` new phones into `dialect`'s emulator under the scaled quota."""
    limit, options = QUOTAS[dialect]
    destination = DESTINATIONS[dialect]
    server = serve(dialect, rate_limit=limit, rate_window=window, **options)
    try:
        with tempfile.TemporaryDirectory() as work:
            staging = str(pathlib.Path(work) / "ledger.duckdb")
            config = {**destination.settings(server.url), "staging_path": staging,
                      "max_requests_per_minute": 0, "report_dir": work}
            config_path = pathlib.Path(work) / "config.json"
            config_path.write_text(json.dumps(config))
            lines = singer_input(dialect, records)
            started = time.monotonic()
            result = subprocess.run([sys.executable, "-m", "target_crmphones", "--config",
                                     str(config_path)], input="\n".join(lines) + "\n",
                                    capture_output=True, text=True, check=False, cwd=work)
            wall = time.monotonic() - started
            if result.returncode != 0:
                msg = f"{dialect}: the target failed:\n{result.stderr[-3000:]}"
                raise SystemExit(msg)
            with duckdb.connect(staging, read_only=True) as con:
                created, transient = con.execute(
                    "SELECT count(*) FILTER (WHERE outcome IN ('created', 'updated')), "
                    "count(*) FILTER (WHERE detail LIKE '%transient%' OR detail LIKE 'given up%')"
                    " FROM outcomes").fetchone()
            (report,) = [json.loads(p.read_text()) for p in pathlib.Path(work).glob("run-*.json")]
        log = list(server.requests)
    finally:
        server.stop()
    let_through = sum(1 for r in log if r.status < 300)
    floor = let_through / (limit / window)
    # The writes' span, first request to last answer: the process's start-up is no quota's.
    span = max(r.done for r in log) - min(r.at for r in log)
    return {"dialect": dialect, "records": records, "requests": len(log),
            "throttled": sum(1 for r in log if r.status in (429, 503)),
            "process_s": round(wall, 1), "wall_s": round(span, 1), "floor_s": round(floor, 1),
            "wall_over_floor": round(span / floor, 3) if floor else None,
            "lost_or_transient": transient, "changed": created,
            "requests_per_changed_phone": round(let_through / created, 3) if created else None,
            "pauses_seen": _pauses(log, window),
            "waited_s": report["rate_limit_wait_seconds"], "token_refreshes": None}


def main() -> None:
    """Print one line of figures per dialect (JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=150)
    parser.add_argument("--window", type=float, default=3.0, help="the scaled hour, seconds")
    parser.add_argument("--dialect", choices=list(QUOTAS), action="append")
    args = parser.parse_args()
    for dialect in args.dialect or list(QUOTAS):
        print(json.dumps(migrate(dialect, args.records, args.window)), flush=True)


if __name__ == "__main__":
    main()
