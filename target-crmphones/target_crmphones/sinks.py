"""The sink only takes records in and batches them; ``Load`` does the work."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import typing as t
from functools import cached_property

import jsonschema
import pyarrow as pa
from singer_sdk.sinks import BatchSink

from crmphones.errors import BatchFileError
from target_crmphones.schema_check import SchemaCheck
from target_crmphones.staging import intake_table

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from singer_sdk import Target
    from singer_sdk.helpers._batch import BaseBatchFileEncoding

    from target_crmphones.loader import Load

#: BATCH file formats the SDK's reader decodes, and the compressions it reads for each.
_JSONL, _PARQUET = "jsonl", "parquet"
_PLAIN = (None, "", "none")
_SHOWN = 300  # characters of a read error quoted in the run's one-line message
#: The string formats whose values the SDK parses before a sink sees a record.
_DATE_FORMATS = frozenset(("date-time", "date", "time"))
#: What reading a file raises when it is missing, truncated, not gzip, not JSON lines or not
#: parquet (pyarrow's errors are ``ValueError`` and ``OSError``).
_READ_ERRORS = (OSError, EOFError, ValueError)


class PhoneSink(BatchSink):
    """Any stream of phone records, canonical or close to it."""

    MAX_SIZE_DEFAULT = 10_000
    #: Set by the target when it creates the sink.
    load: Load
    #: While the SDK reads a BATCH file: the records it has handed over so far.
    _reading: list[t.Any] | None = None

    def __init__(self, target: Target, stream_name: str, schema: dict,
                 key_properties: t.Sequence[str] | None) -> None:
        """A sink of the stream's SCHEMA, its dates taken as the text they are
        (``_dates_as_text``); ``original_schema`` keeps the SCHEMA as it came."""
        super().__init__(target, stream_name, _dates_as_text(schema), key_properties)

    def get_validator(self) -> None:
        """None: the SDK's own validation would log a traceback for a record that does not
        match its SCHEMA and stop the run. ``process_record`` validates instead
        (``validate_records``), and such a record costs only itself, with a reason in the
        rejects table."""
        return

    @cached_property
    def schema_check(self) -> SchemaCheck | str | None:
        """What checks records against the stream's SCHEMA: None when ``validate_records``
        is off, and why not when the SCHEMA itself is not a valid JSON schema."""
        if not self.validate_schema:
            return None
        try:
            return SchemaCheck(self.schema)
        except jsonschema.SchemaError as exc:
            return f"the stream's SCHEMA is not a valid JSON schema: {_one_line(exc)}"

    def schema_error(self, record: dict) -> str | None:
        """Why ``record`` does not match the stream's SCHEMA (None: it does, or
        ``validate_records`` is off)."""
        check = self.schema_check
        if check is None or isinstance(check, str):
            return check
        error = check.error(record)
        return None if error is None else f"does not match the stream's SCHEMA: {error}"

    def row(self, record: dict) -> dict[str, t.Any]:
        """Number the record in arrival order, check and normalize it into its staged row.

        A record the intake refuses keeps the intake's reason (what the CRM write lacks);
        one it takes that does not match its stream's SCHEMA is rejected for that
        (``validate_records``).
        """
        row = self.load.receive(self.stream_name, record)
        if row["reject_reason"] is None:
            row["reject_reason"] = self.schema_error(record)
        return row

    def process_record(self, record: dict, context: dict) -> None:
        """Hold the record's staged row for the batch (``row``); the record as received
        lives on in it as text."""
        context.setdefault("rows", []).append(self.row(record))

    def process_batch(self, context: dict) -> None:
        """Hand the batch, its rows in arrival order as one table, to the load.

        While the SDK reads a BATCH file its ``records`` are only collected: they are staged
        once the whole file is read (``process_batch_files``), so a file that breaks midway
        stops the run before anything is written.
        """
        if self._reading is not None:
            self._reading.extend(context.get("records", ()))
            return
        rows = context.get("rows") or [self.row(record) for record in context.get("records", ())]
        if rows:
            self.load.stage(intake_table(rows))

    def process_batch_files(self, encoding: BaseBatchFileEncoding, files: Sequence[str]) -> None:
        """Load the records of a BATCH message's files, in batches as RECORD messages are.

        The SDK reads each file (its storage, its formats, its record counter); a file it
        cannot read, or an encoding it cannot decode, stops the run in one line naming it,
        before any STATE after the message is passed on. Where the records sit in the run is
        their sequence numbers' business: the file's come after the RECORD messages before it.
        """
        check_encoding(encoding)
        for url in files:
            for chunk in _chunks(self._read_file(encoding, url), self.max_size):
                self.process_batch({"records": chunk})

    def _read_file(self, encoding: BaseBatchFileEncoding, url: str) -> list[t.Any]:
        """The records of one BATCH file, as the SDK reads it.

        The SDK's own JSONL batcher gzips every file, whatever compression its config names
        (singer-sdk 0.54), so a JSONL file that does not read as plain text is read again
        as gzip before it counts as unreadable.
        """
        try:
            return self._sdk_read(encoding, url)
        except _READ_ERRORS as exc:
            error: BaseException = exc
        if encoding.format == _JSONL and encoding.compression in _PLAIN:
            with contextlib.suppress(*_READ_ERRORS):
                return self._sdk_read(dataclasses.replace(encoding, compression="gzip"), url)
        kind = encoding.format + (" (gzip)" if encoding.compression == "gzip" else "")
        msg = f"BATCH file {url} cannot be read as {kind}: {_one_line(error)}"
        raise BatchFileError(msg) from None

    def _sdk_read(self, encoding: BaseBatchFileEncoding, url: str) -> list[t.Any]:
        read: list[t.Any] = []
        self._reading = read
        try:
            super().process_batch_files(encoding, [url])
        finally:
            self._reading = None
        return read


def _dates_as_text(schema: t.Any) -> t.Any:
    """``schema`` without its ``date-time``, ``date`` and ``time`` formats.

    The SDK parses such fields' values before a sink sees a record, and stops the run at the
    first it cannot read (a CSV tap's empty cell, a word): the target writes no timestamp to a
    CRM, and stages each record as it came. Formats are not checked (``validate_records``
    checks types, as the SDK's default does), so records are checked as before.
    """
    if isinstance(schema, dict):
        return {key: _dates_as_text(value) for key, value in schema.items()
                if not (key == "format" and isinstance(value, str) and value in _DATE_FORMATS)}
    if isinstance(schema, list):
        return [_dates_as_text(value) for value in schema]
    return schema


def check_encoding(encoding: BaseBatchFileEncoding) -> None:
    """Refuse, in one line, a BATCH encoding the SDK's reader would not decode.

    Unchecked, an unknown format fails with a traceback and an unknown JSONL compression is
    read as plain text.
    """
    compression = encoding.compression
    if encoding.format == _JSONL and compression in (*_PLAIN, "gzip"):
        return
    # Parquet compresses inside the file: any codec pyarrow has reads.
    if encoding.format == _PARQUET and (compression in _PLAIN or _has_codec(compression)):
        return
    msg = (f"BATCH encoding not supported: format {encoding.format!r}, compression "
           f"{compression!r} (readable: {_JSONL} plain or gzip, {_PARQUET})")
    raise BatchFileError(msg)


def _has_codec(name: str | None) -> bool:
    try:
        return bool(name) and pa.Codec.is_available(str(name))
    except (ValueError, pa.ArrowException):
        return False


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:_SHOWN]


def _chunks(records: Iterable[t.Any], size: int) -> Iterable[list[t.Any]]:
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, max(size, 1))):
        yield chunk
