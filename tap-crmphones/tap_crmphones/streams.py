"""Streams are thin: each delegates to its dialect's ``read``."""

from __future__ import annotations

import typing as t

from singer_sdk import Stream

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk import Tap

    from crmphones.dialects.base import Dialect, StreamSpec


class DialectStream(Stream):
    """One stream of one dialect, read over the dialect's httpx client."""

    def __init__(self, tap: Tap, dialect: Dialect, spec: StreamSpec) -> None:
        """Bind the stream to its spec."""
        self.dialect = dialect
        self.spec = spec
        super().__init__(tap, schema=spec.schema, name=spec.name)
        self.primary_keys = list(spec.key_properties)
        self.replication_key = spec.replication_key
        self.is_sorted = spec.is_sorted

    def get_records(self, context: dict | None) -> Iterable[dict[str, t.Any]]:
        """Yield records updated since the bookmark (or ``start_date``)."""
        since = self.get_starting_timestamp(context) if self.replication_key else None
        return self.dialect.read(self.name, since)
