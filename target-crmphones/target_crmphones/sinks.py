"""The sink only takes records in and batches them; ``Load`` does the work."""

from __future__ import annotations

import typing as t

import pyarrow as pa
from singer_sdk.sinks import BatchSink

from target_crmphones.staging import intake_table

if t.TYPE_CHECKING:
    from target_crmphones.loader import Load


class PhoneSink(BatchSink):
    """Any stream of phone records, canonical or close to it."""

    MAX_SIZE_DEFAULT = 10_000
    #: Set by the target when it creates the sink.
    load: Load

    def get_validator(self) -> None:
        """No schema validation: the loader checks the fields it needs and rejects the rest.

        An upstream schema that disagrees with a record must cost that record, with a
        reason in the rejects table, not the whole run.
        """
        return

    def _validate_and_parse(self, record: dict) -> dict:
        """Take the record as it came: no validator (above), and no parsing of date-time
        strings into datetimes, which the loader would only turn back into text."""
        return record

    def process_record(self, record: dict, context: dict) -> None:
        """Number the record in arrival order, check and normalize it, hold the row.

        The row is what the batch needs; the record as received lives on in it as text, so
        a batch holds a third of the memory the parsed records would.
        """
        pieces = context.setdefault("pieces", [])
        if not pieces or not isinstance(pieces[-1], list):
            pieces.append([])
        pieces[-1].append(self.load.receive(self.stream_name, record))

    def process_table(self, table: pa.Table, context: dict) -> None:
        """Hold a table of rows the intake process made (``intake_process``), numbered here."""
        context.setdefault("pieces", []).append(self.load.number(table))

    def process_batch(self, context: dict) -> None:
        """Hand the batch, its pieces in arrival order as one table, to the load."""
        pieces = [p if isinstance(p, pa.Table) else intake_table(p)
                  for p in context.get("pieces", [])]
        if pieces:
            self.load.load_table(pa.concat_tables(pieces))
