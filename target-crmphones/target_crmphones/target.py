"""target-crmphones: the Singer target class. Settings here; the work is in ``Load``."""

from __future__ import annotations

import typing as t
from functools import cached_property

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import PluginCapabilities

from crmphones.cli import run_plugin
from crmphones.errors import TooManyRejectsError, WritesGivenUpError
from crmphones.mapping import load_parent_map
from crmphones.settings import common_settings, dialect_for
from target_crmphones.intake import Intake
from target_crmphones.loader import REUSE_READS_SECONDS, Load
from target_crmphones.reader import TolerantSingerReader
from target_crmphones.sinks import PhoneSink

if t.TYPE_CHECKING:
    from singer_sdk.helpers.capabilities import CapabilitiesEnum
    from singer_sdk.sinks import Sink

    from crmphones.dialects.base import Dialect


class TargetCRMPhones(Target):
    """Write phone records to a CRM through its create and update endpoints."""

    name = "target-crmphones"
    package_name = "crmphones"
    default_sink_class = PhoneSink
    message_reader_class = TolerantSingerReader
    # One DuckDB connection and one rate budget per run: drain sinks one at a time.
    max_parallelism = 1
    # BATCH messages' files are loaded as their records would be (PhoneSink.process_batch_files).
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [*Target.capabilities,
                                                        PluginCapabilities.BATCH]

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Take STATE messages in through the reader, to hand each on once it is safe."""
        super().__init__(*args, **kwargs)
        self._drained_upto = 0
        self._held_state: t.Callable[[], None] | None = None
        reader = t.cast("TolerantSingerReader", self.message_reader)
        reader.on_state = self._hold_state
        reader.on_reject = lambda *line: self.load.reject_input(*line)

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
            "max_rejected_fraction", th.NumberType(minimum=0, maximum=1),
            description="Fail the run (exit 1, and no final STATE, so the bookmark stays) when "
            "more than this fraction of the records it received were rejected: a guard "
            "against feeding a CRM from garbage. Empty: never.",
        ),
        th.Property(
            "reuse_reads_seconds", th.NumberType, default=REUSE_READS_SECONDS,
            description="How long an owner's phones, read from the CRM for one batch's diff, "
            "serve the later batches of the run that hold the same owner, instead of a new "
            "read (an owner the run writes to is read again). A CRM edit in that time is not "
            "seen, as one between a batch's read and its writes never is. 0: read for every "
            "batch.",
        ),
    ).to_dict()

    @cached_property
    def dialect(self) -> Dialect:
        """The destination account (its settings checked): one per run."""
        return dialect_for(self.config)

    @cached_property
    def load(self) -> Load:
        """The run's load, opened on first use."""
        map_path = self.config.get("parent_map_path")
        return Load(
            self.dialect,
            self.config.get("staging_path") or ".crmphones/staging.duckdb",
            dry_run=bool(self.config.get("dry_run")),
            intake=Intake(self.dialect, load_parent_map(map_path) if map_path else None),
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

    def _hold_state(self, hand_on: t.Callable[[], None]) -> None:
        """Hold the latest STATE; once a batch's worth of records has come since the last
        drain, settle them all and pass it on.

        The SDK prints the latest STATE it was handed whenever it drains every sink, so a
        STATE reaches it only once every record before it is written or refused: not in a
        dry run (nothing was written), and never past a write that was given up.
        """
        self._held_state = hand_on
        if "load" not in self.__dict__:
            self._release_state()
            return
        batch = self.config.get("batch_size_rows") or PhoneSink.MAX_SIZE_DEFAULT
        if self.load.records_seen - self._drained_upto >= batch:
            self._release_state()
            self.drain_all()  # nothing left to write: prints the STATE just handed on

    def _release_state(self, *, final: bool = False) -> None:
        """Settle every record read so far, then hand the held STATE on if it is safe (at the
        end of the input, only if the run did not reject too much of it)."""
        hand_on, self._held_state = self._held_state, None
        if "load" in self.__dict__:
            self.drain_all()
            self._drained_upto = self.load.records_seen
        if hand_on is None or self.config.get("dry_run") or (final and self._rejected_too_much()):
            return
        if "load" in self.__dict__ and self.load.given_up:
            return
        hand_on()

    def process_endofpipe(self) -> None:
        """Settle every record and pass the last safe STATE on, then store and log the run's
        accounting; fail in one line when writes were given up (the bookmark held back)."""
        self._release_state(final=True)
        if self.config.get("dry_run"):
            self.logger.info("dry run: no STATE is passed on, so the bookmark does not move "
                             "and the real run reads the same input again")
        super().process_endofpipe()
        if "load" not in self.__dict__:
            return
        self.load.finish()
        self.load.close()
        if self.load.given_up:
            msg = (f"{self.load.given_up} writes were given up ({self.dialect.title} kept "
                   "failing; see the run report): the bookmark was held back before them, "
                   "so the next run reads them again")
            raise WritesGivenUpError(msg)
        if self._rejected_too_much():
            msg = (f"{self.load.rejected_fraction():.1%} of the records received were rejected, "
                   f"more than max_rejected_fraction ({self.config['max_rejected_fraction']}); "
                   "the last STATE was not passed on (see the run report)")
            raise TooManyRejectsError(msg)

    def _rejected_too_much(self) -> bool:
        limit = self.config.get("max_rejected_fraction")
        return (limit is not None and "load" in self.__dict__
                and self.load.rejected_fraction() > limit)


def main() -> None:
    """Console entry point."""
    run_plugin(TargetCRMPhones)
