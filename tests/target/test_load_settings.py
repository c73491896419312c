"""The SDK's target settings given a meaning here: ``load_method`` (upsert, append-only;
overwrite refused) and ``validate_records`` (a record that does not match its SCHEMA is a
reject with the reason; off: only our own checks)."""

from __future__ import annotations

import datetime
import functools
import typing as t

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmphones.records import PHONE_RECORD_SCHEMA
from target_crmphones.schema_check import SchemaCheck
from tests.conftest import DESTINATION_TOKEN, outreach_config
from tests.target.conftest import SCHEMA, TargetRunner, last_run_counts, ledger, record

if t.TYPE_CHECKING:
    from crmphones_emulators import EmulatorServer

CANONICAL = {"type": "SCHEMA", "stream": "phones", "key_properties": [],
             "schema": PHONE_RECORD_SCHEMA}


def _phone(**fields: t.Any) -> dict[str, t.Any]:
    return record(provider="outreach", parent_type="prospect", is_valid=True, **fields)


@pytest.mark.parametrize(("method", "patches", "outcome"), [
    ("upsert", 1, "updated"), ("append-only", 0, "unchanged")])
def test_load_method(outreach_destination: EmulatorServer, target_runner: TargetRunner,
                     staging_path: str, method: str, patches: int, outcome: str) -> None:
    """upsert updates a phone held with another type; append-only creates the new one only."""
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path,
                             load_method=method)
    target_runner.run(config, [SCHEMA, record(parent_id="5", number="+12025550143",
                                              phone_type="home")])
    target_runner.run(config, [SCHEMA, record(parent_id="5", number="+12025550143",
                                              phone_type="work"),
                               record(parent_id="5", number="+12025550144")])
    assert len([r for r in outreach_destination.requests if r.method == "PATCH"]) == patches
    counts = last_run_counts(staging_path)
    assert counts["created"] == 1 and counts[outcome] == 1
    types = {p["attributes"]["number"]: p["attributes"]["phoneType"]
             for p in outreach_destination.app.snapshot()["phoneNumbers"]}
    assert types["+12025550143"] == ("work" if method == "upsert" else "home")
    if method == "append-only":
        assert ledger(staging_path, "SELECT detail FROM outcomes WHERE outcome = 'unchanged'") == [
            ("append-only: not updated (phoneType differ)",)]


def test_overwrite_is_refused_in_one_line(outreach_destination: EmulatorServer,
                                          target_runner: TargetRunner, staging_path: str) -> None:
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path,
                             load_method="overwrite")
    result = target_runner.run(config, [SCHEMA, record(parent_id="5", number="+12025550143")],
                               check=False)
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines()
            if "load_method `overwrite` is not supported" in line]
    assert "Traceback" not in result.stderr
    assert outreach_destination.requests == []


@pytest.mark.parametrize("validate", [True, False, None])
def test_validate_records(outreach_destination: EmulatorServer, target_runner: TargetRunner,
                          staging_path: str, validate: bool | None) -> None:
    """``phone_type: "Cell"`` breaks the canonical SCHEMA's enum, though the intake reads it
    (as mobile): rejected with the SCHEMA's reason when validating (the default), created
    when not. A record our own checks refuse is refused either way."""
    extra = {} if validate is None else {"validate_records": validate}
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path,
                             **extra)
    target_runner.run(config, [CANONICAL,
                               _phone(parent_id="5", number="+12025550143", phone_type="Cell"),
                               _phone(parent_id="5", number="12", phone_type="mobile"),
                               _phone(parent_id="6", number="+12025550144", phone_type="work",
                                      updated_at="2026-01-02T03:04:05Z")])
    reasons = sorted(r for (r,) in ledger(staging_path, "SELECT reason FROM rejects"))
    counts = last_run_counts(staging_path)
    if validate is False:
        assert counts["created"] == 2 and len(reasons) == 1
    else:
        assert counts["created"] == 1 and len(reasons) == 2
        assert "does not match the stream's SCHEMA: phone_type: 'Cell' is not one of" in reasons[0]
    assert counts["received"] == 3


def test_a_schema_that_is_not_json_schema_costs_its_records_only(
    outreach_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
) -> None:
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path)
    broken = {**SCHEMA, "stream": "broken",
              "schema": {"type": "object", "properties": {"number": {"type": "phone"}}}}
    target_runner.run(config, [SCHEMA, broken, record(parent_id="5", number="+12025550143"),
                               {**record(parent_id="5", number="+12025550144"),
                                "stream": "broken"}])
    assert last_run_counts(staging_path)["created"] == 1
    ((reason,),) = ledger(staging_path, "SELECT reason FROM rejects")
    assert reason.startswith("the stream's SCHEMA is not a valid JSON schema")


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5),
    st.sampled_from(["mobile", "prospect", "work", "lead"]),
    st.just(datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc)),
    st.dictionaries(st.sampled_from(["organization", "opportunity", "x"]),
                    st.one_of(st.text(max_size=3), st.integers()), max_size=2),
    st.lists(st.integers(), max_size=2))


@functools.cache
def _phone_check() -> SchemaCheck:
    # Built once: the SCHEMA is a constant, it compiles to the same checks every time, and
    # SchemaCheck keeps no state between records, so each example meets what a fresh one is.
    return SchemaCheck(PHONE_RECORD_SCHEMA)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*PHONE_RECORD_SCHEMA["properties"], "other"]), _VALUES))
def test_the_fast_check_agrees_with_the_sdks_validator(candidate: dict[str, t.Any]) -> None:
    """The compiled check passes exactly what the SDK's JSON schema validator passes."""
    check = _phone_check()
    assert check.fast is not None
    assert check.fast(candidate) == check.validator.is_valid(candidate)
