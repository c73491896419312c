"""target-crmphones writing phones of four owner kinds to an emulated One Degree account."""

from __future__ import annotations

import datetime
import json
import typing as t
from collections import Counter

import httpx
import pytest

from crmphones.auth import one_degree_signature
from tests.conftest import DESTINATION_SECRET, DESTINATION_TOKEN, SOURCE_SECRET, SOURCE_TOKEN, od_config
from tests.target.conftest import SCHEMA, TargetRunner, last_run_counts, ledger, record, tap_lines

if t.TYPE_CHECKING:
    import pathlib

    from crmphones_emulators import EmulatorServer

_KIND = {"Organization": "organization", "Location": "location", "Opportunity": "opportunity"}


def _phones(server: EmulatorServer) -> list[dict[str, t.Any]]:
    return server.app.snapshot()["phones"]


def _config(server: EmulatorServer, staging_path: str, **extra: t.Any) -> dict[str, t.Any]:
    return od_config(server, DESTINATION_TOKEN, DESTINATION_SECRET, staging_path=staging_path,
                     **extra)


def test_round_trip_of_every_owner_kind(
    od_source: EmulatorServer, od_destination: EmulatorServer, target_runner: TargetRunner,
    staging_path: str, tmp_path: pathlib.Path,
) -> None:
    """Valid phones land once on the same owner, with their type and primary flag; a rerun
    writes nothing."""
    lines = tap_lines(od_config(od_source, SOURCE_TOKEN, SOURCE_SECRET), tmp_path)
    source = [json.loads(x)["record"] for x in lines if json.loads(x)["type"] == "RECORD"]
    assert {r["parent_type"] for r in source} == {"organization", "location", "opportunity"}
    target_runner.run(_config(od_destination, staging_path), lines)

    valid = [r for r in source if r["is_valid"]]
    written = _phones(od_destination)
    assert Counter((_KIND[p["phoneable_type"]], str(p["phoneable_id"])) for p in written) == Counter(
        (r["parent_type"], r["parent_id"]) for r in valid)
    counts = last_run_counts(staging_path)
    assert counts["created"] == len(valid)
    assert counts["created"] + counts["merged"] + counts["rejected"] == len(source)
    owners = Counter((p["phoneable_type"], p["phoneable_id"]) for p in written if p["is_primary"])
    assert max(owners.values()) == 1, "never two primaries on one owner"

    writes = [r for r in od_destination.requests if r.method in ("POST", "PUT")]
    target_runner.run(_config(od_destination, staging_path), lines)
    assert [r for r in od_destination.requests if r.method in ("POST", "PUT")] == writes
    assert last_run_counts(staging_path)["unchanged"] == len(valid)


def test_location_of_an_opportunity_and_missing_ancestors(
    od_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
) -> None:
    """A location phone addressed through its opportunity lands on that location; a location
    record without its organization id is rejected with the reason."""
    held = od_destination.app.snapshot()
    opportunity = next(o for o in held["opportunities"] if o["location_ids"])
    location = opportunity["location_ids"][0]
    org = str(opportunity["organization_id"])
    target_runner.run(_config(od_destination, staging_path), [
        SCHEMA,
        record(parent_type="location", parent_id=location, number="415-555-0180 x9",
               ancestors={"organization": org, "opportunity": opportunity["id"]}),
        record(parent_type="location", parent_id=location, number="415-555-0181"),
        record(parent_type="opportunity", parent_id=opportunity["id"], number="415-555-0182",
               label="Fax", ancestors={"organization": org}),
    ])
    phones = {(p["phoneable_type"], p["phoneable_id"], p["digits"], p["phone_type"])
              for p in _phones(od_destination)}
    assert phones == {("Location", location, "+14155550180 x9", ""),  # no type given, none sent
                      ("Opportunity", opportunity["id"], "+14155550182", "fax")}
    reasons = dict(ledger(staging_path, "SELECT seq, reason FROM rejects"))
    assert list(reasons) == [2]
    assert "ancestors.organization" in reasons[2]


@pytest.mark.parametrize("clears", [True, False])
def test_one_primary_per_owner(
    od_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
    clears: bool,
) -> None:
    """Two primaries in the input for one owner: the later one is primary, the other is not.
    Moving the primary to another held number writes it primary and the old one explicitly
    not, so the owner keeps one whether or not the server clears the old one itself."""
    od_destination.app.configure({"primary_clears_others": clears})
    target_runner.run(_config(od_destination, staging_path), [
        SCHEMA,
        record(parent_type="organization", parent_id="5", number="415-555-0190", is_primary=True),
        record(parent_type="organization", parent_id="5", number="415-555-0191", is_primary=True),
        record(parent_type="organization", parent_id="5", number="415-555-0192", is_primary=False),
    ])
    primary = {p["digits"]: p["is_primary"] for p in _phones(od_destination)
               if p["phoneable_type"] == "Organization" and p["phoneable_id"] == 5}
    assert primary == {"+14155550190": False, "+14155550191": True, "+14155550192": False}
    held = {p["digits"]: p["id"] for p in _phones(od_destination)}

    od_destination.requests.clear()
    target_runner.run(_config(od_destination, staging_path), [
        SCHEMA,
        record(parent_type="organization", parent_id="5", number="415-555-0192", is_primary=True),
    ])
    primary = {p["digits"]: p["is_primary"] for p in _phones(od_destination)
               if p["phoneable_type"] == "Organization" and p["phoneable_id"] == 5}
    assert primary == {"+14155550190": False, "+14155550191": False, "+14155550192": True}
    puts = [(r.path, json.loads(r.body or "{}")) for r in od_destination.requests
            if r.method == "PUT"]
    assert puts == [
        (f"/v1/organizations/5/phones/{held['+14155550191']}", {"phone": {"is_primary": False}}),
        (f"/v1/organizations/5/phones/{held['+14155550192']}", {"phone": {"is_primary": True}})]
    assert last_run_counts(staging_path)["updated"] == 1, "the added write has no record"


def test_a_location_is_written_through_its_organization_only(
    od_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
) -> None:
    """A location read under an opportunity (ancestors name both) is written through the
    documented `organizations/:id/locations/:id/phones` route; the older route through the
    opportunity is not served (the emulator's default, as the current docs) and never used."""
    held = od_destination.app.snapshot()
    opportunity = next(o for o in held["opportunities"] if o["location_ids"])
    location, org = opportunity["location_ids"][0], opportunity["organization_id"]
    config = _config(od_destination, staging_path)
    target_runner.run(config, [SCHEMA, record(
        parent_type="location", parent_id=location, number="415-555-0183", label="Main",
        ancestors={"organization": org, "opportunity": opportunity["id"]})])
    target_runner.run(config, [SCHEMA, record(
        parent_type="location", parent_id=location, number="415-555-0183", label="Fax",
        ancestors={"organization": org, "opportunity": opportunity["id"]})])
    writes = [(r.method, r.path) for r in od_destination.requests if r.method in ("POST", "PUT")]
    (phone,) = _phones(od_destination)
    route = f"/v1/organizations/{org}/locations/{location}/phones"
    assert writes == [("POST", route), ("PUT", f"{route}/{phone['id']}")]
    assert (phone["phoneable_type"], phone["phoneable_id"], phone["phone_type"]) == (
        "Location", location, "fax")


def test_dry_run_rejects_what_the_real_run_rejects(
    od_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
) -> None:
    """A location or opportunity phone without its organization is rejected at intake: the
    dry run shows the same rejects, for the same reason, as the real run; the dry run's log
    says which rejects only the CRM can give."""
    opportunity = od_destination.app.snapshot()["opportunities"][0]
    lines = [SCHEMA,
             record(parent_type="location", parent_id="1", number="415-555-0184"),
             record(parent_type="opportunity", parent_id=opportunity["id"], number="415-555-0185",
                    ancestors={"opportunity": opportunity["id"]}),
             record(parent_type="organization", parent_id="7", number="415-555-0186")]
    query = ("SELECT seq, reason FROM rejects WHERE run_id = (SELECT run_id FROM runs "
             "ORDER BY started_at DESC LIMIT 1) ORDER BY seq")
    dry = target_runner.run(_config(od_destination, staging_path, dry_run=True), lines)
    planned = ledger(staging_path, query)
    assert [seq for seq, _ in planned] == [1, 2]
    assert "ancestors.organization" in planned[0][1]
    assert "rejects only One Degree can give" in dry.stderr
    assert not [r for r in od_destination.requests if r.method in ("POST", "PUT")]
    target_runner.run(_config(od_destination, staging_path), lines)
    assert ledger(staging_path, query) == planned
    assert [p["phoneable_id"] for p in _phones(od_destination)] == [7]


def test_forbidden_and_missing_owners_are_rejects(target_runner: TargetRunner, staging_path: str
                                                  ) -> None:
    """403 (not this key's organization) and 404 (no such owner) reject the record, no stop."""
    from crmphones_emulators import EmulatorServer
    from crmphones_emulators.onedegree import OneDegreeApp

    app = OneDegreeApp(records=0, parents=5, seed=2, api_key=DESTINATION_TOKEN,
                       api_secret=DESTINATION_SECRET, foreign_organizations=[2])
    with EmulatorServer(app) as server:
        target_runner.run(_config(server, staging_path), [
            SCHEMA,
            record(parent_type="organization", parent_id="2", number="415-555-0195"),
            record(parent_type="organization", parent_id="999", number="415-555-0196"),
            record(parent_type="organization", parent_id="3", number="415-555-0197"),
        ])
        assert [p["phoneable_id"] for p in app.snapshot()["phones"]] == [3]
    reasons = dict(ledger(staging_path, "SELECT seq, reason FROM rejects"))
    assert set(reasons) == {1, 2}
    assert "403" in reasons[1]
    assert "404" in reasons[2]


def test_signature_refusals(od_destination: EmulatorServer) -> None:
    """The signature covers the body and a fresh date: a wrong secret, a stale date and a body
    changed after signing are all refused (401)."""
    url = f"{od_destination.url}/v1/organizations/1/phones"
    body = json.dumps({"phone": {"digits": "+14155550199"}}).encode()

    def post(content: bytes, signed: bytes, secret: str, age: float = 0) -> int:
        when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age)
        date = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = {"1deg-Date": date, "1deg-Signature": one_degree_signature(secret, signed, date),
                   "Content-Type": "application/json"}
        return httpx.post(url, params={"api_key": DESTINATION_TOKEN}, content=content,
                          headers=headers).status_code

    assert post(body, body, "wrong-secret") == 401
    assert post(body, body, DESTINATION_SECRET, age=120) == 401
    assert post(body.replace(b"0199", b"0198"), body, DESTINATION_SECRET) == 401
    assert _phones(od_destination) == []
    assert post(body, body, DESTINATION_SECRET) in (200, 201)


def test_wrong_secret_stops_at_once(
    od_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
) -> None:
    config = od_config(od_destination, DESTINATION_TOKEN, "bad-secret", staging_path=staging_path)
    result = target_runner.run(config, [SCHEMA, record(parent_type="organization", parent_id="1",
                                                       number="+14155550170")], check=False)
    assert result.returncode == 1
    assert "api_secret" in result.stderr
    assert "Traceback" not in result.stderr
    assert "bad-secret" not in result.stderr + result.stdout
