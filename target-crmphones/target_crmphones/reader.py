"""A Singer reader that survives lines that are not Singer messages (not JSON, not an object,
no `type`): each is logged with its line number and counted, and the run goes on; one garbled
line must not cost a migration its other records. A real message that breaks the protocol (a
RECORD before its stream's SCHEMA, a SCHEMA without properties) still stops the run, as the
Singer spec and the SDK's standard tests expect; the CLI reports it in one line.

Standard input is read by an intake process when the target allows it (``intake_process.py``):
the same lines, skipped or passed on alike, with records arriving as tables."""

from __future__ import annotations

import contextlib
import logging
import typing as t
from collections import Counter

import orjson
from singer_sdk.io_base import SingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine

from target_crmphones.intake_process import IntakeProcess, parse_message, table_frame

if t.TYPE_CHECKING:
    import pyarrow as pa

    from target_crmphones.intake import Intake

__all__ = ["NOT_AN_OBJECT", "TolerantSingerReader"]

#: A RECORD whose `record` is not a JSON object travels under this key, to be rejected (and
#: so accounted for) by the loader rather than crash the SDK's record handling.
NOT_AN_OBJECT = "__crmphones_not_an_object__"

logger = logging.getLogger("target-crmphones")
_SHOWN = 200  # characters of a bad line quoted in the log


class TolerantSingerReader(SingerReader):
    """``SingerReader`` that skips what it cannot read, and says so."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: Counter[str] = Counter()
        #: Set by the target when records may be taken in by an ``IntakeProcess``: what
        #: makes the process's ``Intake``, and what takes each table it sends.
        self.intake_factory: t.Callable[[], Intake] | None = None
        self.table_callback: t.Callable[[str, pa.Table], None] | None = None
        #: The intake process's memory figures at its end (when there was one).
        self.intake_figures: dict[str, int] = {}

    def deserialize_json(self, line: str) -> dict:
        """Parse one line as a Singer message (``parse_message``), without the traceback the
        SDK logs for a bad one."""
        return parse_message(line)

    def process_lines(self, file_input: t.IO[str] | None,
                      callbacks: dict[str, t.Callable[[dict], None]]) -> Counter[str]:
        """Read to the end of the input: standard input in an intake process when the target
        allows it (``intake_factory``), anything else here."""
        if file_input is None and self.intake_factory is not None and self.table_callback:
            try:
                fd = self.default_input.fileno()
            except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
                fd = None
            if fd is not None:
                intake = self.intake_factory()
                with contextlib.closing(IntakeProcess(fd, intake)) as process:
                    return self._process_frames(process, intake, callbacks, self.table_callback)
        stats: Counter[str] = Counter()
        for number, line in enumerate(file_input or self.default_input, start=1):
            if not line.strip():
                continue
            self._current_message = line
            try:
                message = self.deserialize_json(line)
            except InvalidInputLine as exc:
                self._skip(number, str(exc), line)
                continue
            self._dispatch(message, callbacks)
            stats[message["type"]] += 1
        return stats

    def _process_frames(self, process: IntakeProcess, intake: Intake,
                        callbacks: dict[str, t.Callable[[dict], None]],
                        take_table: t.Callable[[str, pa.Table], None]) -> Counter[str]:
        """The intake process's frames, in input order: tables of records (some with their
        numbers to normalize here), other messages."""
        stats: Counter[str] = Counter()
        for kind, payload in process.frames():
            if kind in (b"T", b"U"):
                stream, table = table_frame(payload)
                take_table(stream, table if kind == b"T" else intake.finish_numbers(table))
                stats["RECORD"] += table.num_rows
            elif kind == b"M":
                self._current_message = payload.decode(errors="replace")
                message = orjson.loads(payload)
                self._dispatch(message, callbacks)
                stats[message["type"]] += 1
            else:
                skipped = orjson.loads(payload)
                self._skip(skipped["number"], skipped["reason"], skipped["line"])
        self.intake_figures = process.figures
        return stats

    def _dispatch(self, message: dict, callbacks: dict[str, t.Callable[[dict], None]]) -> None:
        if message["type"] == "RECORD" and "record" in message and not isinstance(
                message["record"], dict):
            message["record"] = {NOT_AN_OBJECT: message["record"]}
        callback = callbacks.get(message["type"])
        if callback is None:
            self._process_unknown_message(message)
        else:
            callback(message)

    def _skip(self, number: int, reason: str, line: str) -> None:
        self.skipped["not a Singer message"] += 1
        logger.error("input line %d skipped (not a Singer message): %s: %s", number,
                     reason[:_SHOWN], line.strip()[:_SHOWN])
