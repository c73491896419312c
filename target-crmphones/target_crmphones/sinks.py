"""The sink only takes records in and batches them; ``Load`` does the work."""

from __future__ import annotations

import typing as t

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

    def process_record(self, record: dict, context: dict) -> None:
        """Number the record in arrival order, check and normalize it, hold its staged row.

        The row is what the batch needs; the record as received lives on in it as text.
        """
        context.setdefault("rows", []).append(self.load.receive(self.stream_name, record))

    def process_batch(self, context: dict) -> None:
        """Hand the batch, its rows in arrival order as one table, to the load.

        A BATCH message's file comes as the SDK reads it: its ``records``, received here.
        """
        rows = context.get("rows") or [self.load.receive(self.stream_name, record)
                                       for record in context.get("records", ())]
        if rows:
            self.load.load_table(intake_table(rows))
