"""Input as a CSV tap or the SDK's flattening sends it: every column a string, ``""`` for
null, booleans as words, ``ancestors`` as JSON text or flattened into ``ancestors__<kind>``."""

from __future__ import annotations

import typing as t

import pytest

from crmphones.settings import dialect_for
from target_crmphones.intake import Intake
from tests.conftest import DESTINATION_TOKEN, od_config, outreach_config

if t.TYPE_CHECKING:
    from crmphones_emulators import EmulatorServer


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
