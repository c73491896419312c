"""A rerun of the same input writes nothing: one owner is one key, whatever way its id is
written and whatever ancestors the record carries that the CRM does not use."""

from __future__ import annotations

import json
import typing as t

import pytest

from crmphones.dialects import get_dialect
from tests.entry_points import run_target
from tests.reliability.conftest import (
    DESTINATIONS,
    assert_rerun_writes_nothing,
    run_in_process,
    serve,
)

if t.TYPE_CHECKING:
    import pathlib

#: An ancestor kind each CRM's owners are not addressed by.
_FOREIGN_ANCESTORS = {"outreach": {"account": "9"}, "activix": {"account": "9"},
                      "onedegree": {"region": "3"}, "ticketevolution": {"office": "6"}}


@pytest.mark.parametrize("dialect", list(DESTINATIONS))
def test_a_rerun_writes_nothing_for_leading_zeros_and_foreign_ancestors(
        dialect: str, tmp_path: pathlib.Path) -> None:
    kind = get_dialect(dialect).parent_types[0]
    records = [{"parent_type": kind, "parent_id": "0000007", "number": "+12125550171",
                "label": "Cell"},
               {"parent_type": kind, "parent_id": "8", "ancestors": _FOREIGN_ANCESTORS[dialect],
                "number": "+12125550172", "label": "Cell"}]
    lines = [json.dumps({"type": "SCHEMA", "stream": "phones", "key_properties": [],
                         "schema": {"type": "object", "properties": {}}}),
             *(json.dumps({"type": "RECORD", "stream": "phones", "record": r}) for r in records)]
    server = serve(dialect)
    try:
        config = {**DESTINATIONS[dialect].settings(server.url), "report_dir": "",
                  "staging_path": str(tmp_path / "ledger.duckdb")}
        writes = []
        for _ in range(3):
            result = run_target(config, lines, tmp_path)
            assert result.returncode == 0, result.stderr[-3000:]
            writes.append(sum(r.method in ("POST", "PUT", "PATCH") for r in server.requests))
        held = DESTINATIONS[dialect].view(server.app.snapshot())
    finally:
        server.stop()
    assert writes[0] > 0
    assert writes[1] == writes[2] == writes[0], "a rerun wrote again"
    owners = sorted(str(phone[1] if dialect == "onedegree" else phone[0]) for phone in held)
    assert owners == ["7", "8"], held


def _lines(*records: dict[str, t.Any]) -> list[str]:
    return [json.dumps({"type": "SCHEMA", "stream": "phones", "key_properties": [],
                        "schema": {"type": "object", "properties": {}}}),
            *(json.dumps({"type": "RECORD", "stream": "phones", "record": r}) for r in records)]


@pytest.mark.parametrize("clears", [True, False], ids=["primary_clears_others", "keeps_others"])
def test_a_phone_created_beside_the_primary_is_created_not_primary(clears: bool) -> None:
    """Found by test_idempotency: One Degree makes an owner's only phone primary (§7), so the
    first phone created on an empty organization became primary beside the input's primary
    created after it; where the server keeps the others' flags, the rerun wrote it false."""
    server = serve("onedegree", primary_clears_others=clears)
    try:
        writes = assert_rerun_writes_nothing(server, "onedegree", _lines(
            {"parent_type": "organization", "parent_id": "1", "number": "+1 212 555 0101"},
            {"parent_type": "organization", "parent_id": "1", "number": "+1 212 555 0101",
             "extension": "12", "is_primary": True}))
        primaries = [(p["digits"], p["is_primary"]) for p in server.app.snapshot()["phones"]]
    finally:
        server.stop()
    assert writes == 2
    assert sorted(primaries) == [("+12125550101", False), ("+12125550101 x12", True)]


@pytest.mark.parametrize("conflict", ["reject", "replace"])
def test_one_new_number_with_two_extensions_is_one_activix_phone(conflict: str) -> None:
    """Found by test_idempotency: a number the lead does not hold, given two extensions by
    two records, was two creates (the second refused as Activix's duplicate, and the run's
    slots taken by it); the rerun found the first held and updated its extension. As for a
    held number, the latest record wins."""
    server = serve("activix")
    try:
        writes = assert_rerun_writes_nothing(server, "activix", _lines(
            {"parent_id": "1", "number": "+1 415 555 0102", "label": "Cell"},
            {"parent_id": "1", "number": "+1 415 555 0102", "extension": "12"}),
            type_slot_conflict=conflict, batch_size_rows=1)
        held = [(p["number"], p["extension"]) for p in server.app.snapshot()["lead_phones"]]
    finally:
        server.stop()
    assert (writes, held) == (1, [("+14155550102", 12)])


def test_two_new_numbers_for_one_held_slot_replace_it_once(tmp_path: pathlib.Path) -> None:
    """Found by test_idempotency: with ``type_slot_conflict: replace``, two records with new
    numbers for the mobile slot each replaced the held mobile phone (two PUTs, the earlier
    record's extension left on the later's number); the rerun wrote the extension away."""
    server = serve("activix")
    try:
        config = {**DESTINATIONS["activix"].settings(server.url), "report_dir": "",
                  "staging_path": str(tmp_path / "before.duckdb")}
        run_in_process(config, _lines({"parent_id": "10", "number": "+52 55 5062 1201",
                                       "phone_type": "mobile"}))
        writes = assert_rerun_writes_nothing(server, "activix", _lines(
            {"parent_id": "10", "number": "+1 415 555 0102", "extension": "12", "label": "Cell"},
            {"parent_id": "10", "number": "+1 212 555 0101", "label": "Cell"}),
            type_slot_conflict="replace")
        held = [(p["number"], p["type"], p["extension"])
                for p in server.app.snapshot()["lead_phones"]]
    finally:
        server.stop()
    assert (writes, held) == (1, [("+12125550101", "mobile", None)])
