"""All DuckDB SQL of the target: the staging ledger, de-duplication, outcomes, run counts.

One file per destination account (``staging_path``). Every input record is staged with
its run id; every outcome is recorded beside it, so a person can ask DuckDB what became
of any record, in any run. Rows go in as Arrow tables, not row by row (``executemany``).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import pathlib
import shutil
import typing as t

import duckdb
import pyarrow as pa

from crmphones.records import Outcome

# Each Arrow table here lives for one insert: Arrow's buffers come from the C allocator, which
# reuses what they freed (ARROW_DEFAULT_MEMORY_POOL, set in the package's __init__).

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["INTAKE_COLUMNS", "INTAKE_SCHEMA", "STAGED_COLUMNS", "WINNER_COLUMNS", "Staging",
           "intake_table"]

_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, provider VARCHAR, dry_run BOOLEAN,
    started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
    received BIGINT, created BIGINT, updated BIGINT, unchanged BIGINT,
    merged BIGINT, rejected BIGINT
);
-- Added with the run report; ALTER keeps files from earlier versions readable.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS duration_seconds DOUBLE;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS api_calls JSON;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS rate_limit_wait_seconds DOUBLE;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS report_path VARCHAR;
-- How the run ended (finished, interrupted, failed; NULL: it never ended, e.g. killed), and
-- for the last two the line the target printed.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS status VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS error VARCHAR;
-- Records read that a stream map filtered out before the sinks (in `received`, never staged).
ALTER TABLE runs ADD COLUMN IF NOT EXISTS filtered BIGINT;
CREATE TABLE IF NOT EXISTS staged (
    run_id VARCHAR, seq BIGINT, stream VARCHAR, source_id VARCHAR,
    parent_type VARCHAR, parent_id VARCHAR, ancestors VARCHAR,
    number VARCHAR, e164 VARCHAR, extension VARCHAR, region VARCHAR,
    phone_type VARCHAR, label VARCHAR, is_primary BOOLEAN,
    reject_reason VARCHAR,
    -- zstd: records are long JSON texts, which it packs better and checkpoints faster than
    -- DuckDB's own choice (FSST). Files made before keep what they had.
    record JSON USING COMPRESSION zstd
);
ALTER TABLE staged ADD COLUMN IF NOT EXISTS fingerprint VARCHAR;
CREATE TABLE IF NOT EXISTS outcomes (
    run_id VARCHAR, seq BIGINT, outcome VARCHAR, destination_id VARCHAR,
    changes JSON, detail VARCHAR, recorded_at TIMESTAMPTZ
);
-- `attempts`: how many runs so far rejected this same input record (by its fingerprint).
CREATE OR REPLACE VIEW rejects AS
    SELECT s.run_id, s.seq, s.stream, s.parent_id, s.number, o.detail AS reason,
           count(*) OVER (PARTITION BY s.fingerprint ORDER BY o.recorded_at
                          ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS attempts,
           s.record, o.recorded_at
    FROM outcomes o JOIN staged s USING (run_id, seq)
    WHERE o.outcome = 'rejected';
"""

STAGED_COLUMNS = (
    "run_id", "seq", "stream", "source_id", "parent_type", "parent_id", "ancestors",
    "number", "e164", "extension", "region", "phone_type", "label",
    "is_primary", "reject_reason", "record", "fingerprint",
)
#: What intake produces for each record: the staged columns but the run's id.
INTAKE_COLUMNS = STAGED_COLUMNS[1:]
# `record` is JSON made by `intake.record_text`: typed so, DuckDB takes it without parsing
# it again (a third of the insert's time).
_INTAKE_TYPES = {"seq": pa.int64(), "is_primary": pa.bool_(), "record": pa.json_()}
INTAKE_SCHEMA = pa.schema([(c, _INTAKE_TYPES.get(c, pa.string())) for c in INTAKE_COLUMNS])
#: A winning row as ``Staging.winners`` gives it (the last ten are ``PhoneRecord``
#: fields, but ``ancestors`` is its JSON text).
WINNER_COLUMNS = ("seq", "fingerprint", "parent_type", "parent_id", "ancestors", "number",
                  "e164", "extension", "region", "phone_type", "label", "is_primary")
#: An outcome as recorded: the run's id and the time are added by the insert.
_OUTCOME_SCHEMA = pa.schema([
    ("seq", pa.int64()), ("outcome", pa.string()), ("destination_id", pa.string()),
    ("changes", pa.string()), ("detail", pa.string()),
])
_MEMORY_LIMIT = "64MB"
_EXPORT_SLICE = 20_000  # records per COPY of the outcomes CSV
_PARENT_SLICE = 100_000  # records per partial count of outcomes per parent


class Staging:
    """The DuckDB staging file of one target run."""

    def __init__(self, path: str | pathlib.Path, run_id: str) -> None:
        """Open (or create) the file and its tables."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self._refused_earlier = False  # whether earlier runs refused any input (start_run)
        # Every statement still commits to the WAL (each outcome is durable as it is
        # recorded); folding the WAL into the file at DuckDB's default 16 MB made checkpoints
        # a large share of a long load. One thread: a batch's statements are small, and
        # DuckDB's worker threads only contend with this process's own work. The memory limit
        # bounds DuckDB's cache of the file's blocks, which otherwise grows with the run; a
        # query needing more spills to a temporary directory beside the file (the report's
        # queries over the whole run go a slice at a time).
        self.connection = duckdb.connect(str(path), config={
            "checkpoint_threshold": "256MB", "threads": 1, "memory_limit": _MEMORY_LIMIT})
        self.connection.execute(_DDL)

    def close(self) -> None:
        """Close the file."""
        self.connection.close()

    def start_run(self, provider: str, *, dry_run: bool) -> None:
        """Record that a run began, and gather what earlier runs saw refused."""
        self.connection.execute(
            "INSERT INTO runs (run_id, provider, dry_run, started_at) VALUES (?, ?, ?, ?)",
            [self.run_id, provider, dry_run, _now()],
        )
        # Earlier runs' refusals cannot change during this one (the file is this process's):
        # gathered once, each batch looks its fingerprints up in them instead of joining the
        # whole ledger again, which grows with the run.
        self.connection.execute(
            """CREATE OR REPLACE TEMP TABLE refused_earlier AS
               SELECT s.fingerprint, arg_max(o.detail, o.recorded_at) AS detail,
                      count(DISTINCT run_id) AS runs
               FROM outcomes o JOIN staged s USING (run_id, seq)
               WHERE run_id <> ? AND o.outcome = 'rejected' AND o.detail LIKE 'HTTP 4%'
               GROUP BY s.fingerprint""", [self.run_id]).fetchall()
        (count,), = self.connection.execute("SELECT count(*) FROM refused_earlier").fetchall()
        self._refused_earlier = count > 0

    def stage(self, table: pa.Table) -> int:
        """Insert input records (an ``INTAKE_SCHEMA`` table, ``intake_table``), and record
        those that intake rejected (with its reason) as rejected; return how many were."""
        with self._registered("incoming", table):
            self.connection.execute(
                f"INSERT INTO staged ({', '.join(STAGED_COLUMNS)}) "
                f"SELECT ?, {', '.join(INTAKE_COLUMNS)} FROM incoming", [self.run_id])
            row = self.connection.execute(
                """INSERT INTO outcomes
                   SELECT ?, seq, 'rejected', NULL, NULL, reject_reason, ? FROM incoming
                   WHERE reject_reason IS NOT NULL ORDER BY seq""",
                [self.run_id, _now()]).fetchone()
        return row[0] if row else 0

    def settle_duplicates(self, chunk_rows: int) -> int:
        """De-duplicate the whole run: one record per owner + E.164 + extension, the latest
        of the run wins, whatever its stream or batch; the others are recorded as merged.

        The winners are kept for ``winners`` in chunks of about ``chunk_rows`` records that
        never split an owner, so each owner is read from the destination and decided once.

        Returns:
            How many records were merged into a later one.
        """
        self.connection.execute(
            f"""CREATE OR REPLACE TEMP TABLE ranked AS
                SELECT {', '.join(WINNER_COLUMNS)},
                       [parent_type, parent_id, coalesce(ancestors, '')] AS owner,
                       row_number() OVER (PARTITION BY owner, e164, coalesce(extension, '')
                                          ORDER BY seq DESC) = 1 AS wins
                FROM staged WHERE run_id = ? AND reject_reason IS NULL""", [self.run_id])
        row = self.connection.execute(
            """INSERT INTO outcomes
               SELECT ?, seq, 'merged', NULL, NULL, 'duplicate of a later record', ?
               FROM ranked WHERE NOT wins ORDER BY seq""", [self.run_id, _now()]).fetchone()
        # An owner's chunk: the winners before its first one, in owner order, over the size.
        self.connection.execute(
            """CREATE OR REPLACE TEMP TABLE run_winners AS
               WITH owners AS (
                   SELECT owner, (sum(count(*)) OVER (ORDER BY owner ROWS UNBOUNDED PRECEDING)
                                  - count(*)) // ? AS chunk
                   FROM ranked WHERE wins GROUP BY owner)
               SELECT r.* EXCLUDE (owner, wins), o.chunk
               FROM ranked r JOIN owners o USING (owner) WHERE r.wins
               ORDER BY o.chunk, r.seq""", [max(chunk_rows, 1)])
        self.connection.execute("DROP TABLE ranked")
        return row[0] if row else 0

    def winner_chunks(self) -> int:
        """How many chunks ``settle_duplicates`` made."""
        (last,), = self.connection.execute("SELECT max(chunk) FROM run_winners").fetchall()
        return 0 if last is None else last + 1

    def winners(self, chunk: int) -> list[tuple[t.Any, ...]]:
        """One chunk's winning rows, each a tuple of ``WINNER_COLUMNS``, in ``seq`` order."""
        return self.connection.execute(
            f"SELECT {', '.join(WINNER_COLUMNS)} FROM run_winners WHERE chunk = ? ORDER BY seq",
            [chunk]).fetchall()

    def record_outcomes(self, outcomes: Sequence[tuple[int, str, str | None, t.Any, str | None]]) -> None:
        """Insert outcomes: (seq, outcome, destination_id, changes, detail)."""
        if not outcomes:
            return
        if len(outcomes) == 1:  # a write's outcome as it lands: a row needs no Arrow table
            seq, kind, destination, change, detail = outcomes[0]
            self.connection.execute(
                "INSERT INTO outcomes (run_id, seq, outcome, destination_id, changes, detail, "
                "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [self.run_id, seq, kind, destination,
                 None if change is None else json.dumps(change), detail, _now()])
            return
        seqs, kinds, destinations, changes, details = zip(*outcomes, strict=True)
        table = pa.Table.from_pydict({
            "seq": seqs, "outcome": kinds, "destination_id": destinations,
            "changes": [None if c is None else json.dumps(c) for c in changes],
            "detail": details}, schema=_OUTCOME_SCHEMA)
        # The run's id and the time as parameters, not as columns of one value repeated.
        with self._registered("new_outcomes", table):
            self.connection.execute(
                "INSERT INTO outcomes SELECT ?, seq, outcome, destination_id, changes, detail, ? "
                "FROM new_outcomes", [self.run_id, _now()])

    def counts(self, filtered: int = 0) -> dict[str, int]:
        """Records received and outcomes of this run, by kind.

        Args:
            filtered: Records read that a stream map filtered out: never staged, they are
                received all the same (``received`` counts every record the target read).
        """
        received = self.connection.execute(
            "SELECT count(*) FROM staged WHERE run_id = ?", [self.run_id]
        ).fetchone()
        rows = self.connection.execute(
            "SELECT outcome, count(*) FROM outcomes WHERE run_id = ? GROUP BY outcome",
            [self.run_id],
        ).fetchall()
        counts = {"received": (received[0] if received else 0) + filtered}
        counts.update({outcome.value: 0 for outcome in Outcome})
        counts.update(dict(rows))
        counts["filtered"] = filtered
        return counts

    def record_unsettled(self, detail: str) -> int:
        """Record every staged record of this run that has no outcome yet as rejected, with
        ``detail`` as the reason; return how many. For a run that stops before sending them:
        each record read still ends in exactly one outcome."""
        row = self.connection.execute(
            """INSERT INTO outcomes
               SELECT s.run_id, s.seq, 'rejected', NULL, NULL, ?, ? FROM staged s
               WHERE s.run_id = ? AND NOT EXISTS (
                   SELECT 1 FROM outcomes o WHERE o.run_id = s.run_id AND o.seq = s.seq)
               ORDER BY s.seq""",
            [detail, _now(), self.run_id]).fetchone()
        return row[0] if row else 0

    def finish_run(self, status: str = "finished", error: str | None = None, *,
                   filtered: int = 0, fold_log: bool = True) -> dict[str, int]:
        """Store how the run ended (``status``, and ``error``'s line) with its counts so far,
        and return the counts.

        Args:
            status: ``finished``, ``interrupted`` or ``failed``.
            error: The line the target printed for an interrupted or failed run.
            filtered: Records read that a stream map filtered out (``counts``).
            fold_log: Checkpoint first (False when the process is about to exit at once).
        """
        if fold_log:
            # Fold the run's log into the file first (closing would anyway): what it held in
            # memory is released for the report's queries over the whole run.
            self.connection.execute("CHECKPOINT")
        counts = self.counts(filtered)
        self.connection.execute(
            """UPDATE runs SET finished_at = ?, received = ?, created = ?, updated = ?,
               unchanged = ?, merged = ?, rejected = ?, filtered = ?, status = ?, error = ?
               WHERE run_id = ?""",
            [_now(), counts["received"], counts["created"], counts["updated"],
             counts["unchanged"], counts["merged"], counts["rejected"], filtered, status, error,
             self.run_id],
        )
        return counts

    def record_report(self, *, duration: float, calls: dict[str, int], waited: float,
                      report_path: str | None) -> None:
        """Keep the run's API figures beside its counts, queryable across runs."""
        self.connection.execute(
            "UPDATE runs SET duration_seconds = ?, api_calls = ?, rate_limit_wait_seconds = ?, "
            "report_path = ? WHERE run_id = ?",
            [duration, json.dumps(calls), waited, report_path, self.run_id],
        )

    def started_at(self) -> datetime.datetime:
        row = self.connection.execute("SELECT started_at FROM runs WHERE run_id = ?",
                                      [self.run_id]).fetchone()
        return row[0] if row else _now()

    def by_parent(self, limit: int) -> list[dict[str, t.Any]]:
        """Outcomes per parent, the parents with the most writes first (ties: by kind, then
        by id, as numbers where ids are numbers: 9 before 10).

        Counted a slice of the run at a time, then summed, so that the join's memory does not
        grow with the run.
        """
        last = self._last_seq()
        counts = """count(*) FILTER (WHERE o.outcome = 'created') AS created,
                    count(*) FILTER (WHERE o.outcome = 'updated') AS updated,
                    count(*) FILTER (WHERE o.outcome = 'unchanged') AS unchanged,
                    count(*) FILTER (WHERE o.outcome = 'rejected') AS rejected"""
        self.connection.execute(
            """CREATE OR REPLACE TEMP TABLE parent_counts (parent_type VARCHAR,
               parent_id VARCHAR, created BIGINT, updated BIGINT, unchanged BIGINT,
               rejected BIGINT)""")
        for first in range(1, last + 1, _PARENT_SLICE):
            self.connection.execute(
                f"""INSERT INTO parent_counts
                    SELECT s.parent_type, s.parent_id, {counts}
                    FROM (SELECT seq, outcome FROM outcomes
                          WHERE run_id = $run AND seq BETWEEN $first AND $last) o
                    JOIN (SELECT seq, parent_type, parent_id FROM staged
                          WHERE run_id = $run AND parent_id IS NOT NULL
                            AND seq BETWEEN $first AND $last) s USING (seq)
                    GROUP BY ALL""",
                {"run": self.run_id, "first": first, "last": first + _PARENT_SLICE - 1})
        cursor = self.connection.execute(
            """SELECT * FROM (
                   SELECT parent_type, parent_id, sum(created)::BIGINT AS created,
                          sum(updated)::BIGINT AS updated, sum(unchanged)::BIGINT AS unchanged,
                          sum(rejected)::BIGINT AS rejected
                   FROM parent_counts GROUP BY ALL)
               ORDER BY created + updated + rejected DESC, 1,
                        try_cast(parent_id AS HUGEINT) NULLS LAST, 2 LIMIT $limit""",
            {"limit": limit})
        rows = _dicts(cursor)
        self.connection.execute("DROP TABLE parent_counts")
        return rows

    def _last_seq(self) -> int:
        """The run's last record's number (0 before any)."""
        (last,), = self.connection.execute("SELECT max(seq) FROM staged WHERE run_id = ?",
                                           [self.run_id]).fetchall()
        return last or 0

    def sample(self, per_outcome: int) -> list[dict[str, t.Any]]:
        """The first records of each written or rejected outcome, for a person to read."""
        # The first few of each outcome are picked before the join, which then is small
        # whatever the run's size.
        first = " UNION ALL ".join(
            f"""(SELECT seq, outcome, changes, detail FROM outcomes
                 WHERE run_id = $run AND outcome = '{outcome}' ORDER BY seq LIMIT $n)"""
            for outcome in ("created", "updated", "rejected"))
        cursor = self.connection.execute(
            f"""SELECT o.outcome, s.parent_type, s.parent_id, s.number, s.e164, o.changes,
                       o.detail
                FROM ({first}) o JOIN staged s ON s.run_id = $run AND s.seq = o.seq
                ORDER BY o.outcome, o.seq""",
            {"run": self.run_id, "n": per_outcome})
        return _dicts(cursor)

    def export_outcomes(self, path: str) -> None:
        """Every record of the run with its outcome, as CSV (the dry run's reviewable plan).

        DuckDB writes it a slice of the run at a time and the file is their concatenation, so
        that the join and sort's memory does not grow with the run.
        """
        target = pathlib.Path(path)
        piece = target.with_name(f"{target.name}.part")
        escaped = str(piece).replace("'", "''")
        with target.open("wb") as out:
            for first in range(1, max(self._last_seq(), 1) + 1, _EXPORT_SLICE):
                # COPY takes no parameters; run_id is our own hex uuid, the bounds integers.
                self.connection.execute(
                    f"""COPY (SELECT s.seq, o.outcome, s.stream, s.source_id, s.parent_type,
                                     s.parent_id, s.number, s.e164, s.extension, s.phone_type,
                                     o.destination_id, o.changes, o.detail
                              FROM staged s LEFT JOIN outcomes o USING (run_id, seq)
                              WHERE run_id = '{self.run_id}'
                                AND s.seq BETWEEN {first} AND {first + _EXPORT_SLICE - 1}
                              ORDER BY s.seq)
                        TO '{escaped}' (HEADER {str(first == 1).lower()}, DELIMITER ',')""")
                with piece.open("rb") as rows:
                    shutil.copyfileobj(rows, out)
        piece.unlink()

    def refused_before(self, fingerprints: Sequence[str]) -> dict[str, tuple[str, int]]:
        """Inputs the API refused for their content (HTTP 4xx) in earlier runs:
        fingerprint -> (the API's last words, runs that refused it)."""
        if not fingerprints or not self._refused_earlier:
            return {}
        rows = self.connection.execute(
            """SELECT fingerprint, detail, runs FROM refused_earlier
               WHERE fingerprint IN (SELECT unnest(?::VARCHAR[]))""",
            [list(fingerprints)]).fetchall()
        return {fingerprint: (detail, runs) for fingerprint, detail, runs in rows}

    @contextlib.contextmanager
    def _registered(self, name: str, rows: pa.Table) -> Iterator[None]:
        """``rows`` queryable as ``name`` for the statements run inside."""
        self.connection.register(name, rows)
        try:
            yield
        finally:
            self.connection.unregister(name)

    def reject_reasons(self) -> list[tuple[str, int]]:
        """Rejects of this run grouped by reason, most frequent first."""
        return self.connection.execute(
            "SELECT detail, count(*) FROM outcomes WHERE run_id = ? AND outcome = 'rejected' "
            "GROUP BY detail ORDER BY count(*) DESC, detail LIMIT 20",
            [self.run_id],
        ).fetchall()


def intake_table(rows: Sequence[dict[str, t.Any]]) -> pa.Table:
    """Intake rows (dicts with the ``INTAKE_COLUMNS``) as the table ``stage`` takes."""
    # Column by column: several times faster than Arrow's row-wise from_pylist.
    return pa.Table.from_pydict({c: [row[c] for row in rows] for c in INTAKE_COLUMNS},
                                schema=INTAKE_SCHEMA)


def _dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, t.Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
