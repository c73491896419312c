"""Rate-budget saturation through the real target (`python benchmarks/rate_budget.py`).

An Outreach emulator allows R requests a second (a fixed one-second window) and answers after
L ms; the target writes with more workers than R x L needs. Figures come from the emulator's
request log: the rate it let through after the first second, the 429s after the first second,
and, once a background thread lowers R mid-run, how fast and how cleanly the target follows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import typing as t

import duckdb

from crmphones_emulators import EmulatorServer, Faults
from crmphones_emulators.outreach import OutreachApp
from tests.reliability.conftest import DESTINATIONS, TOKEN

if t.TYPE_CHECKING:
    from crmphones_emulators.server import LoggedRequest

SETTLE = 2.0  # seconds allowed to adapt after the limit changes


def _lines(records: int, parents: int) -> list[str]:
    """New numbers (one create each) spread over `parents` prospects."""
    rng = random.Random("rate-budget")
    numbers = rng.sample(range(2_000_000, 9_999_999), records)
    lines = [json.dumps({"type": "SCHEMA", "stream": "phones", "key_properties": [],
                         "schema": {"type": "object", "properties": {}}})]
    for n, number in enumerate(numbers):
        record = {"parent_type": "prospect", "parent_id": str(rng.randint(1, parents)),
                  "number": f"+1212{number}", "phone_type": ("mobile", "work", "home")[n % 3]}
        lines.append(json.dumps({"type": "RECORD", "stream": "phones", "record": record}))
    return lines


def _served(log: list[LoggedRequest], start: float, end: float) -> float:
    """Requests let through (not throttled, no server error) per second in [start, end)."""
    if end <= start:
        return 0.0
    return sum(1 for r in log if start <= r.at < end and r.status < 429) / (end - start)


def _throttled(log: list[LoggedRequest], start: float, end: float = float("inf")) -> int:
    return sum(1 for r in log if start <= r.at < end and r.status == 429)


def rate_budget(rate: int = 40, latency_ms: float = 50, concurrency: int = 16,
                records: int = 1000, lower_to: int = 20, lower_after: float = 15.0
                ) -> dict[str, t.Any]:
    """Run the target against a budget of `rate`/s, lowered to `lower_to`/s mid-run.

    Args:
        rate: Requests a second the emulator allows at first (R).
        latency_ms: The emulator's answer time (L).
        concurrency: The target's ``max_concurrency``.
        records: Phones to create (one POST each), over records / 2 prospects.
        lower_to: The limit set `lower_after` seconds after the first request.
        lower_after: Seconds from the first request to the change.

    Returns:
        The figures, rates in requests a second.
    """
    parents = max(1, records // 2)
    app = OutreachApp(records=0, parents=parents, seed=3, token=TOKEN, rate_limit=rate,
                      rate_window=1.0)
    with EmulatorServer(app, faults=Faults(latency_ms=latency_ms)) as server, \
            tempfile.TemporaryDirectory() as work:
        staging = os.path.join(work, "ledger.duckdb")
        config = {**DESTINATIONS["outreach"].settings(server.url), "staging_path": staging,
                  "max_concurrency": concurrency, "report_dir": ""}
        config_path = os.path.join(work, "target.json")
        with open(config_path, "w") as handle:
            json.dump(config, handle)
        changed: list[float] = []

        def lower() -> None:  # R drops a fixed time after the load's first request
            while not server.requests:
                time.sleep(0.01)
            time.sleep(max(0.0, server.requests[0].at + lower_after - time.time()))
            app.configure({"rate_limit": lower_to})
            changed.append(time.time())

        lowering = threading.Thread(target=lower, daemon=True)
        lowering.start()
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "target_crmphones", "--config", config_path],
                       input="\n".join(_lines(records, parents)) + "\n", capture_output=True,
                       text=True, check=True, cwd=work)
        seconds = time.perf_counter() - started
        lowering.join(timeout=lower_after + 5)
        log = list(server.requests)
        with duckdb.connect(staging, read_only=True) as con:
            row = con.execute("SELECT created, rate_limit_wait_seconds FROM runs").fetchone()
    assert row is not None and changed, "the load ended before the limit was lowered"
    t0, end, change = log[0].at, log[-1].at, changed[0]
    first_throttle = [r.at for r in log if r.status == 429 and r.at < t0 + 1]
    resumed = min((r.at for r in log if first_throttle and r.at > max(first_throttle) + 0.5),
                  default=t0)
    return {
        "rate": rate, "latency_ms": latency_ms, "concurrency": concurrency,
        "requests": len(log), "created": row[0], "seconds": round(seconds, 1),
        "throttled_first_second": _throttled(log, t0, t0 + 1),
        "achieved": round(_served(log, t0 + 1, change), 1),
        "achieved_after_pause": round(_served(log, resumed, change), 1),
        "throttled_after_first_second": _throttled(log, t0 + 1, change),
        "lowered_to": lower_to, "lowered_at": round(change - t0, 1),
        "throttled_after_change": _throttled(log, change),
        "throttled_after_settling": _throttled(log, change + SETTLE),
        "adapted": round(_served(log, change + SETTLE, end), 1),
        "wait_seconds_summed_over_threads": round(row[1] or 0.0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=40)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--lower-to", type=int, default=20)
    parser.add_argument("--lower-after", type=float, default=15.0)
    args = parser.parse_args()
    report(args.rate, args.latency_ms, args.concurrency, args.records, args.lower_to,
           args.lower_after)


def report(*args: t.Any) -> None:
    """Run `rate_budget(*args)` and print its table."""
    row = rate_budget(*args)
    print("| R/s | L ms | workers | achieved/s (after 1 s) | after the first pause | "
          "429 in 1st s | 429 after 1st s | R lowered to | at s | adapted/s (after "
          f"{SETTLE:.0f} s) | 429 after change | 429 after settling | requests | s |")
    print("|" + "---:|" * 14)
    print(f"| {row['rate']} | {row['latency_ms']:g} | {row['concurrency']} | {row['achieved']} "
          f"({row['achieved'] / row['rate']:.0%}) | {row['achieved_after_pause']} | "
          f"{row['throttled_first_second']} | {row['throttled_after_first_second']} | "
          f"{row['lowered_to']} | {row['lowered_at']} | {row['adapted']} "
          f"({row['adapted'] / row['lowered_to']:.0%}) | {row['throttled_after_change']} | "
          f"{row['throttled_after_settling']} | {row['requests']} | {row['seconds']} |")


if __name__ == "__main__":
    main()
