"""Standard input taken in by the intake process: the same run as in one process, and no
record lost or process left behind when either side stops."""

from __future__ import annotations

import io
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
import typing as t

import pytest

from benchmarks.messy_stream import SCHEMA as MESSY_SCHEMA
from benchmarks.messy_stream import messy_records
from crmphones import phones
from crmphones.settings import dialect_for
from target_crmphones.intake import Intake
from target_crmphones.intake_process import (
    _HEAD_BYTES,
    _HEAD_SECONDS,
    _HEADER,
    _Input,
    _read,
    _read_head,
    _warm_up,
    table_frame,
)
from tests.conftest import DESTINATION_TOKEN, outreach_config
from tests.target.conftest import TargetRunner, ledger

if t.TYPE_CHECKING:
    from crmphones.emulator import EmulatorServer

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for the child")


def _messy_input(records: int) -> list[str]:
    """Two interleaved streams of messy records over the destination's 150 prospects, with
    STATE between them, and lines the target must skip or reject."""
    rng = random.Random(11)
    lines = [json.dumps({"type": "SCHEMA", "stream": stream, "key_properties": keys,
                         "schema": MESSY_SCHEMA})
             for stream, keys in (("phones", ["id"]), ("more_phones", []))]
    for index, fields in enumerate(messy_records(records, parents=150, seed="intake"), 1):
        # Runs of one stream, then the other, and single records between.
        stream = "more_phones" if 1300 <= index < 1700 or rng.random() < 0.02 else "phones"
        lines.append(json.dumps({"type": "RECORD", "stream": stream, "record": fields}))
        if index % 500 == 0:
            lines.append(json.dumps({"type": "STATE", "value": {"done": index}}))
        if index in (10, 1200, 2100):
            lines += ["not json {", "[1, 2]", '{"no": "type"}', "",
                      json.dumps({"type": "RECORD", "stream": "more_phones",
                                  "record": "a string"})]
    lines.append(json.dumps({"type": "STATE", "value": {"done": records}}))
    return lines


def _run_ledger(path: str) -> dict[str, t.Any]:
    return {
        "staged": ledger(path, "SELECT seq, stream, fingerprint, e164, extension, phone_type, "
                               "reject_reason, record FROM staged ORDER BY seq"),
        "outcomes": ledger(path, "SELECT seq, outcome, destination_id, changes, detail "
                                 "FROM outcomes ORDER BY seq"),
        "runs": ledger(path, "SELECT received, created, updated, unchanged, merged, rejected, "
                             "skipped_lines FROM runs"),
    }


def test_same_run_with_and_without_the_intake_process(
    outreach_destination: EmulatorServer, target_runner: TargetRunner, tmp_path: pathlib.Path,
) -> None:
    """Every record staged with the same number, fields and reason, every outcome and every
    STATE the same, whether an intake process read the input or the target did; batches of
    700 cut through the intake process's tables of 1,000."""
    lines = _messy_input(2600)
    runs = {}
    for intake_process in (True, False):
        path = str(tmp_path / f"staging-{intake_process}.duckdb")
        config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=path,
                                 dry_run=True, intake_process=intake_process,
                                 batch_size_rows=700)
        result = target_runner.run(config, lines)
        assert ("intake process: peak RSS" in result.stderr) is intake_process
        runs[intake_process] = (_run_ledger(path), result.stdout.splitlines())
    (with_process, states), (alone, states_alone) = runs[True], runs[False]
    assert with_process == alone
    assert states == states_alone
    assert json.loads(states[-1]) == {"done": 2600}
    received, *outcomes, skipped = with_process["runs"][0]
    assert received == 2603 and sum(outcomes) == received  # every record, the 3 strings too
    assert skipped == 9
    assert {row[1] for row in with_process["staged"]} == {"phones", "more_phones"}
    assert any(row[6] == "record is not a JSON object" for row in with_process["staged"])


def test_tables_whose_numbers_the_target_normalizes_come_out_the_same(
    outreach_destination: EmulatorServer, tmp_path: pathlib.Path,
) -> None:
    """A table the intake process sends with its numbers as read (the target was waiting for
    tables), once the target has normalized them, is the table the process would have sent."""
    path = tmp_path / "input.singer"
    path.write_text("\n".join(_messy_input(2600)) + "\n")
    dialect = dialect_for(outreach_config(outreach_destination, DESTINATION_TOKEN))
    intake = Intake(dialect, None)

    def frames(waiting: bool) -> tuple[list[tuple[bytes, t.Any]], dict[str, int]]:
        sent: list[bytes] = []
        with path.open("rb") as handle:
            counts = _read(handle, intake, sent.append, waiting=lambda: waiting)
        decoded = []
        for frame in sent:
            kind, payload = frame[:1], frame[_HEADER.size:]
            decoded.append((kind, table_frame(payload) if kind in (b"T", b"U") else payload))
        return decoded, counts

    normalized, counts = frames(waiting=False)
    left, counts_left = frames(waiting=True)
    dialect.close()
    assert counts == {"tables": counts_left["tables"], "tables_numbers_left": 0}
    assert counts_left["tables_numbers_left"] == counts_left["tables"] > 5
    assert [kind for kind, _ in left] == [b"U" if kind == b"T" else kind for kind, _ in normalized]
    as_read = [table for kind, (_, table) in (f for f in left if f[0] == b"U")]
    as_normalized = [table for kind, (_, table) in (f for f in normalized if f[0] == b"T")]
    assert (sum(table["e164"].null_count for table in as_read)
            > sum(table["e164"].null_count for table in as_normalized))  # numbers as read

    def rows(frames: list[tuple[bytes, t.Any]]) -> list[tuple[bytes, t.Any]]:
        """Each frame, a table's rows normalized by the target when the process left them."""
        out = []
        for kind, frame in frames:
            if kind in (b"T", b"U"):
                stream, table = frame
                table = intake.finish_numbers(table) if kind == b"U" else table
                frame = (stream, table.to_pylist())
            out.append((b"T" if kind == b"U" else kind, frame))
        return out

    assert rows(left) == rows(normalized)


def test_the_head_taken_in_before_the_fork_is_read_again_by_the_child(
    outreach_destination: EmulatorServer, tmp_path: pathlib.Path,
) -> None:
    """The parent reads at most ``_HEAD_BYTES`` of the input, and no longer than
    ``_HEAD_SECONDS`` when the tap is slow; it takes the head's records in (the normalizer
    then knows their numbers), and a failure there does not stop the run; the child reads the
    head, then the rest, byte for byte."""
    data = ("\n".join(_messy_input(2600)) + "\n").encode()
    assert len(data) > 1.5 * _HEAD_BYTES
    path = tmp_path / "input.singer"
    path.write_bytes(data)
    with path.open("rb") as handle:
        head = _read_head(handle.fileno())
        assert head == data[:_HEAD_BYTES]
        assert io.BufferedReader(_Input(head, handle.fileno()), 4096).read() == data

    read_end, write_end = os.pipe()
    os.write(write_end, data[:5000])  # a tap that wrote this much, then nothing yet
    started = time.monotonic()
    slow_head = _read_head(read_end)
    assert _HEAD_SECONDS <= time.monotonic() - started < _HEAD_SECONDS + 1
    assert slow_head == data[:5000]
    os.write(write_end, data[5000:6000])
    os.close(write_end)
    assert io.BufferedReader(_Input(slow_head, read_end), 4096).read() == data[:6000]
    os.close(read_end)

    dialect = dialect_for(outreach_config(outreach_destination, DESTINATION_TOKEN))
    phones.use_backend("phonenumbers")
    before = phones._normalize_cached.cache_info()
    _warm_up(Intake(dialect, None), head)
    after = phones._normalize_cached.cache_info()
    assert after.hits + after.misses - before.hits - before.misses > 1000  # about 1,600 records

    class Failing(Intake):
        def normalize(self, *args: t.Any, **kwargs: t.Any) -> dict[str, t.Any]:
            raise RuntimeError

    _warm_up(Failing(dialect, None), head)  # only a saving: the child reports what fails
    dialect.close()


def _start(config_path: pathlib.Path, cwd: pathlib.Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "target_crmphones", "--config",
                             str(config_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)


def _child_of(pid: int) -> int:
    """The intake process of a running target (waits for the fork)."""
    children: list[str] = []
    for _ in range(300):
        children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    pytest.fail("the target started no intake process")


def _nobody_reads(pipe: t.IO[bytes]) -> bool:
    """True once writing to the target's input fails: no process holds it open to read."""
    for _ in range(100):
        try:
            pipe.write(b"\n")
            pipe.flush()
        except BrokenPipeError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def config_path(outreach_destination: EmulatorServer, tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(outreach_config(
        outreach_destination, DESTINATION_TOKEN, staging_path=str(tmp_path / "s.duckdb"),
        dry_run=True)))
    return path


def test_the_run_fails_when_the_intake_process_dies(config_path: pathlib.Path,
                                                     tmp_path: pathlib.Path) -> None:
    """Killed mid-input, the intake process takes the run with it, in one line: the records
    after it were never read, so the run must not end as if the input had."""
    lines = _messy_input(400)
    target = _start(config_path, tmp_path)
    assert target.stdin is not None and target.stderr is not None
    target.stdin.write(("\n".join(lines[:200]) + "\n").encode())
    target.stdin.flush()
    child = _child_of(target.pid)
    time.sleep(0.5)
    subprocess.run(["kill", "-9", str(child)], check=True)
    assert target.wait(timeout=60) == 1
    error = target.stderr.read().decode()
    assert ("target-crmphones: error: the intake process ended before the input did "
            "(killed by signal 9)") in error
    assert "Traceback" not in error


def test_no_intake_process_outlives_the_target(config_path: pathlib.Path,
                                              tmp_path: pathlib.Path) -> None:
    """The target stopped by a protocol error stops its intake process; the target killed,
    its intake process ends too (it would hold the tap's output open)."""
    stopped = _start(config_path, tmp_path)
    assert stopped.stdin is not None and stopped.stderr is not None
    stopped.stdin.write(b'{"type": "RECORD", "stream": "nope", "record": {"a": 1}}\n')
    stopped.stdin.flush()
    assert stopped.wait(timeout=60) == 1
    assert "breaks the Singer protocol" in stopped.stderr.read().decode()
    assert _nobody_reads(stopped.stdin)

    killed = _start(config_path, tmp_path)
    assert killed.stdin is not None
    killed.stdin.write(("\n".join(_messy_input(100)[:50]) + "\n").encode())
    killed.stdin.flush()
    _child_of(killed.pid)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert _nobody_reads(killed.stdin)
