"""A stop is a clean stop: SIGTERM or SIGINT mid-write lets the writes in flight finish, prints
no STATE past a record not written, records the run as interrupted, and exits non-zero in one
line; the next run, reading from the bookmark printed, leaves the destination as one clean run
would. A run that fails mid-write ends its row too (issue 22, items 1 and 5)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
import typing as t
from dataclasses import dataclass

import duckdb
import pytest

from crmphones.http import RetryPolicy
from crmphones.settings import dialect_for
from crmphones_emulators import Faults
from target_crmphones.loader import NOT_SENT_STOPPED, Load
from tests.reliability.conftest import (
    DESTINATIONS,
    clean_view,
    run_here,
    serve,
    singer_input,
    writes_sent,
)

if t.TYPE_CHECKING:
    import pathlib

RECORDS = 160
EVERY = 20  # a STATE, and a batch, every EVERY records
NOT_SENT = NOT_SENT_STOPPED


@dataclass
class Stopped:
    """What one signalled run printed and left."""

    returncode: int
    printed: list[int]  # bookmarks printed, in order
    stderr: str
    #: The writes the emulator had not answered yet when the process had exited.
    unanswered: int


def _from(lines: list[str], bookmark: int) -> list[str]:
    """The input a tap sends when resumed from `bookmark`: the schema, then what follows it."""
    if not bookmark:
        return lines
    start = next(i for i, line in enumerate(lines) if json.loads(line)["type"] == "STATE"
                 and json.loads(line)["value"]["bookmarks"]["phones"]["upto"] == bookmark)
    return [lines[0], *lines[start + 1:]]


def _start(config_file: pathlib.Path, lines: list[str], workdir: pathlib.Path
           ) -> subprocess.Popen[str]:
    """The target as Meltano runs it, its input the whole of `lines`."""
    source = workdir / "input.jsonl"
    source.write_text("\n".join(lines) + "\n")
    with source.open() as stdin:
        return subprocess.Popen(
            [sys.executable, "-m", "target_crmphones", "--config", str(config_file)],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir, text=True)


def _signalled(config_file: pathlib.Path, lines: list[str], server: t.Any, workdir: pathlib.Path,
               signals: list[int], writes: int = 1) -> Stopped:
    """Run the target, and once `writes` of its writes have reached the emulator send
    `signals`, each after the target has said it took the one before."""
    before = writes_sent(server)
    process = _start(config_file, lines, workdir)
    assert process.stderr is not None and process.stdout is not None
    err: list[str] = []
    taken = threading.Semaphore(0)

    def read_stderr() -> None:
        for line in process.stderr:
            err.append(line)
            if "received: stopping" in line:  # the first signal's handler ran
                taken.release()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while writes_sent(server) - before < writes and process.poll() is None:  # the writes begin
        assert time.monotonic() < deadline
        time.sleep(0.005)
    for n, signum in enumerate(signals):
        if n:
            assert taken.acquire(timeout=60), "the target never said it took the first signal"
        process.send_signal(signum)
    out = process.stdout.read()
    process.wait(timeout=60)
    unanswered = sum(1 for r in list(server.requests)
                     if r.method in ("POST", "PUT", "PATCH") and not r.done)
    reader.join(timeout=60)
    process.stdout.close()
    process.stderr.close()
    printed = [json.loads(line)["bookmarks"]["phones"]["upto"] for line in out.splitlines()
               if line.strip()]
    return Stopped(process.returncode, printed, "".join(err), unanswered)


def _last_run(staging: str) -> dict[str, t.Any]:
    with duckdb.connect(staging, read_only=True) as con:
        cursor = con.execute("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1")
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
        assert row is not None
        run = dict(zip(names, row, strict=True))
        run["outcomes"] = dict(con.execute(
            "SELECT seq, detail FROM outcomes WHERE run_id = ?", [run["run_id"]]).fetchall())
    return run


def _assert_clean_stop(stopped: Stopped, signum: int, staging: str, offset: int) -> None:
    """The exit, the one line, the STATEs printed and the ledger of one stopped run
    (`offset`: the input's first record follows that bookmark)."""
    assert stopped.returncode == 128 + signum, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith("target-crmphones: error: stopped by"), stopped.stderr[-3000:]
    assert signal.Signals(signum).name in last
    run = _last_run(staging)
    assert run["status"] == "interrupted"
    assert run["error"] == last.removeprefix("target-crmphones: error: ")
    assert run["report_path"], "an interrupted run writes its report"
    assert run["finished_at"] is not None
    outcomes = run["outcomes"]
    # Every record read is accounted for, exactly once.
    assert run["received"] == len(outcomes) == sum(
        run[k] for k in ("created", "updated", "unchanged", "merged", "rejected"))
    # Every STATE printed covers only records that are written or rejected for a reason of
    # their own, never one the stop left unsent.
    for upto in stopped.printed:
        covered = range(1, upto - offset + 1)
        assert all(seq in outcomes and outcomes[seq] != NOT_SENT for seq in covered), (
            f"STATE {upto} printed past a record not sent")
    # What the stop left unsent comes after the last STATE printed.
    unsent = [seq for seq, detail in outcomes.items() if detail == NOT_SENT]
    bookmark = max(stopped.printed, default=offset)
    assert all(seq + offset > bookmark for seq in unsent)


# One signal per dialect, the two alternating: the target installs one handler for both
# (`TargetCRMPhones._on_stop_signal`, for SIGTERM and SIGINT alike), so they share every path
# but the name and exit code asserted here; test_a_second_signal_stops_at_once sends both.
@pytest.mark.parametrize(("dialect", "signum"), [
    pytest.param(dialect, signum, id=f"{dialect}-{signum.name}")
    for dialect, signum in zip(DESTINATIONS, [signal.SIGTERM, signal.SIGINT] * 2, strict=True)])
def test_a_signal_stops_cleanly_and_the_next_run_completes(
        dialect: str, signum: int, workdir: pathlib.Path) -> None:
    """The stops are real processes signalled; the clean run and the run after the stops
    (resuming from the ledger, not about the process) run in-process."""
    lines = singer_input(dialect, RECORDS, seed=12, state_every=EVERY)
    expected = clean_view(dialect, lines, workdir, batch_size_rows=EVERY)
    # Slow enough that a signal lands while max_concurrency writes are in flight.
    server = serve(dialect, faults=Faults(latency_ms=25))
    staging = str(workdir / "ledger.duckdb")
    config = {**DESTINATIONS[dialect].settings(server.url), "staging_path": staging,
              "batch_size_rows": EVERY, "report_dir": str(workdir / "reports")}
    config_file = workdir / "target.json"
    config_file.write_text(json.dumps(config))
    rng = random.Random(f"signals-{dialect}-{signum}")
    bookmark = 0
    stops = []
    try:
        # Two stops: as the first writes go out, then after a random number of writes (fewer
        # than any dialect's run sends).
        for writes in (1, rng.randint(8, 40)):
            stopped = _signalled(config_file, _from(lines, bookmark), server, workdir, [signum],
                                 writes)
            _assert_clean_stop(stopped, signum, staging, bookmark)
            bookmark = max(stopped.printed, default=bookmark)
            stops.append((writes, bookmark))
        server.faults.latency_ms = 0  # the rerun is no longer about landing a signal
        printed, error = run_here(config, _from(lines, bookmark))
        assert error is None, error
        assert DESTINATIONS[dialect].view(server.app.snapshot()) == expected
    finally:
        server.stop()
    finished = _last_run(staging)
    assert finished["status"] == "finished"
    assert finished["error"] is None
    assert printed[-1]["bookmarks"]["phones"]["upto"] == RECORDS
    print(f"{dialect} {signal.Signals(signum).name}: stops after (writes, bookmark) {stops}; "
          "destination exact after the rerun")


def test_a_second_signal_stops_at_once(workdir: pathlib.Path) -> None:
    """Writes slow enough to outlast the grace period: the second signal does not wait. The
    proof is the emulator's log: when the process has exited, none of the writes in flight
    has been answered yet (waiting for them would have seen them answered)."""
    lines = singer_input("outreach", RECORDS, seed=12, state_every=EVERY)
    expected = clean_view("outreach", lines, workdir, batch_size_rows=EVERY)
    # Writes answered after 3 s: the first signal would wait for them, the second does not.
    server = serve("outreach", faults=Faults(latency_ms=3000))
    staging = str(workdir / "ledger.duckdb")
    config = {**DESTINATIONS["outreach"].settings(server.url), "staging_path": staging,
              "batch_size_rows": EVERY}
    config_file = workdir / "target.json"
    config_file.write_text(json.dumps(config))
    try:
        # Once max_concurrency (8) writes are in flight.
        stopped = _signalled(config_file, lines, server, workdir,
                             [signal.SIGTERM, signal.SIGINT], writes=8)
        assert stopped.returncode == 128 + signal.SIGINT, stopped.stderr[-3000:]
        assert "Traceback" not in stopped.stderr
        last = stopped.stderr.strip().splitlines()[-1]
        assert "stopped at once by a second SIGINT" in last
        assert stopped.unanswered == writes_sent(server) >= 8, (
            "the second signal waited for the writes in flight")
        run = _last_run(staging)
        assert run["status"] == "interrupted"
        assert run["error"] == last.removeprefix("target-crmphones: error: ")
        for upto in stopped.printed:
            assert all(seq in run["outcomes"] and run["outcomes"][seq] != NOT_SENT
                       for seq in range(1, upto + 1))
        bookmark = max(stopped.printed, default=0)
        server.faults.latency_ms = 0
        _, error = run_here(config, _from(lines, bookmark))
        assert error is None, error
        assert DESTINATIONS["outreach"].view(server.app.snapshot()) == expected
    finally:
        server.stop()


def test_a_failed_run_ends_its_row(workdir: pathlib.Path) -> None:
    """The credential is revoked mid-run: the run fails in one line, and its row says so,
    with the counts so far and the report; what was read but not sent is accounted for."""
    lines = singer_input("outreach", RECORDS, seed=12, state_every=EVERY)
    server = serve("outreach", faults=Faults(latency_ms=25))
    staging = str(workdir / "ledger.duckdb")
    config = {**DESTINATIONS["outreach"].settings(server.url), "staging_path": staging,
              "batch_size_rows": EVERY, "report_dir": str(workdir / "reports")}
    config_file = workdir / "target.json"
    config_file.write_text(json.dumps(config))
    try:
        process = _start(config_file, lines, workdir)
        deadline = time.monotonic() + 60
        while writes_sent(server) < 40 and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        server.app.configure({"token": "revoked"})
        out, err = process.communicate(timeout=60)
    finally:
        server.stop()
    assert process.returncode == 1, err[-3000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "401" in last, err[-3000:]
    run = _last_run(staging)
    assert run["status"] == "failed"
    assert run["error"] == last.removeprefix("target-crmphones: error: ")
    assert run["report_path"]
    assert run["created"] > 0
    assert run["received"] == len(run["outcomes"]) == sum(
        run[k] for k in ("created", "updated", "unchanged", "merged", "rejected"))
    printed = [json.loads(line)["bookmarks"]["phones"]["upto"] for line in out.splitlines()
               if line.strip()]
    for upto in printed:
        assert all(seq in run["outcomes"]
                   and not (run["outcomes"][seq] or "").startswith("failed run")
                   for seq in range(1, upto + 1))


def test_the_grace_period_cuts_retries_short(tmp_path: pathlib.Path) -> None:
    """Writes that the API keeps failing wait long between attempts: after the stop's grace
    period the waits end, and the records are left unsent (not given up: the API did not
    keep failing, the run stopped)."""
    server = serve("outreach", faults=Faults(fail_writes_containing="number"))
    dialect = dialect_for(DESTINATIONS["outreach"].settings(server.url))
    dialect.client.retry = RetryPolicy(base_delay=20.0)
    load = Load(dialect, str(tmp_path / "ledger.duckdb"), dry_run=False, report_dir=None)
    records = [json.loads(line)["record"] for line in singer_input("outreach", 30, seed=12)[1:]]
    threading.Timer(0.5, load.stop, kwargs={"grace": 0.5}).start()
    started = time.monotonic()
    try:
        load.stage_batch([(load.next_seq(), "phones", record) for record in records])
        load.write_run()
        took = time.monotonic() - started
        unsent = load.settle_unsent(NOT_SENT_STOPPED)
        counts = load.finish("interrupted", "stopped by the test")
    finally:
        load.close()
        server.stop()
    assert took < 3, f"the stop waited {took:.1f}s for retries"
    assert unsent > 0
    assert load.given_up == 0
    assert counts["received"] == len(records) == sum(
        v for k, v in counts.items() if k != "received")
