"""A Singer reader that survives lines that are not Singer messages (not JSON, not an object,
no `type`): each is logged with its line number and counted, and the run goes on; one garbled
line must not cost a migration its other records. A real message that breaks the protocol (a
RECORD before its stream's SCHEMA, a SCHEMA without properties) still stops the run, as the
Singer spec and the SDK's standard tests expect; the CLI reports it in one line."""

from __future__ import annotations

import logging
import typing as t
from collections import Counter

import orjson
from singer_sdk.io_base import SingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine

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

    def deserialize_json(self, line: str) -> dict:
        """Parse one line, without the traceback the SDK logs for a bad one.

        orjson, about 5x the SDK's ``json.loads(parse_float=Decimal)``: numbers with a
        fraction become floats, which no phone field holds.
        """
        try:
            return t.cast("dict", orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            msg = f"not JSON ({exc.msg} at column {exc.colno})"
            raise InvalidInputLine(msg) from None

    def process_lines(self, file_input: t.IO[str] | None,
                      callbacks: dict[str, t.Callable[[dict], None]]) -> Counter[str]:
        stats: Counter[str] = Counter()
        for number, line in enumerate(file_input or self.default_input, start=1):
            if not line.strip():
                continue
            self._current_message = line
            try:
                message = self.deserialize_json(line)
                if not isinstance(message, dict) or "type" not in message:
                    msg = "not a JSON object" if not isinstance(message, dict) else "no `type`"
                    raise InvalidInputLine(msg)
            except InvalidInputLine as exc:
                self.skipped["not a Singer message"] += 1
                logger.error("input line %d skipped (not a Singer message): %s: %s", number,
                             str(exc)[:_SHOWN], line.strip()[:_SHOWN])
                continue
            if message["type"] == "RECORD" and "record" in message and not isinstance(
                    message["record"], dict):
                message["record"] = {NOT_AN_OBJECT: message["record"]}
            callback = callbacks.get(message["type"])
            if callback is None:
                self._process_unknown_message(message)
            else:
                callback(message)
            stats[message["type"]] += 1
        return stats
