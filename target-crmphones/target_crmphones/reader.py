"""A Singer reader that accounts for every input line.

A line that is not a Singer message (not JSON, not an object, no `type`), a RECORD of a
stream that had no SCHEMA, with a stream that is not a name, or missing its key properties:
each becomes a rejects row with its raw text and reason (``on_reject``), and the run goes on;
one garbled line must not cost a migration its other records. A message that breaks the
protocol itself (an unknown message type, a SCHEMA whose stream is not a name) stops the run
with one line naming the problem and the line number (the CLI prints it).

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

from target_crmphones.intake import MAX_STREAM_NAME

__all__ = ["TolerantSingerReader"]

logger = logging.getLogger("target-crmphones")
_SHOWN = 200  # characters of a bad line quoted in the log


class TolerantSingerReader(SingerReader):
    """``SingerReader`` that turns what it cannot pass on into rejects, and says so."""

    def __init__(self) -> None:
        super().__init__()
        #: Set by the target: takes each STATE message, as a call that hands it on to the
        #: SDK, to make when (and if) every record before it is settled.
        self.on_state: t.Callable[[t.Callable[[], None]], None] | None = None
        #: Set by the target: records a line that is no record it can take, as a reject
        #: (stream or None, the line, the reason, the record object if one was read).
        self.on_reject: t.Callable[[str | None, str, str, t.Any], None] | None = None
        #: Set by the target: takes each RECORD message it may pass on (its stream, and a
        #: call that hands it to the SDK's stream maps and sinks), to account for the records
        #: a stream map filters out before any sink sees them.
        self.on_record: t.Callable[[str, t.Callable[[], None]], None] | None = None
        self._key_properties: dict[str, list[str]] = {}
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
        """Read to the end of the input, passing each message on or accounting for it."""
        stats: Counter[str] = Counter()
        for number, line in enumerate(file_input or self.default_input, start=1):
            if self.stop_requested():
                break
            if not line.strip():
                continue
            try:
                message = self.deserialize_json(line)
            except InvalidInputLine as exc:
                self._reject(number, None, line, f"not a Singer message: {exc}", None)
                continue
            kind = message["type"]
            if not isinstance(kind, str) or kind not in callbacks:
                msg = f"input line {number}: unknown message type {_shown(kind)}"
                raise InvalidInputLine(msg)
            if kind == "RECORD":
                problem = self._record_problem(message)
                if problem:
                    stream = message.get("stream")
                    self._reject(number, stream if _is_name(stream) else None, line, problem,
                                 message.get("record"))
                    continue
            elif kind in ("SCHEMA", "BATCH", "ACTIVATE_VERSION") and not _is_name(
                    message.get("stream")):
                msg = (f"input line {number}: {kind}'s stream must be a name of 1 to "
                       f"{MAX_STREAM_NAME} characters, got {_shown(message.get('stream'))}")
                raise InvalidInputLine(msg)
            if kind == "BATCH":
                problem = self._batch_problem(message)
                if problem:
                    msg = f"input line {number}: {problem}"
                    raise InvalidInputLine(msg)
            if kind == "SCHEMA":
                keys = message.get("key_properties")
                self._key_properties[message["stream"]] = keys if isinstance(keys, list) else []
            if kind == "STATE" and self.on_state is not None:
                self.on_state(functools.partial(callbacks[kind], message))
            elif kind == "RECORD" and self.on_record is not None:
                self.on_record(message["stream"], functools.partial(callbacks[kind], message))
            else:
                callbacks[kind](message)
            stats[kind] += 1
        return stats

    def _record_problem(self, message: dict) -> str | None:
        """Why a RECORD message cannot be passed on, if it cannot."""
        stream = message.get("stream")
        if not _is_name(stream):
            return f"stream must be a name of 1 to {MAX_STREAM_NAME} characters"
        if stream not in self._key_properties:
            return f"record of stream {stream!r} before any SCHEMA of it"
        if "record" not in message:
            return "RECORD message without a record"
        if not isinstance(message["record"], dict):
            return "record is not a JSON object"
        missing = [key for key in self._key_properties[stream] if key not in message["record"]]
        if missing:
            return f"missing key properties: {', '.join(map(str, missing))}"
        return None

    def _batch_problem(self, message: dict) -> str | None:
        """Why a BATCH message cannot be read, if it cannot: a whole file of records is at
        stake, so it stops the run rather than become one reject."""
        if message["stream"] not in self._key_properties:
            return f"BATCH of stream {message['stream']!r} before any SCHEMA of it"
        encoding, manifest = message.get("encoding"), message.get("manifest")
        if not isinstance(encoding, dict) or not isinstance(encoding.get("format"), str):
            return f"BATCH encoding must be an object with a format, got {_shown(encoding)}"
        if not isinstance(manifest, list) or not all(isinstance(url, str) for url in manifest):
            return f"BATCH manifest must be a list of file URLs, got {_shown(manifest)}"
        return None

    def _reject(self, number: int, stream: str | None, line: str, reason: str,
                record: t.Any) -> None:
        logger.warning("input line %d rejected (%s): %s", number, reason[:_SHOWN],
                       line.strip()[:_SHOWN])
        if self.on_reject is None:
            msg = f"input line {number}: {reason}"
            raise InvalidInputLine(msg)
        self.on_reject(stream, line.rstrip("\n"), reason, record)


def _is_name(stream: t.Any) -> bool:
    return isinstance(stream, str) and 0 < len(stream) <= MAX_STREAM_NAME


def _shown(value: t.Any) -> str:
    """A value for an error line, cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
