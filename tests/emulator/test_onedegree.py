"""Contract tests for the One Degree Resource Server API v1 emulator, over real HTTP on loopback.

Each test pins a behaviour from /work/shared/api/onedegree.md (section numbers in the docstrings).
The request signature is computed here from §2 of the notes, independently of the emulator.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import typing as t
from collections import Counter
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from crmphones_emulators.__main__ import build
from crmphones_emulators.clock import ManualClock
from crmphones_emulators.onedegree import OneDegreeApp
from crmphones_emulators.server import EmulatorServer

if t.TYPE_CHECKING:
    from collections.abc import Iterator

KEY = "onedegree-test-key"
SECRET = "onedegree-test-secret"
PHONE_FIELDS = {"id", "digits", "phone_type", "is_primary", "phoneable_id", "phoneable_type",
                "created_at", "updated_at"}


@pytest.fixture
def clock() -> ManualClock:
    """Simulated time for the rate windows: a test lets them pass at once."""
    return ManualClock()


@pytest.fixture
def app(clock: ManualClock) -> OneDegreeApp:
    return OneDegreeApp(records=120, parents=40, seed=5, api_key=KEY, api_secret=SECRET, clock=clock)


@pytest.fixture
def server(app: OneDegreeApp) -> Iterator[EmulatorServer]:
    with EmulatorServer(app) as running:
        yield running


@pytest.fixture
def api(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/v1", params={"api_key": KEY}, timeout=5) as client:
        yield client


def _now(shift: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=shift)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _signature(secret: str, body: bytes, date: str) -> str:
    """§2 current revision, written from the notes: hex HMAC chain, then SHA-256 of the hex text."""
    step_a = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    step_b = hmac.new(step_a.encode(), date.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(step_b.encode()).hexdigest()


def _write(api: httpx.Client, method: str, path: str, payload: dict[str, t.Any] | None = None, *,
           secret: str = SECRET, date: str | None = None, sign_body: bytes | None = None) -> httpx.Response:
    """Serialize once, sign those bytes, send the same bytes (§2)."""
    body = b"" if payload is None else json.dumps(payload).encode()
    date = date or _now()
    headers = {"1deg-Date": date,
               "1deg-Signature": _signature(secret, body if sign_body is None else sign_body, date),
               "Content-Type": "application/json; charset=utf-8"}
    return api.request(method, path, content=body, headers=headers)


def _owner_path(snap: dict[str, t.Any], kind: str, owner_id: int) -> str:
    if kind == "Organization":
        return f"/organizations/{owner_id}"
    if kind == "Location":
        location = next(x for x in snap["locations"] if x["id"] == owner_id)
        return f"/organizations/{location['organization_id']}/locations/{owner_id}"
    opportunity = next(x for x in snap["opportunities"] if x["id"] == owner_id)
    return f"/organizations/{opportunity['organization_id']}/opportunities/{owner_id}"


def _empty_location(snap: dict[str, t.Any]) -> dict[str, t.Any]:
    used = {p["phoneable_id"] for p in snap["phones"] if p["phoneable_type"] == "Location"}
    return next(x for x in snap["locations"] if x["id"] not in used)


def test_seed_is_deterministic_and_primary_rule() -> None:
    """Same args -> same snapshot; parents depend on (seed, parents) only; §7 is_primary default."""
    first = OneDegreeApp(records=90, parents=30, seed=9).snapshot()
    assert json.dumps(first) == json.dumps(OneDegreeApp(records=90, parents=30, seed=9).snapshot())
    empty = OneDegreeApp(records=0, parents=30, seed=9).snapshot()
    assert empty["phones"] == []
    for key in ("organizations", "locations", "opportunities"):
        assert empty[key] == first[key]
    assert first != OneDegreeApp(records=90, parents=30, seed=10).snapshot()
    assert [o["id"] for o in first["organizations"]] == list(range(1, 31))
    assert [p["id"] for p in first["phones"]] == list(range(1, 91))
    assert {p["phoneable_type"] for p in first["phones"]} == {"Organization", "Location", "Opportunity"}
    assert first["locations"] and first["opportunities"]
    owners = Counter((p["phoneable_type"], p["phoneable_id"]) for p in first["phones"])
    primaries = Counter((p["phoneable_type"], p["phoneable_id"]) for p in first["phones"] if p["is_primary"])
    assert all(primaries[owner] == 1 for owner, n in owners.items() if n == 1)
    assert max(primaries.values()) == 1
    assert len({o["slug"] for o in first["organizations"]}) == 30
    assert all(p["updated_at"].endswith(".000Z") and p["updated_at"] <= "2020" for p in first["phones"])
    assert len(OneDegreeApp(records=30).snapshot()["organizations"]) == 10


def test_api_key_required_everywhere(server: EmulatorServer) -> None:
    """§2/§9/§10.1: missing key 400, wrong key 401, both in the documented envelope."""
    with httpx.Client(base_url=f"{server.url}/v1", timeout=5) as raw:
        missing = raw.get("/organizations")
        assert missing.status_code == 400
        assert missing.json() == {"status": "error", "error": "Missing API key."}
        assert missing.headers["content-type"] == "application/json; charset=utf-8"
        wrong = raw.get("/organizations/1/phones", params={"api_key": "nope"})
        assert wrong.status_code == 401 and wrong.json()["status"] == "error"
        assert raw.get("/organizations/1", params={"api_key": KEY}).status_code == 200
        assert raw.post("/organizations/1/phones", json={"phone": {"digits": "1"}}).status_code == 400


def test_signature_accepted_and_rejected(api: httpx.Client, app: OneDegreeApp) -> None:
    """§2/§10.1: chained HMAC over the exact body, ±60 s date window, key in query or JSON body."""
    path = "/organizations/1/phones"
    payload = {"phone": {"digits": "415-928-5910", "phone_type": "main"}}
    accepted = _write(api, "POST", path, payload)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["status"] == "OK"
    rejected = [
        _write(api, "POST", path, payload, secret="wrong-secret"),
        _write(api, "POST", path, payload, sign_body=b'{"phone": {"digits": "0"}}'),  # tampered body
        _write(api, "POST", path, payload, date=_now(-120)),  # stale
        _write(api, "POST", path, payload, date=_now(+120)),  # future
        _write(api, "POST", path, payload, date=_now()[:-1] + ".000Z"),  # §2: no milliseconds
        api.post(path, json=payload),  # no headers at all
    ]
    assert [r.status_code for r in rejected] == [401] * len(rejected)
    assert all(r.json()["status"] == "error" for r in rejected)
    assert _write(api, "POST", path, payload, date=_now(-30)).status_code == 201  # inside the window
    # O5 style: api_key inside the signed JSON body, none in the query
    body_key = json.dumps({"api_key": KEY, "phone": {"digits": "555-1212"}}).encode()
    date = _now()
    headers = {"1deg-Date": date, "1deg-Signature": _signature(SECRET, body_key, date),
               "Content-Type": "application/json"}
    with httpx.Client(base_url=str(api.base_url), timeout=5) as raw:
        assert raw.post(path, content=body_key, headers=headers).status_code == 201
    assert sum(p["digits"] in ("415-928-5910", "555-1212") for p in app.snapshot()["phones"]) == 3
    # DELETE without a body signs the empty string
    phone_id = accepted.json()["phone"]["id"]
    assert _write(api, "DELETE", f"{path}/{phone_id}").json() == {"status": "OK"}


def test_default_secret_is_derived() -> None:
    """[A] without --api-secret the signing secret is `<api_key>-secret`."""
    app = OneDegreeApp(records=3, parents=2, api_key="k1")
    with EmulatorServer(app) as server, httpx.Client(base_url=f"{server.url}/v1", params={"api_key": "k1"},
                                                     timeout=5) as client:
        made = _write(client, "POST", "/organizations/2/phones", {"digits": "123"}, secret="k1-secret")
        assert made.status_code == 201, made.text


def test_polymorphic_phones_share_one_schema(api: httpx.Client, app: OneDegreeApp) -> None:
    """§3/§7/§10.2: organization, location and opportunity sub-collections, unpaginated, same schema."""
    snap = app.snapshot()
    for kind in ("Organization", "Location", "Opportunity"):
        owner_id = next(p["phoneable_id"] for p in snap["phones"] if p["phoneable_type"] == kind)
        listed = api.get(f"{_owner_path(snap, kind, owner_id)}/phones")
        assert listed.status_code == 200
        expected = [{k: v for k, v in p.items() if k != "organization_id"} for p in snap["phones"]
                    if p["phoneable_type"] == kind and p["phoneable_id"] == owner_id]
        assert listed.json() == expected
        assert all(set(p) == PHONE_FIELDS for p in listed.json())
        one = api.get(f"{_owner_path(snap, kind, owner_id)}/phones/{expected[0]['id']}")
        assert one.json() == expected[0]  # GET phone by id is [U]; served [A]
    busy = Counter(p["organization_id"] for p in snap["phones"]).most_common(1)[0][0]
    total = len(api.get(f"/organizations/{busy}/phones").json())
    assert total == sum(p["phoneable_type"] == "Organization" and p["phoneable_id"] == busy
                        for p in snap["phones"])


def test_embedded_phones_match_sub_collections_and_slugs(api: httpx.Client, app: OneDegreeApp) -> None:
    """§4/§10.3: org embeds phones + locations[].phones; opportunities embed phones, locations,
    organization; `:id` or slug lookup."""
    snap = app.snapshot()
    for org in snap["organizations"][:15]:
        detail = api.get(f"/organizations/{org['id']}").json()
        assert detail["phones"] == api.get(f"/organizations/{org['id']}/phones").json()
        assert {"properties", "tags", "emails", "comments"} <= set(detail)
        for location in detail["locations"]:
            path = f"/organizations/{org['id']}/locations/{location['id']}"
            assert location["phones"] == api.get(f"{path}/phones").json()
            assert "schedule" in location
        assert api.get(f"/organizations/{org['slug']}").json() == detail
        for item in api.get(f"/organizations/{org['slug']}/opportunities").json():
            assert item["organization"] == {"id": org["id"], "name": org["name"], "slug": org["slug"]}
            sub = f"/organizations/{org['id']}/opportunities/{item['id']}"
            assert item["phones"] == api.get(f"{sub}/phones").json()
            assert api.get(f"/opportunities/{item['slug']}").json() == item
            assert api.get(f"/opportunities/{item['id']}").json() == item
            for location in item["locations"]:  # older opportunity-location route, same phones
                older = f"{sub}/locations/{location['id']}/phones"
                assert api.get(older).status_code == 404, "not in the current docs (§3)"
                app.configure({"opportunity_location_routes": True})
                assert location["phones"] == api.get(older).json()
                app.configure({"opportunity_location_routes": False})


def test_pagination_to_the_end(api: httpx.Client, app: OneDegreeApp) -> None:
    """§5: page/per_page (default 10), bare array, last page shorter; order; titles_only; ids filter."""
    assert len(api.get("/organizations").json()) == 10
    seen, page = [], 1
    while True:
        chunk = api.get("/organizations", params={"page": page, "per_page": 7}).json()
        seen.extend(chunk)
        if len(chunk) < 7:
            break
        page += 1
    assert page == 6 and sorted(o["id"] for o in seen) == list(range(1, 41))
    names = [o["name"].lower() for o in seen]
    assert names == sorted(names)
    desc = api.get("/organizations", params={"per_page": 100, "order": "name_desc"}).json()
    assert [o["name"].lower() for o in desc] == sorted(names, reverse=True)
    assert api.get("/organizations", params={"page": 99}).json() == []
    light = api.get("/organizations", params={"titles_only": "true", "per_page": 3}).json()
    assert all(set(o) == {"id", "name", "slug"} for o in light)
    assert {o["id"] for o in api.get("/organizations", params={"ids": "3,17,2"}).json()} == {2, 3, 17}
    opportunities = []
    for number in range(1, 100):
        chunk = api.get("/opportunities", params={"page": number, "per_page": 25}).json()
        opportunities.extend(chunk)
        if len(chunk) < 25:
            break
    assert sorted(o["id"] for o in opportunities) == [o["id"] for o in app.snapshot()["opportunities"]]
    stamp = sorted(o["updated_at"] for o in app.snapshot()["organizations"])[29]
    since = api.get("/organizations", params={"per_page": 100, "query[attributes][updated_at][operator]":
                                              "greater_than", "query[attributes][updated_at][value]": stamp})
    assert len(since.json()) == 10  # §6 candidate incremental filter [I]
    assert api.get("/organizations", params={"per_page": "x"}).status_code == 400
    app.configure({"wrap_lists": True})
    assert len(api.get("/organizations", params={"per_page": 4}).json()["organizations"]) == 4


def test_create_update_delete_round_trip(api: httpx.Client, app: OneDegreeApp) -> None:
    """§7/§8: only phone is primary; later ones default false; a new primary clears siblings;
    updated_at strictly increases past every seeded stamp; owner and organization touched [A]."""
    snap = app.snapshot()
    location = _empty_location(snap)
    path = f"/organizations/{location['organization_id']}/locations/{location['id']}/phones"
    latest_seed = max(x["updated_at"] for key in ("organizations", "locations", "opportunities", "phones")
                      for x in snap[key])
    first = _write(api, "POST", path, {"phone": {"digits": "(415) 928-5910", "phone_type": "fax"}})
    assert first.status_code == 201, first.text
    one = first.json()["phone"]
    assert set(one) == PHONE_FIELDS and one["is_primary"] is True
    assert one["digits"] == "(415) 928-5910"  # §7 not normalized
    assert (one["phoneable_type"], one["phoneable_id"]) == ("Location", location["id"])
    assert one["id"] == len(snap["phones"]) + 1 and one["updated_at"] > latest_seed
    second = _write(api, "POST", path, {"digits": "555-1212"}).json()["phone"]  # bare attributes [A]
    assert second["is_primary"] is False and second["phone_type"] == ""
    updated = _write(api, "PUT", f"{path}/{second['id']}", {"phone": {"is_primary": True, "id": 1}})
    assert updated.status_code == 200 and updated.json()["status"] == "OK"
    after = updated.json()["phone"]
    assert after["id"] == second["id"] and after["digits"] == "555-1212" and after["is_primary"] is True
    assert after["updated_at"] > second["updated_at"] > one["updated_at"]
    listed = {p["id"]: p for p in api.get(path).json()}
    assert listed[one["id"]]["is_primary"] is False and listed[second["id"]] == after
    state = app.snapshot()
    assert state["locations"][location["id"] - 1]["updated_at"] == after["updated_at"]
    assert state["organizations"][location["organization_id"] - 1]["updated_at"] == after["updated_at"]
    assert _write(api, "DELETE", f"{path}/{second['id']}").json() == {"status": "OK"}
    assert [p["id"] for p in api.get(path).json()] == [one["id"]]
    assert _write(api, "PUT", f"{path}/{second['id']}", {"digits": "1"}).status_code == 404
    # The newest phone was deleted: its id is not given again.
    third = _write(api, "POST", path, {"phone": {"digits": "555-1313"}}).json()["phone"]
    assert third["id"] == second["id"] + 1


def test_validation_errors(api: httpx.Client, app: OneDegreeApp) -> None:
    """§9 [A]: no 422 documented -> 400 in the error envelope; status switchable to 422."""
    path = "/organizations/1/phones"
    for payload in ({"phone": {"phone_type": "main"}}, {"phone": {"digits": "  "}},
                    {"phone": {"digits": "1", "is_primary": "maybe"}}, {"phone": "x"}):
        response = _write(api, "POST", path, payload)
        assert response.status_code == 400, payload
        assert response.json()["status"] == "error"
    app.configure({"validation_status": 422})
    assert _write(api, "POST", path, {"phone": {}}).status_code == 422


def test_not_found(api: httpx.Client, app: OneDegreeApp) -> None:
    """§9: 404 for nothing at the endpoint, wrong parent chain, unknown phone or route."""
    snap = app.snapshot()
    location = snap["locations"][0]
    other_org = next(o["id"] for o in snap["organizations"] if o["id"] != location["organization_id"])
    for path in ("/organizations/999", "/organizations/no-such-slug/phones",
                 f"/organizations/{other_org}/locations/{location['id']}/phones",
                 "/organizations/1/phones/99999", "/opportunities/99999", "/nothing"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["status"] == "error"
    assert _write(api, "PUT", "/organizations/1/phones/99999", {"digits": "1"}).status_code == 404


def test_forbidden_for_non_owner(api: httpx.Client, app: OneDegreeApp) -> None:
    """§2/§10.5: only the owner manages phones -> 403 for other organizations' phones."""
    app.configure({"foreign_organizations": [2]})
    response = _write(api, "POST", "/organizations/2/phones", {"digits": "4155551212"})
    assert response.status_code == 403 and response.json()["status"] == "error"
    assert api.get("/organizations/2/phones").status_code == 200  # reads stay open
    assert _write(api, "POST", "/organizations/3/phones", {"digits": "4155551212"}).status_code == 201


def test_xml_suffix(api: httpx.Client) -> None:
    """§1/§10.4 [A]: `.xml` answered 406 in the JSON envelope; `.json` is the default format."""
    response = api.get("/organizations/1.xml")
    assert response.status_code == 406 and response.json()["status"] == "error"
    assert api.get("/organizations/1.json").json() == api.get("/organizations/1").json()


def test_rate_limit(api: httpx.Client, app: OneDegreeApp, clock: ManualClock) -> None:
    """§9 [A]: off by default; when set, 429 + Retry-After."""
    assert OneDegreeApp(records=1).limiter.limit == 100_000
    app.configure({"rate_limit": 2, "rate_window": 0.5})
    answers = [api.get("/organizations/1") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[2].json()["status"] == "error" and int(answers[2].headers["Retry-After"]) >= 1
    clock.advance(0.6)
    assert api.get("/organizations/1").status_code == 200


def test_state_equals_snapshot_and_cli(server: EmulatorServer, app: OneDegreeApp, api: httpx.Client) -> None:
    """Admin state is the snapshot; CLI options reach the app."""
    _write(api, "POST", "/organizations/1/phones", {"digits": "+1 415 555 0100"})
    with httpx.Client(base_url=server.url, timeout=5) as admin:
        assert admin.get("/_emulator/state").json() == app.snapshot()
        assert len(app.snapshot()["phones"]) == 121
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--parents", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    OneDegreeApp.options_type.add_arguments(parser)
    built = build(OneDegreeApp, parser.parse_args(["--api-key", "k", "--api-secret", "s", "--rate-limit", "7",
                                     "--foreign-organizations", "1,2"]))
    options = built.options
    assert (options.api_key, options.api_secret, built.limiter.limit, options.foreign_organizations) == (
        "k", "s", 7, {1, 2})
    assert len(built.snapshot()["phones"]) == 10 and len(built.snapshot()["organizations"]) == 3


@pytest.mark.parametrize("clears", [True, False])
def test_new_primary_clears_the_old_one_or_not(api: httpx.Client, app: OneDegreeApp,
                                               clears: bool) -> None:
    """§8 [A]: whether a new primary clears the old one is not documented: both, by option."""
    app.configure({"primary_clears_others": clears})
    location = _empty_location(app.snapshot())
    path = f"/organizations/{location['organization_id']}/locations/{location['id']}/phones"
    first = _write(api, "POST", path, {"phone": {"digits": "415-555-0101"}}).json()["phone"]
    second = _write(api, "POST", path, {"phone": {"digits": "415-555-0102",
                                                  "is_primary": True}}).json()["phone"]
    primaries = {p["id"] for p in api.get(path).json() if p["is_primary"]}
    assert primaries == ({second["id"]} if clears else {first["id"], second["id"]})
