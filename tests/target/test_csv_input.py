"""Input as a CSV tap or the SDK's flattening sends it: every column a string, ``""`` for
null, booleans as words, ``ancestors`` as JSON text or flattened into ``ancestors__<kind>``,
timestamps as whatever text the source held."""

from __future__ import annotations

import json
import typing as t

import pytest

from crmphones.records import PHONE_RECORD_SCHEMA
from crmphones.settings import dialect_for
from target_crmphones.intake import Intake
from tests.conftest import DESTINATION_TOKEN, od_config, outreach_config
from tests.target.conftest import last_run_counts, ledger, record

if t.TYPE_CHECKING:
    from crmphones_emulators import EmulatorServer
    from tests.target.conftest import TargetRunner


@pytest.mark.parametrize(("text", "expected"), [
    ("true", True), ("FALSE", False), ("1", True), ("0", False), ("yes", True), ("no", False),
    ("", None), (True, True), (0, False), (None, None)])
def test_is_primary_as_a_csv_tap_writes_it(outreach_destination: EmulatorServer, text: t.Any,
                                           expected: bool | None) -> None:
    intake = Intake(dialect_for(outreach_config(outreach_destination, DESTINATION_TOKEN)), None)
    row = intake.normalize(1, "phones", {"parent_id": "5", "number": "+12125550101",
                                         "is_primary": text, "extension": ""})
    assert row["reject_reason"] is None
    assert row["is_primary"] is expected


def test_a_word_that_is_no_boolean_is_a_reject(outreach_destination: EmulatorServer) -> None:
    intake = Intake(dialect_for(outreach_config(outreach_destination, DESTINATION_TOKEN)), None)
    row = intake.normalize(1, "phones", {"parent_id": "5", "number": "+12125550101",
                                         "is_primary": "maybe"})
    assert row["reject_reason"].startswith("is_primary must be a boolean")


@pytest.mark.parametrize("ancestors", [
    {"ancestors": {"organization": "12"}},
    {"ancestors": '{"organization": "12"}'},
    {"ancestors__organization": "12"},
    {"ancestors__organization": 12, "ancestors": ""},
])
def test_ancestors_as_json_text_or_flattened(od_destination: EmulatorServer,
                                             ancestors: dict[str, t.Any]) -> None:
    intake = Intake(dialect_for(od_config(od_destination, DESTINATION_TOKEN, "s")), None)
    row = intake.normalize(1, "phones", {"parent_type": "location", "parent_id": "7",
                                         "number": "+12125550101", **ancestors})
    assert row["reject_reason"] is None
    assert row["ancestors"] == '{"organization": "12"}'


@pytest.mark.parametrize("validate", [True, False])
def test_timestamps_are_kept_as_text(outreach_destination: EmulatorServer,
                                     target_runner: TargetRunner, staging_path: str,
                                     validate: bool) -> None:
    """``created_at`` and ``updated_at`` go to no CRM: an empty cell (a CSV tap's null) or a
    word where the SCHEMA says date-time costs the run nothing, and each record is staged as
    it came (the SDK would stop the run at the first value it cannot parse as a date)."""
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path,
                             validate_records=validate)
    stamps = ["", "yesterday", "2026-01-02T03:04:05Z"]
    result = target_runner.run(config, [
        {"type": "SCHEMA", "stream": "phones", "key_properties": [],
         "schema": PHONE_RECORD_SCHEMA},
        *(record(provider="outreach", parent_type="prospect", parent_id=str(5 + n),
                 number=f"+1202555014{n}", phone_type="work", is_valid=True, created_at=stamp,
                 updated_at=stamp)
          for n, stamp in enumerate(stamps))])
    assert "Traceback" not in result.stderr
    assert last_run_counts(staging_path)["created"] == 3
    staged = [json.loads(text) for (text,) in ledger(
        staging_path, "SELECT record FROM staged ORDER BY seq")]
    assert [(r["created_at"], r["updated_at"]) for r in staged] == [(s, s) for s in stamps]
