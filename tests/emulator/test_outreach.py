"""Contract tests for the Outreach API v2 emulator, over real HTTP on loopback.

Each test pins a behaviour from /work/shared/api/outreach.md (section numbers in the docstrings).
"""

from __future__ import annotations

import argparse
import typing as t
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from crmphones_emulators.__main__ import build
from crmphones_emulators.clock import ManualClock
from crmphones_emulators.outreach import OutreachApp, parse_time
from crmphones_emulators.server import EmulatorServer

if t.TYPE_CHECKING:
    from collections.abc import Iterator

TOKEN = "outreach-test-token"
MEDIA = "application/vnd.api+json"


@pytest.fixture
def clock() -> ManualClock:
    """Simulated time for the rate windows: a test lets them pass at once."""
    return ManualClock()


@pytest.fixture
def app(clock: ManualClock) -> OutreachApp:
    return OutreachApp(records=300, parents=150, seed=5, token=TOKEN, clock=clock)


@pytest.fixture(scope="module")
def _running() -> Iterator[EmulatorServer]:
    """One loopback server for the module (a stop costs ~0.5 s); each test swaps in a fresh app."""
    with EmulatorServer(OutreachApp(records=0, token=TOKEN)) as running:
        yield running


@pytest.fixture
def server(_running: EmulatorServer, app: OutreachApp) -> EmulatorServer:
    _running.app = app
    _running.requests.clear()
    return _running


@pytest.fixture
def api(server: EmulatorServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": MEDIA, "Accept": MEDIA}
    with httpx.Client(base_url=f"{server.url}/api/v2", headers=headers, timeout=5) as client:
        yield client


def _all(api: httpx.Client, path: str = "/phoneNumbers", **params: t.Any) -> list[dict[str, t.Any]]:
    """Follow links.next to the end (§5)."""
    response = api.get(path, params={"page[size]": 1000, **params})
    rows = []
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        rows.extend(body["data"])
        if "next" not in body["links"]:
            return rows
        response = api.get(body["links"]["next"])


def _body(attributes: dict[str, t.Any], prospect: t.Any = 1, **data: t.Any) -> dict[str, t.Any]:
    relationships = {} if prospect is None else {"prospect": {"data": {"type": "prospect", "id": prospect}}}
    return {"data": {"type": "phoneNumber", "attributes": attributes, "relationships": relationships,
                     **data}}


def test_seed_is_deterministic() -> None:
    """Same args -> same snapshot; prospects depend on (seed, parents) only; ids 1..N."""
    first = OutreachApp(records=120, parents=60, seed=9).snapshot()
    assert first == OutreachApp(records=120, parents=60, seed=9).snapshot()
    assert first != OutreachApp(records=120, parents=60, seed=10).snapshot()
    empty = OutreachApp(records=0, parents=60, seed=9).snapshot()
    assert empty["phoneNumbers"] == []
    strip = [{k: v for k, v in p.items() if k != "relationships"} for p in first["prospects"]]
    assert strip == [{k: v for k, v in p.items() if k != "relationships"} for p in empty["prospects"]]
    assert [p["id"] for p in first["phoneNumbers"]] == list(range(1, 121))
    assert [p["id"] for p in first["prospects"]] == list(range(1, 61))
    assert len(OutreachApp(records=10).snapshot()["prospects"]) == 5


def test_seeded_shapes(app: OutreachApp) -> None:
    """§4: singular type, integer ids, every attribute present, ms UTC stamps in 2023-2024, mess."""
    phones = app.snapshot()["phoneNumbers"]
    attrs = {"countryCode", "createdAt", "extension", "number", "order", "phoneType", "rawNumber",
             "status", "statusChangedAt", "updatedAt"}
    for phone in phones:
        assert phone["type"] == "phoneNumber" and isinstance(phone["id"], int)
        assert set(phone["attributes"]) == attrs
        a = phone["attributes"]
        assert a["number"] == a["rawNumber"]
        assert a["phoneType"] in ("mobile", "work", "home", "voip", "other", None)
        assert a["createdAt"] <= a["updatedAt"] and a["createdAt"].endswith("Z")
        assert a["createdAt"][:4] in ("2023", "2024") and len(a["updatedAt"]) == 24
        assert 1 <= phone["relationships"]["prospect"]["data"]["id"] <= 150
    assert any(p["attributes"]["extension"] for p in phones)
    assert any(p["attributes"]["countryCode"] for p in phones)
    assert any(not p["attributes"]["number"].startswith("+") for p in phones)  # messy, as CRMs hold
    assert len({p["attributes"]["phoneType"] for p in phones}) == 6


def test_auth_and_media_type(server: EmulatorServer, api: httpx.Client) -> None:
    """§2/§7: Bearer required, 401 errors envelope; responses use the JSON:API media type."""
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
        response = httpx.get(f"{server.url}/api/v2/phoneNumbers", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == MEDIA
        assert response.json()["errors"][0]["id"] and "X-RateLimit-Limit" in response.headers
    ok = httpx.get(f"{server.url}/api/v2/phoneNumbers/1", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.headers["content-type"] == MEDIA  # GET without Content-Type


def test_415_when_body_is_not_json_api(api: httpx.Client) -> None:
    """§1/§9.1: a body without application/vnd.api+json is refused."""
    for content_type in ("application/json", None):
        headers = {"Content-Type": content_type} if content_type else {"Content-Type": ""}
        response = api.post("/phoneNumbers", content=b'{"data": {}}', headers=headers)
        assert response.status_code == 415
        assert response.json()["errors"][0]["id"] == "unsupportedMediaType"
    charset = api.post("/phoneNumbers", json=_body({"number": "+15145550100"}),
                       headers={"Content-Type": f"{MEDIA}; charset=utf-8"})
    assert charset.status_code == 201


def test_pagination_to_the_end(api: httpx.Client, app: OutreachApp) -> None:
    """§5/§9.6: cursor pages; links.first always; opaque page[after]; no next on the last page."""
    first = api.get("/phoneNumbers")
    body = first.json()
    assert len(body["data"]) == 50 and "meta" not in body  # default size, no count unless asked
    assert "first" in body["links"] and "page%5Bafter%5D=" in body["links"]["next"]
    cursor = dict(parse_qsl(urlsplit(body["links"]["next"]).query))["page[after]"]
    assert not cursor.isdigit()
    rows = _all(api, **{"page[size]": 37})
    assert [r["id"] for r in rows] == list(range(1, 301))
    assert rows == app.snapshot()["phoneNumbers"]
    last = api.get("/phoneNumbers", params={"page[size]": 1000}).json()
    assert len(last["data"]) == 300 and "next" not in last["links"]
    counted = api.get("/phoneNumbers", params={"count": "true", "page[size]": 5}).json()
    assert counted["meta"] == {"count": 300, "count_truncated": False}
    for bad in (0, 1001, "x"):
        assert api.get("/phoneNumbers", params={"page[size]": bad}).status_code == 400
    assert api.get("/phoneNumbers", params={"page[after]": "garbage"}).status_code == 400
    offset = api.get("/phoneNumbers", params={"page[limit]": 10, "page[offset]": 290}).json()
    assert [r["id"] for r in offset["data"]] == list(range(291, 301)) and "next" not in offset["links"]


def test_prev_link_walks_back(api: httpx.Client) -> None:
    """§5: links.prev (page[before]) returns the previous page."""
    page1 = api.get("/phoneNumbers", params={"page[size]": 20}).json()
    page2 = api.get(page1["links"]["next"]).json()
    assert "prev" not in page1["links"] and "prev" in page2["links"]
    assert api.get(page2["links"]["prev"]).json()["data"] == page1["data"]


def test_filters(api: httpx.Client, app: OutreachApp) -> None:
    """§6: exact, any-of, inclusive ranges with open ends, prospect id, null; 400 on others."""
    snap = app.snapshot()["phoneNumbers"]
    stamp = sorted(p["attributes"]["updatedAt"] for p in snap)[150]
    since = _all(api, **{"filter[updatedAt]": f"{stamp}..inf"})
    assert {r["id"] for r in since} == {p["id"] for p in snap if p["attributes"]["updatedAt"] >= stamp}
    assert stamp in {r["attributes"]["updatedAt"] for r in since}  # inclusive
    until = _all(api, **{"filter[updatedAt]": f"neginf..{stamp}"})
    assert len(until) + len(since) == 301
    low, high = "2024-01-01T00:00:00Z", "2024-06-30T23:59:59+00:00"
    window = _all(api, **{"filter[updatedAt]": f"{low}..{high}"})
    assert {r["id"] for r in window} == {
        p["id"] for p in snap if "2024-01-01" <= p["attributes"]["updatedAt"] < "2024-07-01"}
    prospects = _all(api, **{"filter[prospect][id]": "1,2,3"})
    assert prospects and {r["relationships"]["prospect"]["data"]["id"] for r in prospects} <= {1, 2, 3}
    assert len(prospects) == sum(p["relationships"]["prospect"]["data"]["id"] in (1, 2, 3) for p in snap)
    number = next(p["attributes"]["number"] for p in snap if "," not in p["attributes"]["number"])
    assert number in {r["attributes"]["number"] for r in _all(api, **{"filter[number]": number})}
    typed = _all(api, **{"filter[phoneType]": "mobile,work"})
    assert {r["id"] for r in typed} == {
        p["id"] for p in snap if p["attributes"]["phoneType"] in ("mobile", "work")}
    nulls = _all(api, **{"filter[phoneType]": "__null__"})
    assert nulls and all(r["attributes"]["phoneType"] is None for r in nulls)
    for name in ("extension", "countryCode", "createdAt", "bogus"):
        response = api.get("/phoneNumbers", params={f"filter[{name}]": "x"})
        assert response.status_code == 400, name
        assert response.json()["errors"][0]["source"]["parameter"] == f"filter[{name}]"
    assert api.get("/phoneNumbers", params={"filter[updatedAt]": "yesterday..inf"}).status_code == 400


def test_timestamp_formats() -> None:
    """Filter timestamps with or without ms, with `Z` or `+00:00`, are the same instant."""
    forms = ("2024-03-01T12:00:00.000Z", "2024-03-01T12:00:00Z", "2024-03-01T12:00:00+00:00",
             "2024-03-01T12:00:00.000+00:00", "2024-03-01T13:00:00+01:00", "2024-03-01T12:00:00")
    assert len({parse_time(form) for form in forms}) == 1
    assert parse_time("2024-03-01T12:00:00.5Z") == parse_time(forms[0]) + 500_000
    assert parse_time("nope") is None


def test_sorting(api: httpx.Client, app: OutreachApp) -> None:
    """§6: sort=updatedAt, -updatedAt, id, comma lists; unsortable -> 400."""
    snap = app.snapshot()["phoneNumbers"]
    ascending = _all(api, sort="updatedAt")
    stamps = sorted(p["attributes"]["updatedAt"] for p in snap)
    assert [r["attributes"]["updatedAt"] for r in ascending] == stamps
    descending = _all(api, sort="-updatedAt")
    assert [r["attributes"]["updatedAt"] for r in descending] == stamps[::-1]
    by_id = _all(api, sort="-id")
    assert [r["id"] for r in by_id] == list(range(300, 0, -1))
    combo = _all(api, sort="phoneType,-order")
    keys = [(r["attributes"]["phoneType"] or "", -r["attributes"]["order"]) for r in combo]
    assert keys == sorted(keys) and len(combo) == 300
    assert api.get("/phoneNumbers", params={"sort": "extension"}).status_code == 400


def test_incremental_read_sees_writes(api: httpx.Client, app: OutreachApp) -> None:
    """§6: updatedAt..inf + sort=updatedAt; writes get a strictly increasing clock after the seed."""
    snap = app.snapshot()["phoneNumbers"]
    bookmark = max(p["attributes"]["updatedAt"] for p in snap)
    assert [r["attributes"]["updatedAt"] for r in _all(api, **{"filter[updatedAt]": f"{bookmark}..inf"})
            ] == [bookmark]
    stamps = []
    for phone_id in (5, 6, 5):
        patched = api.patch(f"/phoneNumbers/{phone_id}", json={
            "data": {"type": "phoneNumber", "id": phone_id, "attributes": {"extension": "42"}}})
        stamps.append(patched.json()["data"]["attributes"]["updatedAt"])
    assert stamps == sorted(stamps) and len(set(stamps)) == 3 and stamps[0] > bookmark
    since = _all(api, **{"filter[updatedAt]": f"{stamps[0]}..inf", "sort": "updatedAt"})
    assert [r["id"] for r in since] == [6, 5]


def test_get_by_id_and_404(api: httpx.Client, app: OutreachApp) -> None:
    """§3/§7: GET one; unknown id -> 404 resourceNotFound."""
    one = api.get("/phoneNumbers/7")
    assert one.status_code == 200 and one.json() == {"data": app.snapshot()["phoneNumbers"][6]}
    missing = api.get("/phoneNumbers/99999")
    assert missing.status_code == 404
    error = missing.json()["errors"][0]
    assert error["id"] == "resourceNotFound" and "99999" in error["detail"]
    assert api.get("/prospects/999").json()["errors"][0]["id"] == "resourceNotFound"
    sparse = api.get("/phoneNumbers/7", params={"fields[phoneNumber]": "number,updatedAt"}).json()["data"]
    assert set(sparse["attributes"]) == {"number", "updatedAt"}
    assert api.get("/phoneNumbers/7", params={"fields[phoneNumber]": "nope"}).status_code == 400


def test_create(api: httpx.Client, app: OutreachApp) -> None:
    """§4: POST 201; read-only attributes ignored; rawNumber/order defaults; phone shows on prospect."""
    created = api.post("/phoneNumbers", json=_body(
        {"number": "+15145550100", "phoneType": "mobile", "updatedAt": "1999-01-01T00:00:00.000Z"},
        prospect=3))
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == MEDIA
    data = created.json()["data"]
    a = data["attributes"]
    assert data["id"] == 301 and a["number"] == a["rawNumber"] == "+15145550100"
    assert a["phoneType"] == "mobile" and a["order"] == len(
        [p for p in app.snapshot()["phoneNumbers"] if p["relationships"]["prospect"]["data"]["id"] == 3]) - 1
    assert a["createdAt"] == a["updatedAt"] > "2025" and a["extension"] is None
    assert data["relationships"]["prospect"]["data"] == {"type": "prospect", "id": 3}
    assert api.get("/phoneNumbers/301").json()["data"] == data
    prospect = api.get("/prospects/3").json()["data"]
    assert {"type": "phoneNumber", "id": 301} in prospect["relationships"]["phoneNumbers"]["data"]
    assert api.post("/phoneNumbers", json=_body({"number": "1"}, prospect="4")).status_code == 201


def test_create_validation(api: httpx.Client) -> None:
    """§7: 422 validationError + source.pointer; unknown attribute -> 400 permittedParams."""
    cases = [
        (_body({"phoneType": "work"}), 422, "/data/attributes/number"),
        (_body({"number": ""}), 422, "/data/attributes/number"),
        (_body({"number": "+15145550100"}, prospect=None), 422, "/data/relationships/prospect"),
        (_body({"number": "+15145550100"}, prospect=9999), 422, "/data/relationships/prospect"),
        (_body({"number": "+15145550100", "order": "first"}), 422, "/data/attributes/order"),
        (_body({"number": "+15145550100", "colour": "red"}), 400, "/data/attributes/colour"),
        ({"data": {"type": "prospect", "attributes": {"number": "1"}}}, 422, "/data/type"),
    ]
    for body, status, pointer in cases:
        response = api.post("/phoneNumbers", json=body)
        assert response.status_code == status, (body, response.text)
        error = response.json()["errors"][0]
        assert error["source"]["pointer"] == pointer
        assert error["id"] == ("validationError" if status == 422 else "permittedParams.unknownAttribute")
    assert api.post("/phoneNumbers", content=b"{not json").status_code == 400


def test_patch(api: httpx.Client, app: OutreachApp) -> None:
    """§4/§9.4: only sent attributes change; type/id must match the URL; bumps updatedAt."""
    before = app.snapshot()["phoneNumbers"][9]
    patched = api.patch("/phoneNumbers/10", json={"data": {
        "type": "phoneNumber", "id": "10", "attributes": {"number": "+15145550199", "createdAt": "x"}}})
    assert patched.status_code == 200, patched.text
    after = patched.json()["data"]
    changed = {k for k in after["attributes"] if after["attributes"][k] != before["attributes"][k]}
    assert changed == {"number", "updatedAt"} and after["attributes"]["updatedAt"] > before["attributes"][
        "updatedAt"]
    assert after["relationships"] == before["relationships"]
    moved = api.patch("/phoneNumbers/10", json=_body({}, prospect=150, id=10))
    assert moved.json()["data"]["relationships"]["prospect"]["data"]["id"] == 150
    wrong_id = api.patch("/phoneNumbers/10", json={"data": {"type": "phoneNumber", "id": 11}})
    assert wrong_id.status_code == 422 and wrong_id.json()["errors"][0]["source"]["pointer"] == "/data/id"
    no_id = api.patch("/phoneNumbers/10", json={"data": {"type": "phoneNumber", "attributes": {}}})
    assert no_id.status_code == 422
    wrong_type = api.patch("/phoneNumbers/10", json={"data": {"type": "prospect", "id": 10}})
    assert wrong_type.status_code == 422
    assert api.patch("/phoneNumbers/99999", json=_body({}, id=99999)).status_code == 404
    assert app.snapshot()["phoneNumbers"][9]["attributes"]["number"] == "+15145550199"


def test_delete(api: httpx.Client, app: OutreachApp) -> None:
    """§9.5: 204 with an empty body, then GET -> 404; gone from the prospect too."""
    prospect_id = app.snapshot()["phoneNumbers"][11]["relationships"]["prospect"]["data"]["id"]
    deleted = api.delete("/phoneNumbers/12")
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.get("/phoneNumbers/12").status_code == 404
    assert api.delete("/phoneNumbers/12").status_code == 404
    assert len(app.snapshot()["phoneNumbers"]) == 299
    links = api.get(f"/prospects/{prospect_id}").json()["data"]["relationships"]["phoneNumbers"]["data"]
    assert {"type": "phoneNumber", "id": 12} not in links


def test_prospects(api: httpx.Client, app: OutreachApp) -> None:
    """§3: GET /prospects and /prospects/{id}; to-many phoneNumbers relationship."""
    rows = _all(api, "/prospects", **{"page[size]": 40})
    assert rows == app.snapshot()["prospects"] and [r["id"] for r in rows] == list(range(1, 151))
    one = api.get("/prospects/1").json()["data"]
    assert one["type"] == "prospect"
    assert set(one["attributes"]) == {"firstName", "lastName", "createdAt", "updatedAt"}
    phones = one["relationships"]["phoneNumbers"]
    via_filter = _all(api, **{"filter[prospect][id]": 1})
    assert [p["id"] for p in phones["data"]] == [p["id"] for p in via_filter]
    assert "filter%5Bprospect%5D%5Bid%5D=1" in phones["links"]["related"]
    assert api.get("/prospects", params={"filter[phoneNumbers]": "1"}).status_code == 400


def test_rate_limit_headers_and_429(api: httpx.Client, app: OutreachApp, clock: ManualClock) -> None:
    """§8: X-RateLimit-* on every response (Reset = epoch seconds); 429 + Retry-After when exhausted."""
    app.configure({"rate_limit": 3, "rate_window": 0.6, "unknown": 1})
    answers = [api.get("/phoneNumbers/1") for _ in range(3)] + [api.get("/phoneNumbers/999999"),
                                                                 api.get("/phoneNumbers/1")]
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "3" for r in answers)
    reset = int(answers[0].headers["X-RateLimit-Reset"])
    assert clock.time() <= reset <= clock.time() + 1
    assert answers[3].json()["errors"][0]["id"] == "rateLimitExceeded"
    assert int(answers[3].headers["Retry-After"]) >= 1
    clock.advance(0.7)
    assert api.get("/phoneNumbers/1").status_code == 200


def test_state_route_matches_snapshot(server: EmulatorServer, api: httpx.Client, app: OutreachApp) -> None:
    """The admin state equals snapshot(), also after a write."""
    api.post("/phoneNumbers", json=_body({"number": "+15145550100"}))
    with httpx.Client(base_url=server.url, timeout=5) as admin:
        state = admin.get("/_emulator/state").json()
        assert state == app.snapshot() and len(state["phoneNumbers"]) == 301
        assert admin.post("/_emulator/config", json={"rate_limit": 2}).status_code == 200
    assert api.get("/phoneNumbers/1").status_code == 200
    assert api.get("/phoneNumbers/1").status_code == 429


def test_build_from_cli_args() -> None:
    """add_arguments/build wire the CLI options into the app."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--parents", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    OutreachApp.options_type.add_arguments(parser)
    defaults = build(OutreachApp, parser.parse_args([]))
    assert defaults.options.token == "emulator-token" and defaults.limiter.limit == 10_000
    assert defaults.limiter.window == 3600
    built = build(OutreachApp, parser.parse_args(["--token", "k", "--rate-limit", "7",
                                                  "--rate-window", "60"]))
    assert built.options.token == "k" and built.limiter.limit == 7 and built.limiter.window == 60
    assert len(built.snapshot()["phoneNumbers"]) == 10 and len(built.snapshot()["prospects"]) == 5


# ---- OAuth token endpoint (§2 and its 2026-12-07 update) ----------------------------------------

def _mint(server: EmulatorServer, refresh_token: str, **form: str) -> httpx.Response:
    fields = {"client_id": "emulator-client", "client_secret": "emulator-client-secret",
              "grant_type": "refresh_token", "refresh_token": refresh_token, **form}
    return httpx.post(f"{server.url}/oauth/token", data=fields, timeout=5)


def _phones(server: EmulatorServer, token: str) -> int:
    return httpx.get(f"{server.url}/api/v2/phoneNumbers/1", timeout=5,
                     headers={"Authorization": f"Bearer {token}"}).status_code


def test_token_endpoint_mints_expiring_tokens_and_rotates(server: EmulatorServer,
                                                          app: OutreachApp,
                                                          clock: ManualClock) -> None:
    """A mint answers the documented fields; the access token works until `expires_in` has
    passed; the used refresh token is refused (400 invalid_grant), the new one works."""
    answer = _mint(server, "emulator-refresh-token", redirect_uri="https://example.com/cb")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope",
                         "created_at"}
    assert body["expires_in"] == 7200 and body["created_at"] == int(clock.time())
    assert body["refresh_token"] != "emulator-refresh-token"
    assert _phones(server, body["access_token"]) == 200
    clock.advance(7199)
    assert _phones(server, body["access_token"]) == 200
    clock.advance(1)
    assert _phones(server, body["access_token"]) == 401
    reused = _mint(server, "emulator-refresh-token")
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    assert _mint(server, body["refresh_token"]).status_code == 200
    # The form holds credentials: the request log keeps the line and status, not the body.
    assert [(r.path, r.status, r.body) for r in server.requests if r.path == "/oauth/token"] == [
        ("/oauth/token", 200, None), ("/oauth/token", 400, None), ("/oauth/token", 200, None)]


def test_one_mint_a_minute(server: EmulatorServer, clock: ManualClock) -> None:
    """A second mint within the window answers 429 with the seconds left; then it works."""
    first = _mint(server, "emulator-refresh-token").json()
    clock.advance(45)
    early = _mint(server, first["refresh_token"])
    assert (early.status_code, early.headers["Retry-After"]) == (429, "15")
    clock.advance(15)
    assert _mint(server, first["refresh_token"]).status_code == 200


@pytest.mark.parametrize(("rotation", "old_works", "answered"), [
    ("rotate", False, "new"), ("rotate-keep-old", True, "new"), ("same", True, "sent"),
    ("omit", True, None)])
def test_rotation_variants(server: EmulatorServer, app: OutreachApp, clock: ManualClock,
                           rotation: str, old_works: bool, answered: str | None) -> None:
    """What a mint answers about the refresh token sent, and whether that one still works."""
    app.configure({"rotation": rotation})
    body = _mint(server, "emulator-refresh-token").json()
    got = body.get("refresh_token")
    assert {"new": got not in (None, "emulator-refresh-token"),
            "sent": got == "emulator-refresh-token", None: got is None}[answered]
    clock.advance(60)
    assert (_mint(server, "emulator-refresh-token").status_code == 200) is old_works


def test_token_refusals_and_fixed_token_lifetime(server: EmulatorServer, app: OutreachApp,
                                                 clock: ManualClock) -> None:
    """A wrong client is 401 invalid_client; a refresh token 14 days old is invalid_grant; a
    mint may revoke the tokens before it; the fixed token can be given a lifetime."""
    wrong = _mint(server, "emulator-refresh-token", client_secret="nope")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    app.configure({"revoke_on_refresh": True, "rotation": "same", "fixed_token_lifetime": 30})
    first = _mint(server, "emulator-refresh-token").json()["access_token"]
    clock.advance(60)
    assert _phones(server, first) == 200
    assert _mint(server, "emulator-refresh-token").status_code == 200
    assert _phones(server, first) == 401  # revoked by the mint after it
    assert _phones(server, TOKEN) == 401  # the fixed token's 30 s have passed
    clock.advance(14 * 86_400)
    stale = _mint(server, "emulator-refresh-token")
    assert (stale.status_code, stale.json()["error"]) == (400, "invalid_grant")
