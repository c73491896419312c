"""The staging ledger's own SQL, on a real DuckDB file."""

from __future__ import annotations

import csv
import typing as t

import pytest

from target_crmphones import staging as staging_module
from target_crmphones.staging import STAGED_COLUMNS, Staging

if t.TYPE_CHECKING:
    import pathlib


def _row(run_id: str, seq: int) -> dict[str, t.Any]:
    row: dict[str, t.Any] = dict.fromkeys(STAGED_COLUMNS)
    row.update(run_id=run_id, seq=seq, stream="phones", parent_type="prospect",
               parent_id=str(seq % 3 + 1), number=f"+1 202 555 {seq:04d}",
               record=f'{{"n": {seq}}}', fingerprint=f"f{seq}")
    return row


@pytest.mark.parametrize("records", [0, 1, 7, 9])
def test_outcomes_csv_is_whole_when_written_in_slices(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, records: int
) -> None:
    """The CSV is written a slice of the run at a time (so a large run fits DuckDB's memory
    limit): one header, every record once, in order, with its outcome, nothing of another run."""
    monkeypatch.setattr(staging_module, "_EXPORT_SLICE", 3)
    path = str(tmp_path / "ledger.duckdb")
    earlier = Staging(path, "a" * 32)
    earlier.stage([_row(earlier.run_id, seq) for seq in (1, 2)])
    earlier.close()
    ledger = Staging(path, "b" * 32)
    if records:
        ledger.stage([_row(ledger.run_id, seq) for seq in range(1, records + 1)])
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
