"""Streams are thin: each delegates to its dialect's ``read``."""

from __future__ import annotations

import typing as t

from singer_sdk import Stream

from crmphones.records import PHONE_RECORD_SCHEMA

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from crmphones.dialects.base import StreamSpec
    from tap_crmphones.tap import TapCRMPhones


class DialectStream(Stream):
    """One stream of one dialect, read over the dialect's httpx client."""

    #: A sorted stream passes its bookmark on this often, so an interrupted run resumes close
    #: to where it stopped (the SDK's default is every 10,000 records).
    STATE_MSG_FREQUENCY = 1000

    def __init__(self, tap: TapCRMPhones, spec: StreamSpec) -> None:
        """Bind the stream to its spec."""
        self.crm_tap = tap
        self.spec = spec
        super().__init__(tap, schema=spec.schema, name=spec.name)
        self.primary_keys = list(spec.key_properties)
        self.replication_key = spec.replication_key
        # Parent streams are for warehouse loads; piped straight into target-crmphones they
        # would only be rejects, so they are chosen explicitly (`select` in Meltano).
        self.selected_by_default = spec.is_phone_stream
        #: Canonical fields this API never holds, left out of the stream's schema
        #: (``phone_schema``): left out of its records too, where the SDK would drop them
        #: with a warning.
        self.unheld = tuple(name for name in PHONE_RECORD_SCHEMA["properties"]
                            if spec.is_phone_stream and name not in spec.schema["properties"])

    @property
    def is_sorted(self) -> bool:
        """Whether records arrive in replication-key order, so state can advance mid-stream."""
        return self.spec.is_sorted

    def get_records(self, context: dict | None) -> Iterable[dict[str, t.Any]]:
        """Yield records updated since the bookmark (or ``start_date``)."""
        since = self.get_starting_timestamp(context) if self.replication_key else None
        return self.crm_tap.dialect.read(self.name, since)

    def post_process(self, row: dict[str, t.Any], context: dict | None = None
                     ) -> dict[str, t.Any] | None:
        """Leave out the canonical fields the API never holds (``unheld``)."""
        for name in self.unheld:
            row.pop(name, None)
        return row
