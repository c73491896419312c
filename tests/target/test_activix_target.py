"""target-crmphones writing lead phones to an emulated Activix account."""

from __future__ import annotations

import json
import typing as t

import pytest

from crmphones.dialects.activix import Activix
from crmphones.records import PhoneRecord
from tests.conftest import DESTINATION_TOKEN, SOURCE_TOKEN, activix_config
from tests.target.conftest import SCHEMA, TargetRunner, last_run_counts, ledger, record, tap_lines

if t.TYPE_CHECKING:
    import pathlib

    from crmphones_emulators import EmulatorServer


def _writes(server: EmulatorServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.requests if r.method in ("POST", "PUT")]


def _phones(server: EmulatorServer) -> list[dict[str, t.Any]]:
    return server.app.snapshot()["lead_phones"]


def _tap_output(server: EmulatorServer, tmp_path: pathlib.Path) -> list[str]:
    return tap_lines(activix_config(server, SOURCE_TOKEN), tmp_path)


def test_tap_to_target_round_trip(
    activix_source: EmulatorServer, activix_destination: EmulatorServer,
    target_runner: TargetRunner, staging_path: str, tmp_path: pathlib.Path,
) -> None:
    """Valid numbers land once on the same lead in the same type slot; a rerun writes nothing."""
    lines = _tap_output(activix_source, tmp_path)
    source = [json.loads(x)["record"] for x in lines if json.loads(x)["type"] == "RECORD"]
    assert {json.loads(x)["stream"] for x in lines if json.loads(x)["type"] == "RECORD"} == {
        "lead_phones"}, "parent streams are not selected by default"
    config = activix_config(activix_destination, DESTINATION_TOKEN, staging_path=staging_path)
    target_runner.run(config, lines)

    valid = {(r["parent_id"], r["e164"], r["extension"], r["label"]) for r in source if r["is_valid"]}
    written = {(str(p["lead_id"]), p["number"], str(p["extension"]) if p["extension"] else None,
                p["type"]) for p in _phones(activix_destination)}
    assert written == valid
    assert len(_phones(activix_destination)) == len(valid)
    counts = last_run_counts(staging_path)
    assert counts == {"received": len(source), "created": len(valid), "updated": 0,
                      "unchanged": 0, "merged": 0, "rejected": len(source) - len(valid)}
    assert not [r for r in activix_destination.requests if r.status == 403]
    lookups = [r for r in activix_destination.requests if r.path.startswith("/v2/leads/")]
    assert lookups == [], "a batch touching most leads reads the lead pages, not each lead"

    before = len(_writes(activix_destination))
    target_runner.run(config, lines)
    assert len(_writes(activix_destination)) == before
    assert last_run_counts(staging_path)["unchanged"] == len(valid)


def test_one_phone_per_type_per_lead(
    activix_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
) -> None:
    """Two numbers of one type for one lead: the later record takes the slot, the other is a
    reject with the reason; typed records are placed before untyped ones; no 403 is provoked."""
    config = activix_config(activix_destination, DESTINATION_TOKEN, staging_path=staging_path)
    target_runner.run(config, [
        SCHEMA,
        record(parent_id="7", number="(514) 555-0101", phone_type="mobile"),
        record(parent_id="7", number="(514) 555-0102", phone_type="mobile"),  # later: wins
        record(parent_id="7", number="514-555-0103 ext. 44"),                # no type: no slot left
        record(parent_id="7", number="514 555 0104", label="Office"),        # work
        record(parent_id="7", number="514 555 0105", phone_type="home"),
        record(parent_id="8", number="514 555 0106 x7"),                     # no type: mobile
    ])
    phones = {(p["lead_id"], p["number"], p["type"], p["extension"])
              for p in _phones(activix_destination)}
    assert phones == {(7, "+15145550102", "mobile", None), (7, "+15145550104", "work", None),
                      (7, "+15145550105", "home", None), (8, "+15145550106", "mobile", 7)}
    assert last_run_counts(staging_path) == {"received": 6, "created": 4, "updated": 0,
                                             "unchanged": 0, "merged": 0, "rejected": 2}
    reasons = dict(ledger(staging_path, "SELECT seq, reason FROM rejects"))
    assert set(reasons) == {1, 3}
    assert "already has a mobile phone" in reasons[1]
    assert "one phone per type per lead" in reasons[3]
    assert not [r for r in activix_destination.requests if r.status == 403]


@pytest.mark.parametrize("enforced", [False, True])
def test_type_change_is_one_put_with_number_and_type(
    activix_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
    enforced: bool,
) -> None:
    """A known number with a new type: one PUT /lead-phones/:id carrying the change and the
    `number` and `type` the docs require, so a server enforcing them answers 200 too."""
    activix_destination.app.configure({"put_requires_number_and_type": enforced})
    config = activix_config(activix_destination, DESTINATION_TOKEN, staging_path=staging_path)
    target_runner.run(config, [SCHEMA, record(parent_id="9", number="+15145550111",
                                              phone_type="home")])
    target_runner.run(config, [SCHEMA, record(parent_id="9", number="514.555.0111",
                                              phone_type="mobile")])
    puts = [r for r in activix_destination.requests if r.method == "PUT"]
    assert [r.status for r in puts] == [200]
    assert json.loads(puts[0].body or "{}") == {"number": "+15145550111", "type": "mobile"}
    (phone,) = _phones(activix_destination)
    assert phone["type"] == "mobile"
    assert last_run_counts(staging_path)["updated"] == 1
    (changes,), = ledger(staging_path, "SELECT changes FROM outcomes WHERE outcome = 'updated'")
    assert json.loads(changes) == {"type": "mobile"}, "the ledger says what changed"


@pytest.mark.parametrize("enforced", [False, True])
def test_new_extension_is_the_same_phone_updated_in_place(
    activix_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
    enforced: bool,
) -> None:
    """The lead's work phone with ext. 12 fed again with ext. 34: the same slot, one PUT with
    the new extension (and `number` and `type`), the same phone id; no reject, no 403."""
    activix_destination.app.configure({"put_requires_number_and_type": enforced})
    config = activix_config(activix_destination, DESTINATION_TOKEN, staging_path=staging_path)
    target_runner.run(config, [SCHEMA, record(parent_id="7", number="+1 514-555-0102 ext. 12",
                                              label="Work")])
    (before,) = _phones(activix_destination)
    target_runner.run(config, [SCHEMA, record(parent_id="7", number="514-555-0102 ext. 34",
                                              label="Work")])
    (after,) = _phones(activix_destination)
    assert (after["id"], after["number"], after["type"], after["extension"]) == (
        before["id"], "+15145550102", "work", 34)
    puts = [r for r in activix_destination.requests if r.method == "PUT"]
    assert [json.loads(r.body or "{}") for r in puts] == [
        {"number": "+15145550102", "type": "work", "extension": 34}]
    assert last_run_counts(staging_path) == {"received": 1, "created": 0, "updated": 1,
                                             "unchanged": 0, "merged": 0, "rejected": 0}
    assert not [r for r in activix_destination.requests if r.status >= 400]


def test_slot_conflict_rejects_by_default_and_replace_updates_the_slot(
    activix_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
) -> None:
    """A new number for a held work slot: rejected by default (the held number stays); with
    `type_slot_conflict: replace` the slot's phone takes the number, an update in the dry
    run's plan and in the real run, one PUT; a slot whose phone has its own input record is
    still a reject."""
    config = activix_config(activix_destination, DESTINATION_TOKEN, staging_path=staging_path)
    target_runner.run(config, [SCHEMA,
                               record(parent_id="11", number="514-555-0120", label="Work"),
                               record(parent_id="12", number="514-555-0130", label="Work")])
    held = {p["lead_id"]: p for p in _phones(activix_destination)}
    incoming = [SCHEMA,
                record(parent_id="11", number="514-555-0121 x5", label="Work"),
                record(parent_id="12", number="514-555-0130", label="Work"),   # its own record
                record(parent_id="12", number="514-555-0131", label="Work")]
    target_runner.run(config, incoming)
    assert _phones(activix_destination) == list(held.values()), "reject: nothing sent"
    reasons = dict(ledger(staging_path, "SELECT seq, reason FROM rejects"))
    assert "already has a work phone" in reasons[1]

    replace = {**config, "type_slot_conflict": "replace"}
    writes = len(_writes(activix_destination))
    target_runner.run({**replace, "dry_run": True}, incoming)
    assert len(_writes(activix_destination)) == writes
    planned = ledger(staging_path, "SELECT seq, outcome, destination_id, changes FROM outcomes "
                                   "WHERE run_id = (SELECT run_id FROM runs ORDER BY started_at "
                                   "DESC LIMIT 1) ORDER BY seq")
    assert planned[0][:3] == (1, "updated", str(held[11]["id"]))
    assert json.loads(planned[0][3]) == {"number": "+15145550121", "extension": 5}
    assert [row[1] for row in planned] == ["updated", "unchanged", "rejected"]

    target_runner.run(replace, incoming)
    after = {p["lead_id"]: p for p in _phones(activix_destination)}
    assert (after[11]["id"], after[11]["number"], after[11]["extension"], after[11]["type"]) == (
        held[11]["id"], "+15145550121", 5, "work")
    assert after[12] == held[12]
    assert last_run_counts(staging_path) == {"received": 3, "created": 0, "updated": 1,
                                             "unchanged": 1, "merged": 0, "rejected": 1}
    assert len(_writes(activix_destination)) == writes + 1


def test_api_validation_errors_become_rejects(
    activix_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
) -> None:
    """A 422 carries the API's per-field messages into the rejects table, and is not retried."""
    config = activix_config(activix_destination, DESTINATION_TOKEN, staging_path=staging_path)
    target_runner.run(config, [SCHEMA, record(parent_id="424242", number="+15145550123"),
                               record(parent_id="lead-7", number="+15145550124")])
    reasons = dict(ledger(staging_path, "SELECT seq, reason FROM rejects"))
    assert "lead_id" in reasons[1]
    assert "422" in reasons[1]
    assert "integers" in reasons[2]
    posts = [r for r in activix_destination.requests if r.method == "POST"]
    assert len(posts) == 1


def test_duplicate_403_is_reconciled_and_vanished_phone_recreated(
    activix_destination: EmulatorServer,
) -> None:
    """The dialect's answers to a race: 403 Duplicate phone. -> unchanged; 404 on PUT -> recreate."""
    dialect = Activix(activix_config(activix_destination, DESTINATION_TOKEN))
    phone = PhoneRecord(id=None, provider="activix", parent_type="lead", parent_id="3",
                        number="+15145550131", e164="+15145550131", phone_type="work")
    first = dialect.create(phone)
    assert first.destination_id and not first.rejected
    again = dialect.create(phone)  # as if another writer got there between plan and write
    assert (again.outcome, again.destination_id) == ("unchanged", first.destination_id)
    slot_taken = dialect.create(PhoneRecord(
        id=None, provider="activix", parent_type="lead", parent_id="3", number="+15145550132",
        e164="+15145550132", phone_type="work"))
    assert "Duplicate phone." in (slot_taken.rejected or "")

    gone = dialect.to_phone_record({"id": 987654, "lead_id": 3, "number": "+15145550133",
                                    "type": "home", "extension": 12})
    result = dialect.update(gone, {"extension": 34})
    assert result.outcome == "created"
    assert "deleted" in (result.detail or "")
    held = {(p["number"], p["type"], p["extension"]) for p in _phones(activix_destination)}
    assert held == {("+15145550131", "work", None), ("+15145550133", "home", 34)}, \
        "recreated with the new values"
    dialect.close()


def test_bad_key_stops_at_once(
    activix_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
) -> None:
    """401 names the setting; the key never appears in the output."""
    config = activix_config(activix_destination, "wrong-activix-key", staging_path=staging_path)
    result = target_runner.run(config, [SCHEMA, record(parent_id="5", number="+15145550140")],
                               check=False)
    assert result.returncode == 1
    assert "access_token" in result.stderr
    assert "Traceback" not in result.stderr
    assert "wrong-activix-key" not in result.stderr + result.stdout
    assert len(activix_destination.requests) == 1


def test_parent_map_moves_prospects_onto_leads(
    activix_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
    tmp_path: pathlib.Path,
) -> None:
    """Outreach-shaped records land on the mapped Activix leads; unmapped ones are rejected."""
    parent_map = tmp_path / "prospect_to_lead.csv"
    parent_map.write_text("source_parent_id,target_parent_id,note\n31,4,\n32,5,\n33,,no lead yet\n")
    config = activix_config(activix_destination, DESTINATION_TOKEN, staging_path=staging_path,
                            parent_map_path=str(parent_map))
    target_runner.run(config, [
        SCHEMA,
        record(parent_type="prospect", parent_id="31", number="+1 212 555 0150", phone_type="voip"),
        record(parent_type="prospect", parent_id=32, number="212-555-0151", label="Work"),
        record(parent_type="prospect", parent_id="33", number="212-555-0152"),
        record(parent_type="prospect", parent_id="34", number="212-555-0153"),
    ])
    phones = {(p["lead_id"], p["number"], p["type"]) for p in _phones(activix_destination)}
    assert phones == {(4, "+12125550150", "mobile"), (5, "+12125550151", "work")}
    reasons = dict(ledger(staging_path, "SELECT seq, reason FROM rejects"))
    assert reasons == {3: "prospect 33 has no row in the parent map (parent_map_path)",
                       4: "prospect 34 has no row in the parent map (parent_map_path)"}


def test_parent_map_file_errors_are_one_line(
    activix_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
    tmp_path: pathlib.Path,
) -> None:
    """A missing map or a wrong header stops the run before any request, naming the setting."""
    bad = tmp_path / "map.csv"
    bad.write_text("prospect,lead\n1,2\n")
    for path in (str(tmp_path / "nowhere.csv"), str(bad)):
        config = activix_config(activix_destination, DESTINATION_TOKEN, staging_path=staging_path,
                                parent_map_path=path)
        result = target_runner.run(config, [SCHEMA, record(parent_id="1", number="+12125550150")],
                                   check=False)
        assert result.returncode == 1
        assert "parent_map_path" in result.stderr
        assert "Traceback" not in result.stderr
    assert activix_destination.requests == []
