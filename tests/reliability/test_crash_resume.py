"""Nothing lost, nothing twice, across crashes: target-crmphones is killed with SIGKILL at
random moments while it writes, then rerun with the same input until one run completes; the
destination must end exactly as after one clean run, for every dialect."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import typing as t

import pytest

from crmphones_emulators import Faults
from tests.reliability.conftest import DESTINATIONS, clean_view, run_counts, run_target, serve, singer_input

if t.TYPE_CHECKING:
    import pathlib

RECORDS = 400
KILLS = 6  # per dialect: 24 in all


def _writes(server: t.Any) -> int:
    return sum(1 for r in server.requests if r.method in ("POST", "PUT", "PATCH"))


@pytest.mark.parametrize("dialect", list(DESTINATIONS))
def test_sigkill_then_rerun_ends_as_one_clean_run(dialect: str, tmp_path: pathlib.Path) -> None:
    lines = singer_input(dialect, RECORDS, seed=9)
    expected = clean_view(dialect, lines, tmp_path)
    view = DESTINATIONS[dialect].view
    # Slow enough to be caught mid-write with max_concurrency (8) requests in flight.
    server = serve(dialect, faults=Faults(latency_ms=50))
    staging = str(tmp_path / "ledger.duckdb")
    config_file = tmp_path / "target.json"
    config_file.write_text(json.dumps({**DESTINATIONS[dialect].settings(server.url),
                                       "staging_path": staging}))
    rng = random.Random(f"kills-{dialect}")
    mid_write = 0
    try:
        for _ in range(KILLS):
            before = _writes(server)
            process = subprocess.Popen(
                [sys.executable, "-m", "target_crmphones", "--config", str(config_file)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                cwd=tmp_path, text=True)
            assert process.stdin is not None
            process.stdin.write("\n".join(lines) + "\n")
            process.stdin.close()
            deadline = time.monotonic() + 60
            while _writes(server) == before and process.poll() is None:  # writing begins
                assert time.monotonic() < deadline
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.15))  # then a random point among the writes
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            state = view(server.app.snapshot())
            if _writes(server) > before and state != expected:
                mid_write += 1
        result = run_target({**DESTINATIONS[dialect].settings(server.url), "staging_path": staging},
                            lines, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
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
