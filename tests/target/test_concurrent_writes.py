"""Concurrent writes: owners written in parallel (``max_concurrency``) end exactly where one
writer at a time ends, for every dialect; a refused credential in any worker stops the run at
once; a kill in the middle of parallel writes loses nothing and doubles nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import typing as t

import duckdb
import pytest

from crmphones_emulators import Faults
from tests.conftest import in_flight_at_once
from tests.reliability.conftest import DESTINATIONS, clean_view, run_counts, serve, singer_input
from tests.target.conftest import TargetRunner

if t.TYPE_CHECKING:
    import pathlib

    from crmphones_emulators import EmulatorServer, LoggedRequest

# Enough for every dialect's main load to plan dozens of creates and updates, written 6 to 8
# at a time by 8 workers: all the comparison of one writer and eight needs.
RECORDS = 150
# The refused-credential load: long enough that a run cut short is told from a finished one
# (it stops after a few dozen writes, so its length costs nothing).
LONG_RECORDS = 300
LATENCY_MS = 5


def _inputs(dialect: str, records: int = RECORDS) -> tuple[list[str], list[str]]:
    """A seed load (the first two thirds) and a main load that creates the rest and changes
    the label of every fourth seeded record (so the plan holds updates and creates)."""
    lines = singer_input(dialect, records, seed=12)
    labels = DESTINATIONS[dialect].labels
    main = [lines[0]]
    for n, line in enumerate(lines[1:]):
        message = json.loads(line)
        record = message["record"]
        if dialect == "onedegree" and n % 5 == 0:
            record["is_primary"] = True  # several primaries per owner: the latest must win
        if n % 4 == 0:
            record["label"] = labels[(labels.index(record["label"]) + 1) % len(labels)]
        main.append(json.dumps(message))
    seed = lines[: 1 + records * 2 // 3]
    return seed, main


def _outcomes(staging: str) -> list[tuple]:
    """The latest run's outcome per record (destination ids differ between runs)."""
    with duckdb.connect(staging, read_only=True) as con:
        return con.execute(
            "SELECT seq, outcome, detail FROM outcomes WHERE run_id = "
            "(SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1) ORDER BY seq").fetchall()


def _requests(server: EmulatorServer) -> list[LoggedRequest]:
    """The main load's requests (the reads of each batch's diff included)."""
    return list(server.requests)


def _writes(server: EmulatorServer) -> list[float]:
    return sorted(r.at for r in server.requests if r.method in ("POST", "PUT", "PATCH"))


def _load(dialect: str, concurrency: int, workdir: pathlib.Path) -> tuple[EmulatorServer, str]:
    """Seed an account one writer at a time, then run the main load at `concurrency`."""
    seed, main = _inputs(dialect)
    server = serve(dialect)
    staging = str(workdir / f"ledger-{concurrency}.duckdb")
    config = {**DESTINATIONS[dialect].settings(server.url), "staging_path": staging}
    runner = TargetRunner(workdir)
    runner.run({**config, "max_concurrency": 1}, seed)
    server.faults.latency_ms = LATENCY_MS  # long enough for writes to overlap
    server.requests.clear()
    runner.run({**config, "max_concurrency": concurrency}, main)
    return server, staging


@pytest.mark.parametrize("dialect", list(DESTINATIONS))
def test_parallel_owners_end_as_one_writer_does(dialect: str, tmp_path: pathlib.Path) -> None:
    one, one_staging = _load(dialect, 1, tmp_path)
    many, many_staging = _load(dialect, 8, tmp_path)
    try:
        view = DESTINATIONS[dialect].view
        assert view(many.app.snapshot()) == view(one.app.snapshot())
        counts = run_counts(many_staging)[-1]
        assert counts == run_counts(one_staging)[-1]
        # Half the margins of the 300-record load: the plan holds creates and updates.
        assert counts["created"] > 25 and counts["updated"] + counts["rejected"] > 5
        assert _outcomes(many_staging) == _outcomes(one_staging)
        # One writer never overlaps (each write is answered before the next is sent); eight
        # do, as the server saw them, or this test would prove nothing about concurrency.
        assert in_flight_at_once(_requests(one)) == 1
        assert 2 < in_flight_at_once(_requests(many)) <= 8
    finally:
        one.stop()
        many.stop()


def test_a_refused_credential_in_a_worker_stops_the_run_at_once(tmp_path: pathlib.Path) -> None:
    """One Degree signs writes: the secret changes under a running load; the first 401 in any
    worker ends the run with the one line naming the setting, with few writes after it.

    The run is the entry point in this process; a thread of this test watches the server's
    log and rotates the secret once parallel writes are under way, as the test did from
    outside when the run was a subprocess."""
    _, main = _inputs("onedegree", LONG_RECORDS)
    server = serve("onedegree", faults=Faults(latency_ms=20))
    config = {**DESTINATIONS["onedegree"].settings(server.url),
              "staging_path": str(tmp_path / "ledger.duckdb"), "max_concurrency": 8}
    finished = threading.Event()
    rotated: list[int] = []

    def rotate_when_writing() -> None:
        deadline = time.monotonic() + 60
        while len(_writes(server)) < 20:  # parallel writes are under way
            if finished.is_set() or time.monotonic() > deadline:
                return
            time.sleep(0.005)
        server.app.configure({"api_secret": "rotated-secret"})
        rotated.append(len(_writes(server)))

    watcher = threading.Thread(target=rotate_when_writing, name="rotate-secret")
    watcher.start()
    try:
        result = TargetRunner(tmp_path).run(config, main, check=False)
        log = list(server.requests)
    finally:
        finished.set()
        watcher.join()
        server.stop()
    assert rotated, "the secret was rotated while the run was writing"
    stderr = result.stderr
    assert result.returncode == 1
    assert "api_secret" in stderr and "Traceback" not in stderr
    assert "rotated-secret" not in stderr
    first_401 = next(i for i, r in enumerate(log) if r.status == 401)
    after = [r for r in log[first_401:] if r.method in ("POST", "PUT")]
    # At once: at most the writes in flight then, one per worker (and one just granted, at
    # the edge), however long the rest of the load would have taken.
    assert len(after) <= 8 + 2, f"{len(after)} writes sent after the first 401"
    assert len(log) < LONG_RECORDS  # the load was cut short, not finished
    print(f"{len(after)} writes after the first 401; last line: {stderr.strip().splitlines()[-1]}")


def test_killed_during_parallel_writes_then_rerun_ends_as_a_clean_run(
        tmp_path: pathlib.Path) -> None:
    """Every create the ledger recorded exists; the rerun completes without doubling any.

    The killed run is a subprocess (SIGKILL ends a process: nothing of it unwinds); the
    clean run and the rerun run the entry point in this process."""
    dialect = "outreach"
    lines = singer_input(dialect, RECORDS, seed=13)
    expected = clean_view(dialect, lines, tmp_path)
    server = serve(dialect, faults=Faults(latency_ms=25))
    staging = str(tmp_path / "ledger.duckdb")
    config = {**DESTINATIONS[dialect].settings(server.url), "staging_path": staging,
              "max_concurrency": 8}
    config_file = tmp_path / "target.json"
    config_file.write_text(json.dumps(config))
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "target_crmphones", "--config", str(config_file)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=tmp_path, text=True)
        assert process.stdin is not None
        process.stdin.write("\n".join(lines) + "\n")
        process.stdin.close()
        deadline = time.monotonic() + 60
        while len(_writes(server)) < 40:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        held = {str(p["id"]) for p in server.app.snapshot()["phoneNumbers"]}
        with duckdb.connect(staging, read_only=True) as con:
            recorded = {row[0] for row in con.execute(
                "SELECT destination_id FROM outcomes WHERE outcome = 'created'").fetchall()}
        assert DESTINATIONS[dialect].view(server.app.snapshot()) != expected  # cut mid-write
        assert recorded and recorded <= held
        TargetRunner(tmp_path).run(config, lines)
        assert DESTINATIONS[dialect].view(server.app.snapshot()) == expected
        assert [r for r in server.requests if r.method == "PATCH"] == []
    finally:
        server.stop()
