"""target-crmphones: the Singer target class. Settings here; the work is in ``Load``."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import typing as t
from functools import cached_property

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetLoadMethods

from crmphones.cli import on_failure, run_plugin
from crmphones.errors import (
    ConfigError,
    CRMPhonesError,
    InterruptedRunError,
    TooManyRejectsError,
    WritesGivenUpError,
)
from crmphones.mapping import load_parent_map
from crmphones.settings import TYPE_SLOT_CONFLICT, common_settings, dialect_for
from target_crmphones.intake import Intake
from target_crmphones.loader import (
    NOT_SENT_FAILED,
    NOT_SENT_REJECTED_TOO_MUCH,
    NOT_SENT_STOPPED,
    Load,
)
from target_crmphones.reader import TolerantSingerReader
from target_crmphones.sinks import PhoneSink

if t.TYPE_CHECKING:
    from types import FrameType

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
        """Take STATE messages in through the reader, to hand each on once it is safe, and
        take SIGTERM and SIGINT over from the SDK (see ``_on_stop_signal``)."""
        super().__init__(*args, **kwargs)
        if self.config.get("load_method") == TargetLoadMethods.OVERWRITE:
            msg = ("load_method `overwrite` is not supported: it would delete the CRM's phones "
                   "the input does not hold; use `upsert` or `append-only`")
            raise ConfigError(msg)
        #: The share of the input rejected at intake, when too much to write any of it.
        self._withheld: float | None = None
        self._held_state: t.Callable[[], None] | None = None
        #: The signal that asked the run to stop, once one did.
        self.stop_signal: int | None = None
        reader = t.cast("TolerantSingerReader", self.message_reader)
        reader.on_state = self._hold_state
        reader.on_reject = lambda *line: self.load.reject_input(*line)
        reader.on_record = self._take_record
        reader.stop_requested = lambda: self.stop_signal is not None
        # The SDK's handler drains again while a drain may be writing, then passes the latest
        # STATE on and exits 0: a bookmark past unwritten records. Ours replaces it.
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_stop_signal)

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
            "far by outcome, API calls per second, writes left in the chunk of owners being "
            "written and time left).",
        ),
        th.Property(
            "dry_run", th.BooleanType, default=False,
            description="Compute, record and log the plan, but send no write to the CRM.",
        ),
        TYPE_SLOT_CONFLICT,
        th.Property(
            "max_rejected_fraction", th.NumberType(minimum=0, maximum=1),
            description="Fail the run (exit 1, and no final STATE, so the bookmark stays) when "
            "more than this fraction of the records it received were rejected (records a stream "
            "map filtered out aside): a guard against feeding a CRM from garbage. Empty: never.",
        ),
        th.Property(
            "load_method", th.StringType(allowed_values=[m.value for m in TargetLoadMethods]),
            default=TargetLoadMethods.UPSERT.value,
            description="`upsert`: create the phones an owner lacks and update those it holds "
            "with other attributes. `append-only`: create only; a phone the owner already holds "
            "is left as it is (outcome `unchanged`, noted `append-only: not updated`). "
            "`overwrite` is refused: deleting the phones the input does not hold needs guards "
            "this target does not have. Phones the input does not mention are never touched.",
        ),
    ).to_dict()

    @cached_property
    def dialect(self) -> Dialect:
        """The destination account (its settings checked): one per run."""
        return dialect_for(self.config)

    @cached_property
    def load(self) -> Load:
        """The run's load, opened on first use; its run's row ends however the run does."""
        map_path = self.config.get("parent_map_path")
        load = Load(
            self.dialect,
            self.config.get("staging_path") or ".crmphones/staging.duckdb",
            dry_run=bool(self.config.get("dry_run")),
            intake=Intake(self.dialect, load_parent_map(map_path) if map_path else None),
            report_dir=self.config.get("report_dir", ".crmphones/reports") or None,
            progress_seconds=float(self.config.get("progress_seconds", 10)),
            append_only=self.config.get("load_method") == TargetLoadMethods.APPEND_ONLY,
        )
        on_failure(self.end_failed_run)
        if self.stop_signal is not None:
            load.stop()
        return load

    def add_sink(self, stream_name: str, schema: dict, key_properties: t.Sequence[str] | None = None
                 ) -> Sink:
        """Give each new sink the run's load."""
        sink = super().add_sink(stream_name, schema, key_properties)
        t.cast("PhoneSink", sink).load = self.load
        return sink

    def _hold_state(self, hand_on: t.Callable[[], None]) -> None:
        """Hold the latest STATE until the run is written (``_write_and_release_state``).

        The SDK prints the latest STATE it was handed whenever it drains every sink, so a
        STATE reaches it only once every record before it is written or refused: not in a
        dry run (nothing was written), and never past a write that was given up. Nothing is
        written before the input ends (decisions are the run's), so that is the run's end;
        a STATE before any record covers nothing unwritten and goes on at once.
        """
        if "load" not in self.__dict__:
            hand_on()
            return
        self._held_state = hand_on

    def _take_record(self, stream: str, pass_on: t.Callable[[], None]) -> None:
        """Hand a RECORD to the SDK (stream maps, then a sink), and count it as filtered
        when it reached no sink.

        The SDK drops a record that a stream map's ``__filter__`` refuses, or whose stream is
        mapped to ``__NULL__``, before any sink sees it: the user asked for it, so it is no
        reject, but it was read, and the run's ``received`` counts it (as ``filtered``).
        A record a map copies onto several streams reaches several sinks: each copy counts.
        """
        reached = self.load.records_seen
        pass_on()
        if self.load.records_seen == reached:
            self.load.filter_out(stream)

    def _write_and_release_state(self) -> None:
        """At the end of the input: stage what the sinks hold, write the run (unless it
        rejected too much to be trusted), then hand the held STATE on if it is safe."""
        hand_on, self._held_state = self._held_state, None
        if "load" not in self.__dict__:
            if hand_on is not None:
                hand_on()
            return
        self.drain_all()  # stages the sinks' last records
        if self._rejected_too_much():
            # Nothing is sent from input this broken; ``_failure`` says so.
            self._withheld = self.load.rejected_fraction()
            self.load.settle_unsent(NOT_SENT_REJECTED_TOO_MUCH)
            return
        self.load.write_run()
        if (hand_on is None or self.config.get("dry_run") or self.load.given_up
                or self.stop_signal is not None):
            return  # a stop may have come before every record was written
        hand_on()

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM or SIGINT: stop cleanly; a second one: stop at once.

        The first only sets flags (the handler runs between two bytecodes of whatever the
        main thread was doing, a DuckDB call's caller included, so it raises nothing there):
        the load sends no new write and gives those in flight a grace period, the reader
        reads no further line, and ``process_endofpipe`` ends the run as interrupted.
        """
        name = signal.Signals(signum).name
        if self.stop_signal is None:
            self.stop_signal = signum
            self.logger.warning("%s received: stopping: no new write is sent, those in flight "
                                "finish; a second signal stops at once", name)
            if "load" in self.__dict__:
                self.load.stop()
            return
        line = (f"stopped at once by a second {name}: writes in flight were cut short; the "
                "bookmark stays at the last STATE passed on, so the next run sends the rest")
        load = self.__dict__.get("load")
        if load is not None:
            # The row ends here or never: the process exits without unwinding.
            with contextlib.suppress(Exception):
                load.stop_now(line)
        sys.stderr.write(f"{self.name}: error: {line}\n")
        sys.stderr.flush()
        os._exit(128 + signum)

    def end_failed_run(self, error: str) -> None:
        """The run failed (``error``: the line printed): record what was read but not sent
        as such, and end the run's row as failed with its counts and report."""
        if "load" not in self.__dict__ or self.load.status is not None:
            return
        try:
            self.load.settle_unsent(NOT_SENT_FAILED)
            self.load.finish("failed", error)
        finally:
            self.load.close()

    def _end_interrupted(self, signum: int) -> t.NoReturn:
        """After a stop: account for every record read, end the run's row as interrupted,
        and fail in one line with the signal's exit code. No STATE is handed on: the last
        one printed covers only records written or rejected."""
        name = signal.Signals(signum).name
        if "load" not in self.__dict__:
            msg = f"stopped by {name} before any record was read: nothing was sent"
            raise InterruptedRunError(msg, signum)
        self.load.stop()  # also for a load made as the signal came
        # Stages the records read since the last drain, sends nothing (the load is stopping).
        super().process_endofpipe()
        unsent = self.load.settle_unsent(NOT_SENT_STOPPED)
        msg = (f"stopped by {name}: {unsent} records read were not sent (recorded as rejected, "
               "`interrupted`); the bookmark stays at the last STATE passed on, so the next "
               "run sends them")
        self.load.finish("interrupted", msg)
        self.load.close()
        raise InterruptedRunError(msg, signum)

    def process_endofpipe(self) -> None:
        """Settle every record and pass the last safe STATE on, then store and log the run's
        accounting; fail in one line when writes were given up (the bookmark held back), when
        too much was rejected, or when a signal stopped the run (``_end_interrupted``)."""
        if self.stop_signal is None:
            self._write_and_release_state()
        if self.stop_signal is not None:
            self._end_interrupted(self.stop_signal)
        if self.config.get("dry_run"):
            self.logger.info("dry run: no STATE is passed on, so the bookmark does not move "
                             "and the real run reads the same input again")
            self.logger.info("dry run: every check that needs no answer from %s was made; "
                             "rejects only %s can give are not in this plan: %s",
                             self.dialect.title, self.dialect.title,
                             self.dialect.crm_only_rejects)
        super().process_endofpipe()
        if "load" not in self.__dict__:
            return
        error = self._failure()
        self.load.finish("failed" if error else "finished", str(error) if error else None)
        self.load.close()
        if error:
            raise error

    def _failure(self) -> CRMPhonesError | None:
        """Why a run that read all of its input still fails, if it does."""
        if self.load.given_up:
            return WritesGivenUpError(
                f"{self.load.given_up} writes were given up ({self.dialect.title} kept failing; "
                "see the run report): no STATE was passed on, so the next run reads this run's "
                f"{self.load.records_seen} records again and writes only what is still missing")
        limit = self.config.get("max_rejected_fraction")
        if self._withheld is not None:
            return TooManyRejectsError(
                f"{self._withheld:.1%} of the records received were rejected, more than "
                f"max_rejected_fraction ({limit}): nothing was sent, and no STATE was passed "
                "on (see the run report)")
        if self._rejected_too_much():
            return TooManyRejectsError(
                f"{self.load.rejected_fraction():.1%} of the records received were rejected, "
                f"more than max_rejected_fraction ({limit}); no STATE was passed on (see the "
                "run report)")
        return None

    def _rejected_too_much(self) -> bool:
        limit = self.config.get("max_rejected_fraction")
        return (limit is not None and "load" in self.__dict__
                and self.load.rejected_fraction() > limit)


def main() -> None:
    """Console entry point."""
    run_plugin(TargetCRMPhones)
