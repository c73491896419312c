"""target-crmphones writing lead phones to an emulated Activix account."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t

from crmphones.dialects.activix import Activix
from crmphones.records import PhoneRecord
from tests.conftest import DESTINATION_TOKEN, SOURCE_TOKEN, activix_config
from tests.target.conftest import SCHEMA, TargetRunner, last_run_counts, ledger, record

if t.TYPE_CHECKING:
    import pathlib

    from crmphones_emulators import EmulatorServer


def _writes(server: EmulatorServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.requests if r.method in ("POST", "PUT")]


def _phones(server: EmulatorServer) -> list[dict[str, t.Any]]:
    return server.app.snapshot()["lead_phones"]


def _tap_output(server: EmulatorServer, tmp_path: pathlib.Path) -> list[str]:
    config_file = tmp_path / "tap-config.json"
    config_file.write_text(json.dumps(activix_config(server, SOURCE_TOKEN)))
    result = subprocess.run(
        [sys.executable, "-m", "tap_crmphones", "--config", str(config_file)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    return result.stdout.splitlines()


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


def test_type_change_is_one_partial_put(
    activix_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
) -> None:
    """A known number with a new type: PUT /lead-phones/:id with only `type`."""
    config = activix_config(activix_destination, DESTINATION_TOKEN, staging_path=staging_path)
    target_runner.run(config, [SCHEMA, record(parent_id="9", number="+15145550111",
                                              phone_type="home")])
    target_runner.run(config, [SCHEMA, record(parent_id="9", number="514.555.0111",
                                              phone_type="mobile")])
    puts = [r for r in activix_destination.requests if r.method == "PUT"]
    assert len(puts) == 1
    assert json.loads(puts[0].body or "{}") == {"type": "mobile"}
    (phone,) = _phones(activix_destination)
    assert phone["type"] == "mobile"
    assert last_run_counts(staging_path)["updated"] == 1


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
                                    "type": "home", "extension": None})
    result = dialect.update(gone, {"type": "home"})
    assert result.outcome == "created"
    assert "deleted" in (result.detail or "")
    numbers = {p["number"] for p in _phones(activix_destination)}
    assert numbers == {"+15145550131", "+15145550133"}
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
