"""target-crmphones: the Singer target class. Settings here; the work is in ``Load``."""

from __future__ import annotations

import sys
import typing as t
from functools import cached_property

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.mapper import SameRecordTransform

from crmphones.cli import run_plugin
from crmphones.mapping import load_parent_map
from crmphones.settings import common_settings, dialect_for
from target_crmphones.intake import Intake
from target_crmphones.loader import REUSE_READS_SECONDS, Load
from target_crmphones.reader import TolerantSingerReader
from target_crmphones.sinks import PhoneSink

if t.TYPE_CHECKING:
    import pyarrow as pa
    from singer_sdk.sinks import Sink

    from crmphones.dialects.base import Dialect

#: Settings under which the SDK changes records before the sink sees them (stream maps,
#: flattening, metadata columns): records then take the SDK's path, in this process.
_RECORD_CHANGING_SETTINGS = ("stream_maps", "flattening_enabled", "add_record_metadata")


class TargetCRMPhones(Target):
    """Write phone records to a CRM through its create and update endpoints."""

    name = "target-crmphones"
    package_name = "crmphones"
    default_sink_class = PhoneSink
    message_reader_class = TolerantSingerReader
    # One DuckDB connection and one rate budget per run: drain sinks one at a time.
    max_parallelism = 1
    # Draining everything emits the latest STATE: on a long load, at least once a minute.
    _MAX_RECORD_AGE_IN_MINUTES = 1.0
    _drained_upto = 0

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Start with no stream on the fast path; let standard input be taken in by an
        intake process when records reach the sinks as they came (no stream map)."""
        self._identity_sinks: dict[str, PhoneSink] = {}
        super().__init__(*args, **kwargs)
        # Linux only: elsewhere forking a process that has loaded these libraries is unsafe
        # (macOS) or impossible (Windows).
        if self.config.get("intake_process", True) and sys.platform.startswith("linux") and not any(
                self.config.get(key) for key in _RECORD_CHANGING_SETTINGS):
            reader = t.cast("TolerantSingerReader", self.message_reader)
            reader.intake_factory = lambda: self.intake
            reader.table_callback = self._process_record_table

    config_jsonschema = th.PropertiesList(
        *common_settings(),
        th.Property(
            "staging_path", th.StringType, default=".crmphones/staging.duckdb",
            description="DuckDB file holding the staged records, outcomes, rejects and run "
            "counts (created if missing).",
        ),
        th.Property(
            "parent_map_path", th.StringType,
            description="For migrations: the map from each source parent (e.g. an Outreach "
            "prospect) to its destination parent (e.g. an Activix lead): a CSV file with a "
            "`source_parent_id,target_parent_id` header, or a DuckDB file holding a table with "
            "those columns (`file.duckdb`: table `parent_map`; `file.duckdb#schema.table`). "
            "When set, records whose parent has no row are rejected with that reason.",
        ),
        th.Property(
            "report_dir", th.StringType, default=".crmphones/reports",
            description="Folder for each run's report: `run-<time>-<id>.md` and `.json` (counts, "
            "rejects by reason, API calls by status, time waiting on rate limits, a sample) and "
            "`.csv` (every record's outcome; in a dry run, the plan). Empty: log only.",
        ),
        th.Property(
            "progress_seconds", th.NumberType, default=10,
            description="Least seconds between two progress lines on long runs (records so "
            "far by outcome, API calls per second, writes left in the batch and time left).",
        ),
        th.Property(
            "dry_run", th.BooleanType, default=False,
            description="Compute, record and log the plan, but send no write to the CRM.",
        ),
        th.Property(
            "reuse_reads_seconds", th.NumberType, default=REUSE_READS_SECONDS,
            description="How long an owner's phones, read from the CRM for one batch's diff, "
            "serve the later batches of the run that hold the same owner, instead of a new "
            "read (an owner the run writes to is read again). A CRM edit in that time is not "
            "seen, as one between a batch's read and its writes never is. 0: read for every "
            "batch.",
        ),
        th.Property(
            "intake_process", th.BooleanType, default=True,
            description="On Linux, read, check and normalize standard input's records in a "
            "second process (forked), beside the one that stages, diffs and writes: 1.3-2.1x "
            "the throughput on two cores, for a few MiB more memory in all. Off, elsewhere, "
            "or with stream maps, flattening, record metadata or `--input`: one process.",
        ),
    ).to_dict()

    @cached_property
    def dialect(self) -> Dialect:
        """The destination account (its settings checked): one per run."""
        return dialect_for(self.config)

    @cached_property
    def intake(self) -> Intake:
        """What checks and normalizes each record (with the parent map, if any)."""
        map_path = self.config.get("parent_map_path")
        return Intake(self.dialect, load_parent_map(map_path) if map_path else None)

    @cached_property
    def load(self) -> Load:
        """The run's load, opened on first use."""
        return Load(
            self.dialect,
            self.config.get("staging_path") or ".crmphones/staging.duckdb",
            dry_run=bool(self.config.get("dry_run")),
            intake=self.intake,
            report_dir=self.config.get("report_dir", ".crmphones/reports") or None,
            progress_seconds=float(self.config.get("progress_seconds", 10)),
            reuse_reads_seconds=float(self.config.get("reuse_reads_seconds",
                                                      REUSE_READS_SECONDS)),
        )

    def add_sink(self, stream_name: str, schema: dict, key_properties: t.Sequence[str] | None = None
                 ) -> Sink:
        """Give each new sink the run's load."""
        sink = super().add_sink(stream_name, schema, key_properties)
        t.cast("PhoneSink", sink).load = self.load
        return sink

    def _process_record_message(self, message_dict: dict) -> None:
        """A record of a stream without a stream map goes straight to its batch.

        The SDK's general path (copy, identity transform, metadata, parsing, hooks) costs
        about as much as all of the target's own work per record; for an identity map it
        changes nothing, so only its checks and counters are kept. Anything else (stream
        maps, flattening, record metadata, unknown streams) takes the SDK's path. Written
        against singer-sdk 0.54 (pinned), whose ``_process_record_message`` this mirrors.
        """
        sink = self._identity_sinks.get(message_dict.get("stream"))  # type: ignore[arg-type]
        if sink is None or "record" not in message_dict:
            super()._process_record_message(message_dict)
            self._note_identity_sink(message_dict.get("stream"))
            return
        record = message_dict["record"]
        sink._singer_validate_message(record)
        sink.tally_record_read()
        sink.process_record(record, sink._get_context(record))
        sink.record_counter_metric.increment()
        self._drain_if_full(sink)
        self._handle_max_record_age()

    def _process_record_table(self, stream: str, table: pa.Table) -> None:
        """Records the intake process took in: into the stream's batch, which is drained
        each time it is full, as the SDK does record by record."""
        sink = self._identity_sinks.get(stream)
        if sink is None:
            self._note_identity_sink(stream)
            sink = self._identity_sinks.get(stream)
        if sink is None:  # the reader is only given tables when no setting changes records
            msg = f"stream {stream!r} has no sink taking its records as they came"
            raise RuntimeError(msg)
        while table.num_rows:
            room = max(sink.max_size - sink.current_size, 1)
            piece, table = table.slice(0, room), table.slice(room)
            sink.tally_record_read(piece.num_rows)
            sink.process_table(piece, sink._get_context({}))
            sink.record_counter_metric.increment(piece.num_rows)
            self._drain_if_full(sink)
        self._handle_max_record_age()

    def _drain_if_full(self, sink: PhoneSink) -> None:
        """Write a full batch now, as the SDK does after each record."""
        if sink.is_full:
            self.logger.info("Target sink for '%s' is full. Current size is '%s'. Draining...",
                             sink.stream_name, sink.current_size)
            self.drain_one(sink)

    def _note_identity_sink(self, stream: t.Any) -> None:
        """Remember a stream whose records the SDK would pass through unchanged."""
        maps = self.mapper.stream_maps.get(stream) if isinstance(stream, str) else None
        if not maps or len(maps) != 1 or type(maps[0]) is not SameRecordTransform:
            return
        if maps[0].stream_alias != stream or self.config.get("flattening_enabled"):
            return
        sink = self._sinks_active.get(stream)
        if isinstance(sink, PhoneSink) and not sink.include_sdc_metadata_properties:
            self._identity_sinks[stream] = sink

    def _process_schema_message(self, message_dict: dict) -> None:
        """A new SCHEMA may bring a new sink or map: look again from the next record on."""
        self._identity_sinks.pop(message_dict.get("stream"), None)  # type: ignore[arg-type]
        super()._process_schema_message(message_dict)

    def _process_state_message(self, message_dict: dict) -> None:
        """Keep the state; when a batch's worth of records came since the last one passed on,
        write what is owed and pass this one on, so a crash resumes from here."""
        super()._process_state_message(message_dict)
        if "load" not in self.__dict__:
            return
        batch = min((s.max_size for s in self._sinks_active.values()),
                    default=PhoneSink.MAX_SIZE_DEFAULT)
        if self.load.records_seen - self._drained_upto >= batch:
            self.drain_all()

    def drain_all(self, *, is_endofpipe: bool = False) -> None:
        """Write every held record, then emit the latest STATE (the SDK's order)."""
        super().drain_all(is_endofpipe=is_endofpipe)
        if "load" in self.__dict__:
            self._drained_upto = self.load.records_seen

    def _write_state_message(self, state: dict) -> None:
        """Pass a state on once: the final drain would repeat the last one."""
        if state == getattr(self, "_last_written_state", None):
            return
        self._last_written_state = state
        super()._write_state_message(state)

    def process_endofpipe(self) -> None:
        """Drain, then store and log the run's accounting."""
        super().process_endofpipe()
        skipped = t.cast("TolerantSingerReader", self.message_reader).skipped
        if skipped and "load" not in self.__dict__:
            self.logger.error("no record was read; %d input lines skipped", sum(skipped.values()))
        figures = t.cast("TolerantSingerReader", self.message_reader).intake_figures
        if figures:
            self.logger.info("intake process: peak RSS %.0f MiB, %.0f MiB of it its own "
                             "(not shared with this process); the numbers of %d of its %d "
                             "tables normalized here, while this process waited for tables",
                             figures["peak_rss_kib"] / 1024, figures.get("private_kib", 0) / 1024,
                             figures.get("tables_numbers_left", 0), figures.get("tables", 0))
        if "load" in self.__dict__:
            self.load.skipped_lines = dict(skipped)
            self.load.finish()
            self.load.close()


def main() -> None:
    """Console entry point."""
    run_plugin(TargetCRMPhones)
