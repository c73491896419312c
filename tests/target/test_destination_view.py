"""What a run read of the destination serves its later batches, on a real DuckDB file.

The read here is a function standing for a dialect's ``current_phones`` (the view's contract
with it is owners in, phones out); the HTTP path is covered in ``test_diff_reads.py``.
"""

from __future__ import annotations

import typing as t

import pytest

from crmphones.records import Owner, PhoneRecord
from target_crmphones.destination_view import DestinationView
from target_crmphones.staging import Staging

if t.TYPE_CHECKING:
    import pathlib
    from collections.abc import Iterator, Sequence


class Destination:
    """Phones by owner, and the owners each read asked for."""

    def __init__(self, phones: Sequence[PhoneRecord]) -> None:
        self.phones = list(phones)
        self.asked: list[list[Owner]] = []

    def read(self, owners: Sequence[Owner]) -> list[PhoneRecord]:
        self.asked.append(list(owners))
        wanted = set(owners)
        # Like a page of leads: a stranger's phone comes along with the owners asked for.
        return [p for p in self.phones if Owner.of(p) in wanted or p.parent_id == "stranger"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _phone(parent: str, number: str, **extra: t.Any) -> PhoneRecord:
    return PhoneRecord(id=f"{parent}-{number}", provider="onedegree", parent_type="location",
                       parent_id=parent, number=number, e164=number, is_valid=True,
                       ancestors={"organization": "7"}, raw={"id": 1, "nested": [{"a": None}]},
                       **extra)


A, B, C = (Owner("location", p, (("organization", "7"),)) for p in ("1", "2", "3"))


@pytest.fixture
def staging(tmp_path: pathlib.Path) -> Iterator[Staging]:
    ledger = Staging(str(tmp_path / "ledger.duckdb"), "r" * 32)
    yield ledger
    ledger.close()


def test_owners_read_once_serve_later_batches_as_read(staging: Staging) -> None:
    """Same phones, equal field for field, each owner's in the order read; B has none."""
    destination = Destination([_phone("1", "+12025550101", phone_type="fax", label="Fax"),
                               _phone("3", "+12025550103"), _phone("1", "+12025550100"),
                               _phone("stranger", "+12025550199")])
    view = DestinationView(staging, 60, clock=Clock())
    first = view.phones([A, B], destination.read)
    assert [p.number for p in first] == ["+12025550101", "+12025550100", "+12025550199"]

    again = view.phones([A, B, C], destination.read)
    assert destination.asked == [[A, B], [C]]
    assert again == [*first[:2], _phone("3", "+12025550103"), first[2]]
    assert view.phones([A, B], destination.read) == first[:2], "the stranger's is not kept"
    assert destination.asked == [[A, B], [C]]
    assert (view.owners_read, view.owners_reused) == (3, 4)


def test_reads_are_reused_for_so_long_and_not_after_a_write(staging: Staging) -> None:
    destination = Destination([_phone("1", "+12025550100")])
    clock = Clock()
    view = DestinationView(staging, 60, clock=clock)
    view.phones([A, B], destination.read)
    clock.now += 59
    view.phones([A, B], destination.read)
    assert destination.asked == [[A, B]]
    clock.now += 2  # 61 s after the read
    view.phones([A, B], destination.read)
    assert destination.asked == [[A, B], [A, B]]

    destination.phones.append(_phone("2", "+12025550102"))  # the run writes to B
    view.forget([B])
    assert [p.number for p in view.phones([A, B], destination.read)] == [
        "+12025550100", "+12025550102"]
    assert destination.asked[-1] == [B]


def test_zero_seconds_reads_every_time(staging: Staging) -> None:
    destination = Destination([_phone("1", "+12025550100")])
    view = DestinationView(staging, 0, clock=Clock())
    for _ in range(3):
        assert [p.number for p in view.phones([A], destination.read)] == ["+12025550100"]
    assert destination.asked == [[A]] * 3
