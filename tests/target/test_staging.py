"""The staging ledger's own SQL, on a real DuckDB file."""

from __future__ import annotations

import csv
import itertools
import json
import typing as t

import pytest

from crmphones.records import PhoneRecord
from target_crmphones import staging as staging_module
from target_crmphones.intake import record_text, wanted_phones
from target_crmphones.staging import INTAKE_COLUMNS, Staging, intake_table

if t.TYPE_CHECKING:
    import pathlib


def _rows(seqs: t.Sequence[int]) -> t.Any:
    """Staged rows numbered ``seqs``, the parent cycling 2, 3, 1."""
    rows = [dict.fromkeys(INTAKE_COLUMNS) for _ in seqs]
    for row, seq in zip(rows, seqs, strict=True):
        row.update(seq=seq, stream="phones", parent_type="prospect",
                   parent_id=str(seq % 3 + 1), number=f"+1 202 555 {seq:04d}",
                   record=f'{{"n": {seq}}}', fingerprint=f"f{seq}")
    return intake_table(rows)


@pytest.mark.parametrize("records", [0, 1, 7, 9])
def test_outcomes_csv_is_whole_when_written_in_slices(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, records: int
) -> None:
    """The CSV is written a slice of the run at a time (so a large run fits DuckDB's memory
    limit): one header, every record once, in order, with its outcome, nothing of another run."""
    monkeypatch.setattr(staging_module, "_EXPORT_SLICE", 3)
    path = str(tmp_path / "ledger.duckdb")
    earlier = Staging(path, "a" * 32)
    earlier.stage(_rows((1, 2)))
    earlier.close()
    ledger = Staging(path, "b" * 32)
    if records:
        ledger.stage(_rows(range(1, records + 1)))
        ledger.record_outcomes([(seq, "created", f"d{seq}", None, "dry run: planned, not sent")
                                for seq in range(1, records + 1, 2)])
    out = tmp_path / "outcomes.csv"
    ledger.export_outcomes(str(out))
    ledger.close()
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["seq"]) for r in rows] == list(range(1, records + 1))
    assert [r["outcome"] for r in rows] == ["created" if seq % 2 else ""
                                            for seq in range(1, records + 1)]
    assert all(r["detail"] == "dry run: planned, not sent" for r in rows[::2])
    assert out.read_text().count("seq,outcome,") == 1
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("slice_records", [100_000, 2])
def test_report_queries_keep_to_their_run(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                          slice_records: int) -> None:
    """Outcomes per parent (most writes first) and the sample (the first records of each
    written or rejected outcome) come from this run only, whatever an earlier run held; the
    counts per parent are the same whether the run is counted in one slice or in five."""
    monkeypatch.setattr(staging_module, "_PARENT_SLICE", slice_records)
    path = str(tmp_path / "ledger.duckdb")
    earlier = Staging(path, "a" * 32)
    earlier.stage(_rows(range(1, 10)))
    earlier.record_outcomes([(seq, "rejected", None, None, "old") for seq in range(1, 10)])
    earlier.close()
    ledger = Staging(path, "b" * 32)
    ledger.stage(_rows(range(1, 10)))  # parents 2, 3, 1, 2, ...
    kinds = {1: "created", 2: "created", 3: "created", 4: "created", 5: "updated",
             6: "unchanged", 7: "rejected", 8: "merged", 9: "rejected"}
    ledger.record_outcomes([(seq, kind, None, {"phoneType": "work"} if kind == "updated" else None,
                             f"why {seq}") for seq, kind in kinds.items()])
    by_parent = ledger.by_parent(limit=2)
    sample = ledger.sample(per_outcome=2)
    ledger.close()
    # parent 2: seqs 1, 4, 7 (created, created, rejected); parent 3: 2, 5, 8 (created,
    # updated, merged); parent 1: 3, 6, 9 (created, unchanged, rejected).
    assert by_parent == [
        {"parent_type": "prospect", "parent_id": "2", "created": 2, "updated": 0,
         "unchanged": 0, "rejected": 1},
        {"parent_type": "prospect", "parent_id": "1", "created": 1, "updated": 0,
         "unchanged": 1, "rejected": 1},
    ]
    assert [(s["outcome"], s["parent_id"], s["detail"]) for s in sample] == [
        ("created", "2", "why 1"), ("created", "3", "why 2"), ("rejected", "2", "why 7"),
        ("rejected", "1", "why 9"), ("updated", "3", "why 5")]
    assert json.loads(sample[-1]["changes"]) == {"phoneType": "work"}


def test_refusals_are_those_of_earlier_runs_gathered_at_the_start(tmp_path: pathlib.Path) -> None:
    """An input refused with a 4xx in earlier runs is found by its fingerprint, with the latest
    words and the number of runs; other rejects, and this run's own, are not refusals."""
    path = str(tmp_path / "ledger.duckdb")
    for run, detail in (("a", "HTTP 422: old words"), ("b", "HTTP 422: new words")):
        earlier = Staging(path, run * 32)
        earlier.start_run("outreach", dry_run=False)
        earlier.stage(_rows((1, 2)))  # fingerprints f1, f2
        earlier.record_outcomes([(1, "rejected", None, None, detail),
                                 (2, "rejected", None, None, "transient: timed out")])
        earlier.close()
    ledger = Staging(path, "c" * 32)
    ledger.start_run("outreach", dry_run=False)
    ledger.stage(_rows((3,)))
    ledger.record_outcomes([(3, "rejected", None, None, "HTTP 422: this run")])
    assert ledger.refused_before(["f1", "f2", "f3", "f9"]) == {"f1": ("HTTP 422: new words", 2)}
    ledger.close()
    fresh = Staging(str(tmp_path / "fresh.duckdb"), "d" * 32)
    fresh.start_run("outreach", dry_run=False)
    assert fresh.refused_before(["f1"]) == {}
    fresh.close()


def test_staged_records_are_json_even_when_orjson_refuses_them(tmp_path: pathlib.Path) -> None:
    """DuckDB takes the `record` text as JSON without checking it: a record orjson refuses
    (an integer past 64 bits) is still written as JSON, its NaN and infinities as null."""
    text = record_text({"big": 2**70, "nan": float("nan"), "deep": [{"inf": float("-inf")}]})
    assert json.loads(text, parse_constant=lambda name: pytest.fail(name)) == {
        "big": 2**70, "nan": None, "deep": [{"inf": None}]}
    ledger = Staging(str(tmp_path / "ledger.duckdb"), "a" * 32)
    rows = [dict.fromkeys(INTAKE_COLUMNS, None) | {"seq": 1, "stream": "phones", "record": text}]
    ledger.stage(intake_table(rows))
    assert ledger.connection.execute(
        "SELECT json_valid(record), record->>'$.nan' FROM staged").fetchall() == [(True, None)]
    ledger.close()


def test_records_are_stored_with_zstd(tmp_path: pathlib.Path) -> None:
    """The staged record text is most of the file: zstd keeps it smaller and its checkpoints
    shorter than DuckDB's own choice would (BENCHMARKS.md)."""
    ledger = Staging(str(tmp_path / "ledger.duckdb"), "r" * 32)
    ledger.stage(_rows(range(1, 3000)))
    ledger.connection.execute("CHECKPOINT")
    kinds = ledger.connection.execute(
        "SELECT DISTINCT compression FROM pragma_storage_info('staged') "
        "WHERE column_name = 'record' AND segment_type <> 'VALIDITY'").fetchall()
    ledger.close()
    assert kinds == [("ZSTD",)]


def test_winning_rows_become_the_phones_they_ask_for(tmp_path: pathlib.Path) -> None:
    """De-duplication keeps the latest row of the run per owner + E.164 + extension, whatever
    its stream, and each winning row becomes the ``PhoneRecord`` its fields say, field for
    field (``wanted_phones`` builds them by position)."""
    base = dict.fromkeys(INTAKE_COLUMNS) | {"stream": "phones", "record": "{}",
                                           "parent_type": "location", "parent_id": "7"}
    rows = [
        base | {"seq": 1, "fingerprint": "f1", "number": "514 555 0101", "e164": "+15145550101"},
        base | {"seq": 2, "fingerprint": "f2", "number": None, "e164": "+15145550102",
                "extension": "12", "region": "CA", "phone_type": "work", "label": "Office",
                "is_primary": True, "ancestors": '{"organization": "3"}'},
        base | {"seq": 3, "fingerprint": "f3", "number": "(514) 555-0101", "stream": "other",
                "e164": "+15145550101", "phone_type": "mobile", "is_primary": False},
    ]
    ledger = Staging(str(tmp_path / "ledger.duckdb"), "w" * 32)
    ledger.stage(intake_table(rows[:2]))
    ledger.stage(intake_table(rows[2:]))
    merged = ledger.settle_duplicates(chunk_rows=10)
    winners = ledger.winners(0)
    outcomes = ledger.connection.execute("SELECT seq, outcome FROM outcomes").fetchall()
    ledger.close()
    assert merged == 1
    assert outcomes == [(1, "merged")]
    assert [(row[0], row[1]) for row in winners] == [(2, "f2"), (3, "f3")]
    assert wanted_phones("onedegree", winners) == [
        (2, PhoneRecord(id=None, provider="onedegree", parent_type="location", parent_id="7",
                        number="+15145550102", e164="+15145550102", extension="12",
                        region="CA", phone_type="work", label="Office", is_primary=True,
                        is_valid=True, ancestors={"organization": "3"})),
        (3, PhoneRecord(id=None, provider="onedegree", parent_type="location", parent_id="7",
                        number="(514) 555-0101", e164="+15145550101", phone_type="mobile",
                        label=None, is_primary=False, is_valid=True)),
    ]


def test_a_run_is_chunked_by_owner_never_splitting_one(tmp_path: pathlib.Path) -> None:
    """Winners come in chunks of about ``chunk_rows`` records; an owner's phones all fall in
    one chunk, so it is read and decided once; every winner is in exactly one chunk."""
    base = dict.fromkeys(INTAKE_COLUMNS) | {"stream": "phones", "record": "{}",
                                           "parent_type": "prospect"}
    owners = [1, 1, 1, 2, 3, 3, 4, 4, 4, 4, 5]
    rows = [base | {"seq": seq, "fingerprint": f"f{seq}", "parent_id": str(owner),
                    "e164": f"+1514555{seq:04d}"} for seq, owner in enumerate(owners, 1)]
    ledger = Staging(str(tmp_path / "ledger.duckdb"), "c" * 32)
    ledger.stage(intake_table(rows[::2]))
    ledger.stage(intake_table(rows[1::2]))
    assert ledger.settle_duplicates(chunk_rows=3) == 0
    chunks = [ledger.winners(chunk) for chunk in range(ledger.winner_chunks())]
    ledger.close()
    seen = [[row[0] for row in chunk] for chunk in chunks]
    assert sorted(seq for chunk in seen for seq in chunk) == list(range(1, len(owners) + 1))
    by_chunk = [{row[3] for row in chunk} for chunk in chunks]
    assert all(not (a & b) for a, b in itertools.combinations(by_chunk, 2)), by_chunk
    assert all(chunk == sorted(chunk) for chunk in seen)
    assert len(chunks) == 4  # owners 1 | 2, 3 | 4 | 5: chunk = winners before the owner // 3


def test_parents_with_as_many_writes_sort_by_id_as_numbers(tmp_path: pathlib.Path) -> None:
    """Ids that are numbers sort as numbers (9 before 10 before 100); others after them."""
    ledger = Staging(str(tmp_path / "ledger.duckdb"), "c" * 32)
    ids = ["100", "9", "abc", "10", "0010x"]
    rows = [dict.fromkeys(INTAKE_COLUMNS) for _ in ids]
    for seq, (row, parent) in enumerate(zip(rows, ids, strict=True), start=1):
        row.update(seq=seq, stream="phones", parent_type="prospect", parent_id=parent,
                   record="{}", fingerprint=f"f{seq}")
    ledger.stage(intake_table(rows))
    ledger.record_outcomes([(seq, "created", None, None, None) for seq in range(1, 6)])
    order = [p["parent_id"] for p in ledger.by_parent(limit=10)]
    ledger.close()
    assert order == ["9", "10", "100", "0010x", "abc"]
