"""Planning: create what is missing, update only what differs, leave the rest."""

from __future__ import annotations

from crmphones.dialects.outreach import Outreach
from crmphones.plan import plan_writes
from crmphones.records import PhoneRecord

DIALECT = Outreach({"access_token": "t", "api_url": "http://127.0.0.1:9/api/v2"})


def _wanted(parent: str, e164: str, kind: str | None = "mobile", ext: str | None = None
            ) -> PhoneRecord:
    return PhoneRecord(id=None, provider="outreach", parent_type="prospect", parent_id=parent,
                       number=e164, e164=e164, extension=ext, phone_type=kind, is_valid=True)


def _held(phone_id: int, parent: int, number: str, kind: str | None, ext: str | None = None
          ) -> PhoneRecord:
    return DIALECT.to_phone_record({
        "type": "phoneNumber", "id": phone_id,
        "attributes": {"number": number, "phoneType": kind, "extension": ext},
        "relationships": {"prospect": {"data": {"type": "prospect", "id": parent}}},
    })


def test_plan_create_update_unchanged() -> None:
    """Each wanted phone gets exactly the action its match (or absence) calls for."""
    current = [
        _held(1, 7, "(514) 987-6543", "mobile"),
        _held(2, 7, "+1 202 555 0143", "home"),
        _held(3, 8, "514-987-6543", "work"),  # same number, other prospect
    ]
    wanted = [
        (1, _wanted("7", "+15149876543")),              # same type: unchanged
        (2, _wanted("7", "+12025550143", "work")),      # type differs: update
        (3, _wanted("7", "+12025550144")),              # missing: create
        (4, _wanted("8", "+15149876543", None)),        # no type given: nothing to change
        (5, _wanted("8", "+15149876543", ext="12")),    # other extension: another phone
    ]
    plans = plan_writes(wanted, current, DIALECT)
    assert [(p.seq, p.action) for p in plans] == [
        (1, "unchanged"), (2, "update"), (3, "create"), (4, "unchanged"), (5, "create")]
    assert plans[1].changes == {"phoneType": "work"}
    assert plans[1].current is not None
    assert plans[1].current.id == "2"


def test_plan_matches_first_of_destination_duplicates() -> None:
    """When the destination already holds a number twice, nothing is created again."""
    current = [_held(5, 7, "+15149876543", "mobile"), _held(4, 7, "514 987 6543", "work")]
    plans = plan_writes([(1, _wanted("7", "+15149876543"))], current, DIALECT)
    assert plans[0].action == "unchanged"
    assert plans[0].current is not None
    assert plans[0].current.id == "5"


def test_append_only_plans_no_update() -> None:
    """An append-only load creates what is missing and leaves a phone that differs as it is,
    saying what differs."""
    current = [_held(1, 7, "+1 202 555 0143", "home")]
    wanted = [(1, _wanted("7", "+12025550143", "work")), (2, _wanted("7", "+12025550144"))]
    plans = plan_writes(wanted, current, DIALECT, updates=False)
    assert [(p.seq, p.action) for p in plans] == [(1, "unchanged"), (2, "create")]
    assert plans[0].changes == {}
    assert plans[0].note == "append-only: not updated (phoneType differ)"
    assert plans[0].current is not None and plans[0].current.id == "1"
