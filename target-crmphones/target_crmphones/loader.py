"""One load into one CRM account: normalize -> stage -> de-duplicate -> diff -> write -> account.

Each step is one method. The sinks hand each batch here as one Arrow table of intake rows
(made by ``Intake``), which is staged; once the input ends, the run is de-duplicated, diffed
and written owner by owner (``write_run``). Every record ends in exactly one outcome recorded
in the staging ledger:
``received = created + updated + unchanged + merged + rejected + filtered`` (the last: records
a stream map filtered out before the sinks, counted per stream by ``filter_out``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import typing as t
import uuid
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor

from crmphones.errors import FatalRequestError, TransientError
from crmphones.http import AbortedError, AmbiguousWriteError
from crmphones.plan import PlannedWrite, phone_key, plan_writes
from crmphones.records import Outcome, Owner, PhoneRecord, WriteResult
from target_crmphones.intake import Intake, wanted_phones
from target_crmphones.report import OUTCOMES, build_report, to_markdown, write_report
from target_crmphones.staging import Staging, intake_table

if t.TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa

    from crmphones.dialects.base import Dialect

__all__ = ["CHUNK_ROWS", "NOT_SENT_FAILED", "NOT_SENT_REJECTED_TOO_MUCH", "NOT_SENT_STOPPED",
           "STOP_GRACE_SECONDS", "Load"]

logger = logging.getLogger("target-crmphones")

_PROGRESS_SECONDS = 10.0
_MAX_CONSECUTIVE_TRANSIENT = 5  # past this the API is down, not flaky: stop the run
_DRY_RUN_SAMPLE = 20
#: About how many records' owners are read, planned and written together at the run's end.
CHUNK_ROWS = 10_000
#: Once a stop is asked for, how long the writes in flight get to finish (and be recorded)
#: before their retries and waits are cut short: a scheduler's SIGTERM is followed by a
#: SIGKILL after its own grace (Kubernetes: 30 s by default), which this must stay well under.
STOP_GRACE_SECONDS = 5.0
#: The reason recorded for a record read but not sent because a signal stopped the run.
#: Not an API refusal: nothing holds it back, the next run sends it.
NOT_SENT_STOPPED = "interrupted: not sent; the next run sends it"
#: The same, for a run that failed (the runs row holds the error).
NOT_SENT_FAILED = "failed run: not sent; the next run sends it"
#: The same, for a run whose input was rejected more than ``max_rejected_fraction`` allows.
NOT_SENT_REJECTED_TOO_MUCH = ("not sent: too much of the run's input was rejected "
                              "(max_rejected_fraction)")

OutcomeRow = tuple[int, str, "str | None", t.Any, "str | None"]


class Load:
    """The state of one target run against one destination account."""

    def __init__(self, dialect: Dialect, staging_path: str, *, dry_run: bool,
                 intake: Intake | None = None, report_dir: str | None = None,
                 progress_seconds: float = _PROGRESS_SECONDS,
                 append_only: bool = False) -> None:
        """Open the ledger and register the run.

        Args:
            dialect: The destination account.
            staging_path: The DuckDB ledger file.
            dry_run: Plan and record, send nothing.
            intake: What checks and normalizes records (with the parent map of a migration);
                by default one for ``dialect`` without a parent map.
            report_dir: Where the run report files go (None: log only).
            progress_seconds: Least time between two progress lines.
            append_only: Create only, never update (``load_method: append-only``).
        """
        self.dialect = dialect
        self.report_dir = report_dir
        self.progress_seconds = progress_seconds
        self._started = time.monotonic()
        self._last_progress = self._started
        self._tally: Counter[str] = Counter()
        self._received = 0
        self._writes_left = 0
        self.dry_run = dry_run
        self.append_only = append_only
        self.run_id = uuid.uuid4().hex
        self.staging = Staging(staging_path, self.run_id)
        self.staging.start_run(dialect.name, dry_run=dry_run)
        self.intake = intake or Intake(dialect, None)
        #: Records the sinks handed over (and input lines rejected by the reader).
        self.records_seen = 0
        #: Per stream, records read that a stream map filtered out before any sink.
        self.filtered: Counter[str] = Counter()
        #: Writes given up in this run (the API kept failing): no STATE may pass them.
        self.given_up = 0
        self._consecutive_transient = 0
        self._transient_lock = threading.Lock()  # writes run on several threads
        # Set when a write failed the run, or a stop was asked for: workers send no more.
        self._stopping = threading.Event()
        #: A signal asked the run to stop (``stop``): nothing more is sent.
        self.stop_requested = False
        self._grace: threading.Timer | None = None
        #: How the run ended (``finish``): None while it runs.
        self.status: str | None = None
        self._closed = False
        self._dry_run_shown = 0

    def rejected_fraction(self) -> float:
        """The share of the records received so far that were rejected (records a stream map
        filtered out aside: they were never to be sent)."""
        return self._tally[Outcome.REJECTED.value] / self._received if self._received else 0.0

    def next_seq(self) -> int:
        """The sequence number of the next input record in this run."""
        self.records_seen += 1
        return self.records_seen

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Send nothing more: no new write starts; those in flight get ``grace`` seconds to
        finish and be recorded, then their retries and waits end (``ApiClient.abort``).

        Only sets flags and starts a timer, so a signal handler may call it whatever the
        main thread was doing.
        """
        if self.stop_requested:
            return
        self.stop_requested = True
        self._stopping.set()
        self._grace = threading.Timer(grace, self.dialect.client.abort)
        self._grace.daemon = True
        self._grace.start()

    def stop_now(self, error: str) -> None:
        """A second signal: end retries and waits now, and end the run's row as interrupted
        (no report) for a process that exits at once; records not settled are recorded as
        not sent."""
        self.stop_requested = True
        self._stopping.set()
        self.dialect.client.abort()
        if self.status is None:
            self.status = "interrupted"
            self.settle_unsent(NOT_SENT_STOPPED)
            self.staging.finish_run("interrupted", error, filtered=self.filtered.total(),
                                    fold_log=False)

    def settle_unsent(self, detail: str) -> int:
        """Record every record staged in this run without an outcome as rejected with
        ``detail`` (the run stops before sending them); return how many."""
        settled = self.staging.record_unsettled(detail)
        self._tally[Outcome.REJECTED.value] += settled
        return settled

    # -- the recipe -------------------------------------------------------------------

    def receive(self, stream: str, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """Number one record in arrival order and check and normalize it into a staged row."""
        return self.intake.normalize(self.next_seq(), stream, record)

    def filter_out(self, stream: str) -> None:
        """Account for a record of ``stream`` that a stream map filtered out (no outcome,
        nothing staged: it was never meant for the CRM)."""
        self.filtered[stream] += 1

    def reject_input(self, stream: str | None, text: str, reason: str,
                     record: t.Any = None) -> None:
        """Account for an input line that is not a record the SDK can take (not a Singer
        message, a record of no known stream, one missing its key properties): a rejects
        row that keeps its raw text, its reason and the identity fields that could be read."""
        row = self.intake.reject(self.next_seq(), stream, text, reason, record)
        self._received += 1
        self._tally[Outcome.REJECTED.value] += self.staging.stage(intake_table([row]))

    def stage_batch(self, batch: Sequence[tuple[int, str, dict[str, t.Any]]]) -> None:
        """Stage one batch of (seq, stream, record)."""
        self.stage(intake_table(self.intake.rows(batch)))

    def stage(self, table: pa.Table) -> None:
        """Stage one batch (one stream's intake rows, in ``seq`` order); nothing is decided
        before the input ends (``write_run``), so the latest record of the run wins."""
        if not table.num_rows:
            return
        self._received += table.num_rows
        self._tally[Outcome.REJECTED.value] += self.staging.stage(table)
        self._maybe_log_progress()

    def write_run(self, chunk_rows: int = CHUNK_ROWS) -> None:
        """Decide and write the whole run, once its input has ended.

        Decisions are the run's, not a batch's: of the records naming the same phone, the
        latest of the run wins (the others are merged), and each owner is read from the
        destination and planned once, with every phone the run wants of it (its types and
        primaries decided together). So a second run of the same input sends nothing, however
        its records were batched. Owners go in chunks of about ``chunk_rows`` records.
        """
        merged = self.staging.settle_duplicates(chunk_rows)
        self._tally[Outcome.MERGED.value] += merged
        for chunk in range(self.staging.winner_chunks()):
            if self._stopping.is_set():
                return  # the run's end records what has no outcome (``settle_unsent``)
            winners = self.staging.winners(chunk)
            try:
                plans = self.hold_back_refused(
                    self.diff(wanted_phones(self.dialect.name, winners)),
                    {row[0]: row[1] for row in winners})
                self.write(plans)
            except AbortedError:
                if not self.stop_requested:
                    raise
                return  # the stop's grace ran out mid-chunk: the rest is settled at the end

    def diff(self, wanted: Sequence[tuple[int, PhoneRecord]]) -> list[PlannedWrite]:
        """Compare with the destination's phones of the owners these phones name."""
        if not wanted:
            return []
        owners = sorted({Owner.of(phone) for _, phone in wanted})
        current = list(self.dialect.current_phones(owners))
        return self.dialect.settle(plan_writes(wanted, current, self.dialect,
                                               updates=not self.append_only), current)

    def hold_back_refused(self, plans: list[PlannedWrite], fingerprints: dict[int, str]
                          ) -> list[PlannedWrite]:
        """An input the API refused for its content in an earlier run is not sent again until
        it changes (its fingerprint differs): resending would only earn the same 4xx."""
        owed = [p for p in plans if p.action in ("create", "update") and p.seq is not None]
        refused = self.staging.refused_before([fingerprints[p.seq] for p in owed])
        for plan in owed:
            earlier = refused.get(fingerprints[plan.seq])
            if earlier:
                reason, runs = earlier
                plan.action = "reject"
                plan.note = (f"{reason} (refused in {runs} earlier run{'s' if runs > 1 else ''}; "
                             "not sent again until the record changes)")
        return plans

    def write(self, plans: Sequence[PlannedWrite]) -> None:
        """Carry out the plan (or show it, in dry run), recording each outcome.

        Each owner's writes run in order in one task (updates, then its creates: Activix's
        one phone per type and One Degree's primary depend on it); owners run in parallel,
        ``max_concurrency`` at a time. Outcomes are recorded on this thread (the ledger is
        not shared between threads) as each write completes.
        """
        unchanged = [(p.seq, Outcome.UNCHANGED.value, p.current.id if p.current else None,
                      None, p.note) for p in plans if p.action == "unchanged"]
        rejected = [(p.seq, Outcome.REJECTED.value, None, None, p.note)
                    for p in plans if p.action == "reject"]
        self._outcomes(rejected)
        self._outcomes(unchanged)
        if self.dry_run:
            self._show_plan(plans)
            return
        self._writes_left = sum(p.action in ("create", "update") for p in plans)
        updates: dict[Owner, list[PlannedWrite]] = defaultdict(list)
        creates: dict[Owner, list[PlannedWrite]] = defaultdict(list)
        for plan in plans:
            if plan.action in ("create", "update"):
                (creates if plan.action == "create" else updates)[Owner.of(plan.wanted)].append(plan)
        owners = list(dict.fromkeys([*updates, *creates]))
        if self.dialect.concurrency == 1 or len(owners) <= 1:
            # One at a time, as before concurrency: every update, then each owner's creates.
            for plan in (p for p in plans if p.action == "update"):
                if self._stopping.is_set():
                    return
                self._record(plan, self._update(plan), Outcome.UPDATED)
            for owner, group in creates.items():
                if self._stopping.is_set():
                    return
                for plan, result in zip(group, self._create(owner, group), strict=True):
                    if result is not None:
                        self._record(plan, result, Outcome.CREATED)
            return
        self._write_in_parallel([(o, updates.get(o, []), creates.get(o, [])) for o in owners])

    def _write_in_parallel(self, jobs: list[tuple[Owner, list[PlannedWrite], list[PlannedWrite]]]
                           ) -> None:
        """Run one task per owner on a pool; record outcomes here as the workers queue them.

        A worker's exception (the API refused the credential, or keeps failing) stops the
        run: the other tasks stop at their next request (those not started return at once),
        every write that completed meanwhile is still recorded, and the exception is raised
        here, where the run's one-line message is made. A stop (``stop``) ends the tasks the
        same way, without an error.
        """
        done: queue.Queue[tuple[PlannedWrite, WriteResult, Outcome] | Future[None]] = queue.Queue()
        pool = ThreadPoolExecutor(max_workers=min(self.dialect.concurrency, len(jobs)),
                                  thread_name_prefix="crmphones-write")
        error: BaseException | None = None
        try:
            futures = [pool.submit(self._write_owner, owner, updates, group, done.put)
                       for owner, updates, group in jobs]
            for future in futures:
                future.add_done_callback(done.put)  # after the task's last outcome
            running = len(futures)
            while running:
                item = done.get()
                if isinstance(item, Future):
                    running -= 1
                    failure = item.exception()
                    # The first real failure is the run's; the others' AbortedError follows it.
                    if failure is not None and (error is None or isinstance(error, AbortedError)):
                        error = failure
                else:
                    self._record(*item)
        except BaseException:
            self._stopping.set()
            self.dialect.client.abort()  # in-flight retries and waits end now
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if error is not None:
            raise error

    def _write_owner(self, owner: Owner, updates: list[PlannedWrite], group: list[PlannedWrite],
                     emit: t.Callable[[tuple[PlannedWrite, WriteResult, Outcome]], None]) -> None:
        """One owner's writes, in order (a worker task): updates first, then the creates."""
        try:
            for plan in updates:
                if self._stopping.is_set():
                    return
                emit((plan, self._update(plan), Outcome.UPDATED))
            if group and not self._stopping.is_set():
                for plan, result in zip(group, self._create(owner, group), strict=True):
                    if result is not None:  # None: the run stopped before it was settled
                        emit((plan, result, Outcome.CREATED))
        except BaseException:
            # Stop the other workers now, not when this thread's outcomes are all recorded.
            self._stopping.set()
            self.dialect.client.abort()
            raise

    def _update(self, plan: PlannedWrite) -> WriteResult:
        assert plan.current is not None
        current = plan.current
        return self._guard(lambda: self.dialect.update(current, plan.changes))

    # -- helpers ----------------------------------------------------------------------

    def _outcomes(self, rows: Sequence[OutcomeRow]) -> None:
        """Record outcomes in the ledger, keep the tally, and say how far the run is."""
        self.staging.record_outcomes(rows)
        self._tally.update(row[1] for row in rows)
        self._maybe_log_progress()

    def _maybe_log_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress >= self.progress_seconds:
            self._last_progress = now
            self._log_progress(now)

    def _log_progress(self, now: float) -> None:
        calls = sum(self.dialect.client.calls.values())
        rate = calls / max(now - self._started, 1e-9)
        done = ", ".join(f"{k}={self._tally[k]}" for k in (o.value for o in Outcome))
        if self.filtered:
            done += f", filtered={self.filtered.total()}"
        left = ""
        if self._writes_left and rate:
            left = (f"; {self._writes_left} writes left in this chunk of owners, about "
                    f"{self._writes_left / rate:.0f}s")
        logger.info("progress: received=%d %s; %d API calls (%.1f/s)%s",
                    self._received + self.filtered.total(), done,
                    calls, rate, left)

    def _create(self, owner: Owner, group: list[PlannedWrite]) -> list[WriteResult | None]:
        """Create an owner's new phones; when a response is lost, look before resending.

        None for a phone left unsettled because the run is stopping: it is not given up (the
        API did not keep failing), the run's end records it as not sent.
        """
        pending = list(range(len(group)))
        results: list[WriteResult | None] = [None] * len(group)
        stalled = 0  # rounds in a row that settled nothing: the budget is per phone, not group
        retry = self.dialect.client.retry
        while pending and stalled < retry.max_attempts:
            if stalled and self._stopping.wait(retry.backoff(stalled)):
                return results  # the run is stopping: what is pending stays unsettled
            try:
                phones = [group[i].wanted for i in pending]
                answers = self._guard(lambda phones=phones: list(
                    self.dialect.create_many(owner, phones)))
            except AmbiguousWriteError as exc:
                logger.warning("%s; checking the destination before resending", exc)
                before = len(pending)
                pending = self._still_missing(owner, group, pending, results)
                stalled = 0 if len(pending) < before else stalled + 1
                continue
            if isinstance(answers, WriteResult):  # _guard turned a failure into a reject
                # Phones created before the failure exist: count them, reject only the rest.
                pending = self._still_missing(owner, group, pending, results)
                answers = [answers] * len(pending)
            for index, answer in zip(pending, answers, strict=True):
                results[index] = answer
            pending = []
            break
        for index in pending:
            results[index] = WriteResult(rejected="create outcome unknown after retries",
                                         given_up=True)
        return [r if r is not None else WriteResult(rejected="no answer", given_up=True)
                for r in results]

    def _still_missing(self, owner: Owner, group: list[PlannedWrite], pending: list[int],
                       results: list[WriteResult | None]) -> list[int]:
        held = {phone_key(p): p for p in self.dialect.current_phones([owner])}
        missing = []
        for index in pending:
            found = held.get(phone_key(group[index].wanted))
            if found is not None:
                results[index] = WriteResult(destination_id=found.id)
            else:
                missing.append(index)
        return missing

    def _guard(self, call: t.Callable[[], t.Any]) -> t.Any:
        """Run one write; an exhausted retry becomes a reject, unless the API is down."""
        try:
            result = call()
        except AmbiguousWriteError:
            raise
        except TransientError as exc:
            with self._transient_lock:
                self._consecutive_transient += 1
                failing = self._consecutive_transient >= _MAX_CONSECUTIVE_TRANSIENT
            if failing:
                msg = f"{self.dialect.title} keeps failing ({exc}); stopping the run"
                raise FatalRequestError(msg) from None
            return WriteResult(rejected=f"transient: {exc}", given_up=True)
        with self._transient_lock:
            self._consecutive_transient = 0
        return result

    def _record(self, plan: PlannedWrite, result: WriteResult, success: Outcome) -> None:
        self._writes_left = max(0, self._writes_left - 1)
        if plan.seq is None:  # a dialect rule's own write: no input record to account for
            if result.given_up:
                self.given_up += 1  # the bookmark stays, so the next run plans it again
            if result.rejected:
                logger.warning("%s phone %s on %s %s: %s not written (%s)", self.dialect.title,
                               plan.current.id if plan.current else "?", plan.wanted.parent_type,
                               plan.wanted.parent_id, plan.changes, result.rejected)
            return
        if result.given_up:
            self.given_up += 1
            row = (plan.seq, Outcome.REJECTED.value, None, plan.changes or None,
                   f"given up, to be sent again by the next run: {result.rejected}")
        elif result.rejected:
            row = (plan.seq, Outcome.REJECTED.value, None, plan.changes or None, result.rejected)
        else:
            row = (plan.seq, result.outcome or success.value, result.destination_id,
                   plan.changes or None, result.detail)
        self._outcomes([row])

    def _show_plan(self, plans: Sequence[PlannedWrite]) -> None:
        """Dry run: record what would be done, and log a sample a person can read."""
        outcome = {"create": Outcome.CREATED, "update": Outcome.UPDATED}
        rows = [(p.seq, outcome[p.action].value, p.current.id if p.current else None,
                 p.changes or None, "dry run: planned, not sent")
                for p in plans if p.action in outcome and p.seq is not None]
        self._outcomes(rows)
        for plan in plans:
            if plan.action not in outcome or self._dry_run_shown >= _DRY_RUN_SAMPLE:
                continue
            self._dry_run_shown += 1
            target = f"phone {plan.current.id}" if plan.current else "new phone"
            logger.info("dry run: would %s %s on %s %s: %s %s%s", plan.action, target,
                        plan.wanted.parent_type, plan.wanted.parent_id, plan.wanted.e164,
                        plan.changes or "", f" ({plan.note})" if plan.note else "")

    def finish(self, status: str = "finished", error: str | None = None) -> dict[str, int]:
        """End the run's row (how it ended: ``finished``, ``interrupted`` or ``failed`` with
        ``error``'s line), then log and write its report; return the counts."""
        self.status = status
        counts = self.staging.finish_run(status, error, filtered=self.filtered.total())
        duration = time.monotonic() - self._started
        client = self.dialect.client
        report = build_report(self.staging, provider=self.dialect.name, dry_run=self.dry_run,
                              counts=counts, duration=duration, calls=dict(client.calls),
                              waited=client.waited_seconds, status=status, error=error,
                              filtered=dict(self.filtered),
                              crm_only_rejects=self.dialect.crm_only_rejects)
        if self.report_dir:
            report = write_report(report, self.staging, self.report_dir)
        self.staging.record_report(duration=duration, calls=dict(client.calls),
                                   waited=client.waited_seconds, report_path=report["files"].get("markdown"))
        verb = "planned" if self.dry_run else "done" if status == "finished" else status
        logger.info(
            "crmphones run %s (%s, %s): received=%d created=%d updated=%d unchanged=%d "
            "merged=%d rejected=%d filtered=%d", self.run_id, self.dialect.name, verb,
            counts["received"], counts["created"], counts["updated"], counts["unchanged"],
            counts["merged"], counts["rejected"], counts["filtered"],
        )
        if self.filtered:
            logger.info("  filtered out by stream maps: %s",
                        ", ".join(f"{stream} {n}" for stream, n in sorted(self.filtered.items())))
        for reason in report["rejects_by_reason"]:
            logger.info("  rejected %d: %s", reason["records"], reason["reason"])
        logger.info("API calls: %d %s in %.1fs (%.1f/s), %.1fs waiting on rate limits",
                    report["api_calls"], report["api_calls_by_status"], duration,
                    report["api_calls_per_second"], report["rate_limit_wait_seconds"])
        if report["files"]:
            logger.info("run report: %s (every record's outcome: %s)",
                        report["files"]["markdown"], report["files"]["csv"])
        else:
            logger.info("run report:\n%s", to_markdown(report))
        accounted = sum(counts[k] for k in OUTCOMES)
        if accounted != counts["received"]:
            logger.error("accounting mismatch: %d received, %d accounted for",
                         counts["received"], accounted)
        return counts

    def close(self) -> None:
        """Release the ledger and the HTTP client (once)."""
        if self._closed:
            return
        self._closed = True
        if self._grace is not None:
            self._grace.cancel()
        self.staging.close()
        self.dialect.close()
