"""Intake on the second core: a forked process reads, parses, checks and normalizes the input.

Intake (``intake.py``) is most of a record's CPU time and needs nothing of the run but the
settings, so a child process does it while the target's own process stages, de-duplicates,
diffs and writes the batches before. The child reads the input itself and sends the parent,
in input order, frames on a pipe:

- ``T``: intake rows of one stream, as an Arrow table (``staging.INTAKE_SCHEMA``), not yet
  numbered: the parent numbers every record in arrival order, as it would have read them.
- ``U``: the same, but with the phone numbers as read: the parent normalizes them
  (``Intake.finish_numbers``). The child sends these when few frames are queued (the parent
  is waiting for tables, or about to): parsing numbers is a large share of the child's work,
  and the parent, then the faster side, takes some of it on the other core.
- ``M``: any other line as read: SCHEMA, STATE and the rest, and a RECORD the SDK must judge
  (its stream has no SCHEMA yet, its ``record`` is not an object or lacks a key property).
- ``S``: a line that is not a Singer message: what to log and count.
- ``E``: the end of the input, with the child's memory figures; ``X``: the child failed.

Before the fork the parent reads the head of the input and takes its records in, keeping
nothing: the normalizer's caches are then made once, in pages the two processes share, and
the child reads the head from the parent's copy, then the rest from the input. A writer
thread in the child keeps up to ``_AHEAD`` frames ready, so the child goes on while the
parent is busy with a batch. The parent stops the child if it stops first; if the child dies,
the parent fails the run rather than take a partial input for the whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import queue
import resource
import select
import signal
import struct
import threading
import time
import traceback
import typing as t

import orjson
import pyarrow as pa
from singer_sdk.singerlib.exceptions import InvalidInputLine

from crmphones.errors import CRMPhonesError
from target_crmphones.staging import intake_table

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from target_crmphones.intake import Intake

__all__ = ["IntakeProcess", "IntakeProcessError", "parse_message", "table_frame"]

_HEADER = struct.Struct("!cI")  # frame kind, payload length
_STREAM = struct.Struct("!H")  # length of a table frame's stream name
_CHUNK_ROWS = 1_000  # rows per table frame: small against a batch, large against its cost
# Frames the child may hold ready (about 1 MB each with messy records): enough to cover the
# target's work on a batch of 10,000 rows; each more is a MiB more at the peak (16 held 5 MiB
# more than 8 at 1,000,000 records, and 8 1-2 MiB more than 6).
_AHEAD = 6
# A table begun while fewer frames than this are ready leaves its numbers to the parent: it is
# then waiting, or about to. At 200,000 records with phonenumbers, side by side: 21.9-23.2 s
# against 25.0-26.0 s with none left; about 90 of the 200 tables are then left. With
# rphonenumbers too since the target's own work shrank (1,000,000 records: 60.4-61.9 s
# against 68.3-71.7 s; the library's caches then grew in both processes, 22 MiB more, until
# the parent took the input's head in before the fork: see ``_HEAD_BYTES``).
_LEFT_BELOW = 3
_BUFFER = 1 << 20
# The head of the input taken in before the fork: rphonenumbers compiles the patterns of each
# region it meets (about 20 MiB in all once 1,000 numbers of the messy stream are done), and
# each process would make its own. About 1,600 messy records; a tap slower than this waits
# for its first records (the run's first STATE comes later by as much).
_HEAD_BYTES = 1 << 20
_HEAD_SECONDS = 0.25
_PR_SET_PDEATHSIG = 1
_M_MMAP_THRESHOLD = -3  # mallopt(3)
_MMAP_THRESHOLD = 128 * 1024


class IntakeProcessError(CRMPhonesError):
    """The intake process failed or ended before the input did."""


class IntakeProcess:
    """A forked child doing the intake of the input on file descriptor ``fd``."""

    def __init__(self, fd: int, intake: Intake) -> None:
        """Fork the child; it reads ``fd`` from its current position to the end, and takes
        each record in with ``intake`` (made here: a setting's error is this process's)."""
        head = _read_head(fd)
        _warm_up(intake, head)
        read_end, write_end = os.pipe()
        parent = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            os.close(read_end)
            _child(io.BufferedReader(_Input(head, fd), _BUFFER), write_end, intake, parent)
        os.close(write_end)
        self._frames = os.fdopen(read_end, "rb", buffering=_BUFFER)
        #: The child's memory at its end: peak RSS and its own (unshared) pages, in KiB.
        self.figures: dict[str, int] = {}

    def frames(self) -> Iterator[tuple[bytes, bytes]]:
        """(kind, payload) of each frame, in input order, to the end of the input."""
        try:
            while True:
                header = self._frames.read(_HEADER.size)
                kind, size = _HEADER.unpack(header) if len(header) == _HEADER.size else (b"", 0)
                payload = self._frames.read(size)
                if not kind or len(payload) < size:  # the pipe closed before a whole frame
                    status = self._wait()
                    msg = f"the intake process ended before the input did ({status})"
                    raise IntakeProcessError(msg)
                if kind == b"E":
                    self.figures = orjson.loads(payload)
                    self._wait()
                    return
                if kind == b"X":
                    self._wait()
                    msg = f"the intake process failed:\n{payload.decode(errors='replace')}"
                    raise IntakeProcessError(msg)
                yield kind, payload
        finally:
            self.close()

    def close(self) -> None:
        """Stop the child if it still runs (the parent stopped first) and reap it."""
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            self._wait()
        self._frames.close()

    def _wait(self) -> str:
        if not self.pid:
            return "already reaped"
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        code = os.waitstatus_to_exitcode(status)
        return f"exit status {code}" if code >= 0 else f"killed by signal {-code}"


def table_frame(payload: bytes) -> tuple[str, pa.Table]:
    """A ``T`` or ``U`` frame's stream and table."""
    (size,) = _STREAM.unpack_from(payload)
    stream = payload[_STREAM.size:_STREAM.size + size].decode()
    table = pa.ipc.open_stream(pa.py_buffer(payload)[_STREAM.size + size:]).read_all()
    return stream, table


def _read_head(fd: int) -> bytes:
    """Up to ``_HEAD_BYTES`` of the input: what arrives within ``_HEAD_SECONDS``."""
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + _HEAD_SECONDS
    while size < _HEAD_BYTES:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, _HEAD_BYTES - size) if ready else b""
        if not chunk:  # the time is up, or the input ended
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _warm_up(intake: Intake, head: bytes) -> None:
    """Take in the whole lines of ``head`` as the child will (``_read``), and drop the frames.

    Only a saving: a line that fails here ends the warm-up, and the child, which reads it
    again, reports its failure as it would any other."""
    with contextlib.suppress(Exception):
        _read(io.BytesIO(head[:head.rfind(b"\n") + 1]), intake, lambda frame: None)


class _Input(io.RawIOBase):
    """The input as the child reads it: the head the parent read, then the rest of ``fd``."""

    def __init__(self, head: bytes, fd: int) -> None:
        super().__init__()
        self._head: memoryview | None = memoryview(head) if head else None
        self._fd = fd

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        if self._head is not None:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:] if size < len(self._head) else None  # then freed
            return size
        return os.readv(self._fd, [buffer])


def _child(source: t.BinaryIO, write_end: int, intake: Intake, parent: int) -> t.NoReturn:
    """The child's whole life: intake to the end of the input, then exit without cleanup
    (the parent's buffers and handlers are the parent's)."""
    # The parent decides when to stop; it stops the child with SIGTERM, which must end it
    # (the SDK's handler, inherited, would raise SystemExit in a thread that may be blocked).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _end_with_parent(parent)
    _map_large_blocks()
    out = os.fdopen(write_end, "wb", buffering=_BUFFER)
    ready: queue.Queue[bytes | None] = queue.Queue(maxsize=_AHEAD)
    writer = threading.Thread(target=_write, args=(ready, out), daemon=True)
    writer.start()
    code = 0
    try:
        tables = _read(source, intake, ready.put, waiting=lambda: ready.qsize() < _LEFT_BELOW)
        ready.put(_frame(b"E", orjson.dumps({**_memory(), **tables})))
    except BaseException:  # whatever it is, the parent must hear of it
        code = 1
        ready.put(_frame(b"X", traceback.format_exc().encode()))
    ready.put(None)
    writer.join()
    os._exit(code)


def _end_with_parent(parent: int) -> None:
    """On Linux, be sent SIGTERM when the parent dies (killed, it cannot stop the child), so
    that no orphan holds the input open."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before that took effect
        os._exit(1)


def _map_large_blocks() -> None:
    """Give each large block (a frame: about 1 MB) its own mapping, returned when freed.

    By default glibc raises its mapping threshold to the size of a freed mapped block, so
    frames soon come from the heap, where the freed ones stay resident and new ones land
    on pages the child shares with the parent, copying them (10 MiB more of its own at
    200,000 records)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def _write(ready: queue.Queue[bytes | None], out: t.BinaryIO) -> None:
    """Frames to the pipe until the last; a parent that went away ends the child too.

    The buffer is flushed whenever no frame is waiting: a slow tap's STATE, or a line that
    ends the run, must reach the parent now, not when a megabyte has gathered."""
    try:
        while (frame := ready.get()) is not None:
            out.write(frame)
            if ready.empty():
                out.flush()
        out.flush()
    except BrokenPipeError:
        os._exit(1)


def _read(source: t.BinaryIO, intake: Intake, send: Callable[[bytes], None],
          waiting: Callable[[], bool] = lambda: False) -> dict[str, int]:
    """Every line of the input, in order, as frames; a table begun while ``waiting()`` (the
    parent waits for tables) leaves its numbers to the parent. Returns the count of tables
    sent, and of those that left their numbers."""
    key_properties: dict[str, list[str]] = {}  # of each stream with a SCHEMA so far
    rows: list[dict[str, t.Any]] = []
    stream = ""
    numbers_left = False  # whether the table being made leaves its numbers to the parent
    tables = {"tables": 0, "tables_numbers_left": 0}

    def flush() -> None:
        if rows:
            send(_table_frame(b"U" if numbers_left else b"T", stream, rows))
            rows.clear()
            tables["tables"] += 1
            tables["tables_numbers_left"] += numbers_left

    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            message = parse_message(line)
        except InvalidInputLine as exc:
            send(_skip_frame(number, str(exc), line))
            continue
        record = message.get("record")
        if (message["type"] == "RECORD" and isinstance(record, dict)
                and message.get("stream") in key_properties
                and all(key in record for key in key_properties[message["stream"]])):
            if message["stream"] != stream:
                flush()
                stream = message["stream"]
            if not rows:
                numbers_left = waiting()
            rows.append(intake.normalize(0, stream, record, parse_number=not numbers_left))
            if len(rows) >= _CHUNK_ROWS:
                flush()
            continue
        flush()  # what came before this message reaches the parent before it
        send(_frame(b"M", line))
        if message["type"] == "SCHEMA" and isinstance(message.get("stream"), str):
            key_properties[message["stream"]] = list(message.get("key_properties") or [])
    flush()
    return tables


def parse_message(line: str | bytes) -> dict[str, t.Any]:
    """One input line as a Singer message; InvalidInputLine says why it is not one.

    orjson, about 5x the SDK's ``json.loads(parse_float=Decimal)``: numbers with a fraction
    become floats, which no phone field holds.
    """
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        msg = f"not JSON ({exc.msg} at column {exc.colno})"
        raise InvalidInputLine(msg) from None
    if not isinstance(message, dict) or "type" not in message:
        msg = "not a JSON object" if not isinstance(message, dict) else "no `type`"
        raise InvalidInputLine(msg)
    return message


def _frame(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def _table_frame(kind: bytes, stream: str, rows: list[dict[str, t.Any]]) -> bytes:
    table = intake_table(rows)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    name = stream.encode()
    return _frame(kind, _STREAM.pack(len(name)) + name + sink.getvalue().to_pybytes())


def _skip_frame(number: int, reason: str, line: bytes) -> bytes:
    text = line.decode(errors="replace").strip()
    return _frame(b"S", orjson.dumps({"number": number, "reason": reason, "line": text}))


def _memory() -> dict[str, int]:
    """Peak RSS, and the pages this process holds alone (not shared with the parent), KiB."""
    figures = {"peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    with contextlib.suppress(OSError):
        with open("/proc/self/smaps_rollup") as rollup:
            fields = dict(line.split(":", 1) for line in rollup if ":" in line)
        figures["private_kib"] = sum(int(fields[k].split()[0])
                                     for k in ("Private_Clean", "Private_Dirty") if k in fields)
    return figures
