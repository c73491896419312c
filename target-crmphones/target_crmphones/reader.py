"""A Singer reader that survives lines that are not Singer messages (not JSON, not an object,
no `type`): each is logged with its line number and counted, and the run goes on; one garbled
line must not cost a migration its other records. A real message that breaks the protocol (a
RECORD before its stream's SCHEMA, a SCHEMA without properties) still stops the run, as the
Singer spec and the SDK's standard tests expect; the CLI reports it in one line.

Lines are parsed with orjson through the reader's public ``deserialize_json`` hook, as the
SDK's own ``contrib`` msgspec reader does."""

from __future__ import annotations

import functools
import logging
import typing as t
from collections import Counter

import orjson
from singer_sdk.io_base import SingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine

from target_crmphones.intake import NOT_AN_OBJECT

__all__ = ["TolerantSingerReader"]

logger = logging.getLogger("target-crmphones")
_SHOWN = 200  # characters of a bad line quoted in the log


class TolerantSingerReader(SingerReader):
    """``SingerReader`` that skips what it cannot read, and says so."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: Counter[str] = Counter()
        #: Set by the target: takes each STATE message, as a call that hands it on to the
        #: SDK, to make when (and if) every record before it is settled.
        self.on_state: t.Callable[[t.Callable[[], None]], None] | None = None
        #: Set by the target: asked before each line; True once a signal stopped the run,
        #: and the rest of the input is left unread (the next run reads it again).
        self.stop_requested: t.Callable[[], bool] = lambda: False

    def deserialize_json(self, line: str) -> dict:
        """One line as a Singer message: a JSON object with a `type`, or InvalidInputLine."""
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            msg = f"not JSON ({exc})"
            raise InvalidInputLine(msg) from None
        if not isinstance(message, dict):
            msg = f"a JSON {type(message).__name__}, not an object"
            raise InvalidInputLine(msg)
        if "type" not in message:
            msg = "no `type`"
            raise InvalidInputLine(msg)
        return message

    def process_lines(self, file_input: t.IO[str] | None,
                      callbacks: dict[str, t.Callable[[dict], None]]) -> Counter[str]:
        """Read to the end of the input, skipping (and counting) what is not a message."""
        stats: Counter[str] = Counter()
        for number, line in enumerate(file_input or self.default_input, start=1):
            if self.stop_requested():
                break
            if not line.strip():
                continue
            try:
                message = self.deserialize_json(line)
            except InvalidInputLine as exc:
                self._skip(number, str(exc), line)
                continue
            if message["type"] == "RECORD" and "record" in message and not isinstance(
                    message["record"], dict):
                # Rejected (and so accounted for) by the intake, not a crash in the SDK's maps.
                message["record"] = {NOT_AN_OBJECT: message["record"]}
            callback = callbacks.get(message["type"])
            if callback is None:
                msg = f"input line {number}: unknown message type {message['type']!r}"
                raise InvalidInputLine(msg)
            if message["type"] == "STATE" and self.on_state is not None:
                self.on_state(functools.partial(callback, message))
            else:
                callback(message)
            stats[message["type"]] += 1
        return stats

    def _skip(self, number: int, reason: str, line: str) -> None:
        self.skipped["not a Singer message"] += 1
        logger.error("input line %d skipped (not a Singer message): %s: %s", number,
                     reason[:_SHOWN], line.strip()[:_SHOWN])
