"""Contract tests for the Activix CRM API v2 emulator, over real HTTP on loopback.

Each test pins a behaviour from /work/shared/api/activix.md (section numbers in the docstrings).
"""

from __future__ import annotations

import json
import typing as t
from collections import Counter
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from crmphones_emulators.__main__ import build
from crmphones_emulators.activix import ActivixApp
from crmphones_emulators.clock import ManualClock
from crmphones_emulators.server import EmulatorServer

if t.TYPE_CHECKING:
    from collections.abc import Iterator

TOKEN = "activix-test-key"


@pytest.fixture
def clock() -> ManualClock:
    """Simulated time for the rate windows: a test lets them pass at once."""
    return ManualClock()


@pytest.fixture
def app(clock: ManualClock) -> ActivixApp:
    return ActivixApp(records=300, parents=150, seed=3, token=TOKEN, rate_limit=10_000, clock=clock)


@pytest.fixture
def server(app: ActivixApp) -> Iterator[EmulatorServer]:
    with EmulatorServer(app) as running:
        yield running


@pytest.fixture
def api(server: EmulatorServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    with httpx.Client(base_url=f"{server.url}/v2", headers=headers, timeout=5) as client:
        yield client


def _all_leads(api: httpx.Client, **params: t.Any) -> list[dict[str, t.Any]]:
    """Follow links.next to the end (§4)."""
    response = api.get("/leads", params={"per_page": 100, **params})
    leads = []
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        leads.extend(body["data"])
        if body["links"]["next"] is None:
            assert body["meta"]["current_page"] == body["meta"]["last_page"]
            return leads
        response = api.get(body["links"]["next"])


def test_seed_is_deterministic_and_respects_the_type_rule() -> None:
    """Same seed -> same snapshot; leads depend on (seed, parents) only; one phone per type per lead."""
    first = ActivixApp(records=120, parents=60, seed=9).snapshot()
    assert json.dumps(first) == json.dumps(ActivixApp(records=120, parents=60, seed=9).snapshot())
    assert first["leads"] == ActivixApp(records=0, parents=60, seed=9).snapshot()["leads"]
    assert first != ActivixApp(records=120, parents=60, seed=10).snapshot()
    phones = first["lead_phones"]
    assert len(phones) == 120
    assert [p["id"] for p in phones] == list(range(1, 121))
    assert [lead["id"] for lead in first["leads"]] == list(range(1, 61))
    assert max(Counter((p["lead_id"], p["type"]) for p in phones).values()) == 1
    assert {p["type"] for p in phones} <= {"home", "work", "mobile"}
    assert any(p["extension"] is not None for p in phones)
    assert any(not p["valid"] for p in phones), "seeded numbers are messy"
    for lead in first["leads"]:
        assert "2023-01-01" <= lead["updated_at"][:10] <= "2024-12-31"
    with pytest.raises(ValueError, match="do not fit"):
        ActivixApp(records=10, parents=3)


def test_auth_and_both_host_forms(server: EmulatorServer) -> None:
    """§1 both path forms, §2/§7 401 `Unauthenticated.`."""
    with httpx.Client(base_url=server.url, timeout=5) as raw:
        for prefix in ("/v2", "/api/v2"):
            assert raw.get(f"{prefix}/leads").json() == {"message": "Unauthenticated."}
            denied = raw.get(f"{prefix}/leads", headers={"Authorization": "Bearer wrong"})
            assert denied.status_code == 401
            ok = raw.get(f"{prefix}/leads/1", headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200
            assert ok.json()["data"]["id"] == 1
        assert raw.get("/v3/leads", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_include_gating_and_spellings(api: httpx.Client, app: ActivixApp) -> None:
    """§3: phones embedded only when asked, `include[]=phones` and `include[0]=leadPhones` alike."""
    plain = api.get("/leads", params={"per_page": 5}).json()["data"]
    assert all("phones" not in lead for lead in plain)
    for key, value in (("include[]", "phones"), ("include[0]", "leadPhones")):
        leads = api.get("/leads", params={key: value, "per_page": 5}).json()["data"]
        assert all(isinstance(lead["phones"], list) for lead in leads)
    snap = app.snapshot()["lead_phones"]
    lead_id = snap[0]["lead_id"]
    one = api.get(f"/leads/{lead_id}", params={"include[]": "phones"})
    expected = [p for p in snap if p["lead_id"] == lead_id]
    assert one.json()["data"]["phones"] == expected
    assert set(expected[0]) == {"id", "lead_id", "number", "type", "extension", "valid",
                                "created_at", "updated_at"}
    assert api.get("/leads/99999").json() == {"message": "No query results for model Lead."}


def test_pagination_to_the_end(api: httpx.Client, app: ActivixApp, server: EmulatorServer) -> None:
    """§4: links/meta envelope, absolute URLs keeping the query, newest created first, 1..100."""
    leads = _all_leads(api, **{"include[]": "phones"})
    assert sorted(lead["id"] for lead in leads) == list(range(1, 151))
    assert [lead["created_at"] for lead in leads] == sorted((x["created_at"] for x in leads), reverse=True)
    assert sum(len(lead["phones"]) for lead in leads) == 300
    body = api.get("/leads", params={"include[]": "phones", "per_page": 40, "page": 2}).json()
    assert body["meta"] == {"current_page": 2, "from": 41, "last_page": 4,
                            "path": f"{server.url}/v2/leads",
                            "per_page": 40, "to": 80, "total": 150}
    nxt = urlsplit(body["links"]["next"])
    assert dict(parse_qsl(nxt.query)) == {"include[0]": "phones", "per_page": "40", "page": "3"}
    assert body["links"]["prev"].endswith("page=1") and body["links"]["first"].endswith("page=1")
    beyond = api.get("/leads", params={"page": 9, "per_page": 40}).json()
    assert beyond["data"] == [] and beyond["meta"]["from"] is None and beyond["links"]["next"] is None
    for bad in (0, 101, "x"):
        response = api.get("/leads", params={"per_page": bad})
        assert response.status_code == 422
        assert "per_page" in response.json()["errors"]
    app.configure({"per_page_as_string": True})
    assert api.get("/leads", params={"per_page": 25}).json()["meta"]["per_page"] == "25"


def test_filters(api: httpx.Client, app: ActivixApp) -> None:
    """§5: day-precision dates with operators, both field spellings, `%` suffix, division OR."""
    snap = app.snapshot()["leads"]
    day = snap[10]["updated_at"][:10]
    same_day = {lead["id"] for lead in _all_leads(api, **{"filter[updated_at]": day})}
    assert same_day == {x["id"] for x in snap if x["updated_at"][:10] == day}
    assert snap[10]["id"] in same_day
    since = {lead["id"] for lead in _all_leads(api, **{"filter[updated][gte]": day})}
    assert since == {x["id"] for x in snap if x["updated_at"][:10] >= day}
    # a datetime is truncated to its day: the bookmark day is re-read in full (§5 [A])
    stamp = f"{day}T23:59:59+00:00"
    assert {lead["id"] for lead in _all_leads(api, **{"filter[updated_at][gte]": stamp})} == since
    window = {"filter[created_at][gt]": "2023-06-30", "filter[created_at][lte]": "2024-01-31"}
    assert {lead["id"] for lead in _all_leads(api, **window)} == {
        x["id"] for x in snap if "2023-06-30" < x["created_at"][:10] <= "2024-01-31"}
    first = snap[0]["first_name"]
    named = _all_leads(api, **{"filter[name]": f"{first[:2]}%"})
    assert named and all(
        any((s or "").lower().startswith(first[:2].lower())
            for s in (x["first_name"], x["last_name"], x["second_contact"])) for x in named)
    both = _all_leads(api, **{"filter[division]": "new,none"})
    assert {x["id"] for x in both} == {x["id"] for x in snap if x["division"] in ("new", None)}
    assert api.get("/leads", params={"filter[updated_at][gte]": "yesterday"}).status_code == 422
    assert api.get("/leads", params={"filter[name][gte]": "a"}).status_code == 422


def test_create_update_and_errors(api: httpx.Client, app: ActivixApp) -> None:
    """§6/§7: 201 `{data}`, duplicates 403, partial PUT, 404/405/422 bodies, lead touched."""
    lead_id = next(x["id"] for x in app.snapshot()["leads"]
                   if not any(p["lead_id"] == x["id"] for p in app.snapshot()["lead_phones"]))
    created = api.post("/lead-phones", json={"lead_id": lead_id, "number": "+15141234455",
                                             "type": "home", "extension": 555, "valid": False})
    assert created.status_code == 201, created.text
    phone = created.json()["data"]
    assert phone["lead_id"] == lead_id and phone["valid"] is True and phone["extension"] == 555
    assert phone["created_at"] == phone["updated_at"]
    assert api.post("/lead-phones", json={"lead_id": lead_id, "number": "+15141234455", "type": "work"}
                    ).json() == {"message": "Duplicate phone."}
    same_type = api.post("/lead-phones", json={"lead_id": lead_id, "number": "+15145550000", "type": "home"})
    assert same_type.status_code == 403
    missing = api.post("/lead-phones", json={"number": "514 555", "type": "fax"})
    assert missing.status_code == 422
    assert missing.json() == {"message": "The given data was invalid.", "errors": {
        "lead_id": ["The field lead_id is required."], "number": ["The number format is invalid."],
        "type": ["The selected type is invalid."]}}
    updated = api.put(f"/lead-phones/{phone['id']}", json={"number": "+15141234459", "id": 1})
    assert updated.status_code == 200
    after = updated.json()["data"]
    assert after["id"] == phone["id"] and after["type"] == "home" and after["extension"] == 555
    assert after["number"] == "+15141234459" and after["updated_at"] > phone["updated_at"]
    assert app.snapshot()["leads"][lead_id - 1]["updated_at"] == after["updated_at"]
    assert api.put("/lead-phones/999999", json={}).json() == {
        "message": "No query results for model LeadPhone."}
    assert api.put(f"/lead-phones/{phone['id']}", content=b"{not json").status_code == 400
    for method in ("GET", "DELETE", "PATCH"):
        response = api.request(method, f"/lead-phones/{phone['id']}")
        assert response.status_code == 405
        assert response.json() == {"message": "Method not allowed."}
    assert next(p for p in app.snapshot()["lead_phones"] if p["id"] == phone["id"])["number"] == (
        "+15141234459")


def test_older_schema_flags(api: httpx.Client, app: ActivixApp) -> None:
    """§6: bare objects and the boolean `mobile` / nested `lead` schema (seed 001)."""
    app.configure({"bare_objects": True, "mobile_flag": True})
    phones = app.snapshot()["lead_phones"]
    lead_id = next(x["id"] for x in app.snapshot()["leads"]
                   if not any(p["lead_id"] == x["id"] and p["type"] == "mobile" for p in phones))
    created = api.post("/lead-phones", json={"lead_id": lead_id, "number": "+33142685300",
                                             "extension": None, "mobile": True})
    assert created.status_code == 201, created.text
    phone = created.json()
    assert "data" not in phone and "type" not in phone
    assert phone["lead"] == {"id": lead_id} and phone["mobile"] is True
    assert app.snapshot()["lead_phones"][-1]["type"] == "mobile"
    listed = api.get(f"/leads/{lead_id}", params={"include[]": "phones"}).json()
    assert "data" not in listed and all("mobile" in p for p in listed["phones"])


def test_lead_write_appends_phones(api: httpx.Client, app: ActivixApp) -> None:
    """§3: POST /leads takes nested phones; PUT /leads/:id only appends them."""
    made = api.post("/leads", json={"first_name": "Zoé", "last_name": "Tremblay",
                                    "phones": [{"number": "+15145550101", "type": "mobile"}]})
    assert made.status_code == 201, made.text
    lead = made.json()["data"]
    assert lead["id"] == 151 and [p["number"] for p in lead["phones"]] == ["+15145550101"]
    more = api.put(f"/leads/{lead['id']}", json={"phones": [{"number": "+15145550102", "type": "work"}]})
    assert [p["type"] for p in more.json()["data"]["phones"]] == ["mobile", "work"]
    dup = api.put(f"/leads/{lead['id']}", json={"phones": [{"number": "+15145550103", "type": "work"}]})
    assert dup.status_code == 403


def test_rate_limit(api: httpx.Client, app: ActivixApp, clock: ManualClock) -> None:
    """§8: N per rolling window, then 429 with Retry-After; throttle headers on every answer."""
    app.configure({"rate_limit": 3, "rate_window": 0.6})
    answers = [api.get("/leads/1") for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    assert answers[2].headers["X-RateLimit-Remaining"] == "0"
    assert answers[3].json() == {"message": "Too Many Attempts."}
    assert int(answers[3].headers["Retry-After"]) >= 1
    clock.advance(0.7)
    assert api.get("/leads/1").status_code == 200


def test_rate_limit_default_and_cli(server: EmulatorServer) -> None:
    """Default 200/minute; CLI options reach the app."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--parents", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    ActivixApp.options_type.add_arguments(parser)
    built = build(ActivixApp, parser.parse_args(["--token", "k", "--rate-limit", "7", "--mobile-flag"]))
    assert built.limiter.limit == 7 and built.options.token == "k" and built.options.mobile_flag
    assert len(built.snapshot()["lead_phones"]) == 10 and len(built.snapshot()["leads"]) == 5
    assert ActivixApp(records=2).limiter.limit == 200


def test_injected_faults(server: EmulatorServer, api: httpx.Client) -> None:
    """Faults are applied by the server before the app; admin routes stay reachable."""
    with httpx.Client(base_url=server.url, timeout=5) as admin:
        assert admin.post("/_emulator/config", json={"error_rate": 1.0}).status_code == 200
        assert api.get("/leads/1").status_code in (500, 502)
        assert admin.post("/_emulator/config", json={"error_rate": 0.0}).status_code == 200
        assert api.get("/leads/1").status_code == 200
        state = admin.get("/_emulator/state").json()
        assert len(state["lead_phones"]) == 300


def test_put_may_require_number_and_type(api: httpx.Client, app: ActivixApp) -> None:
    """Update 2026-12-07: both doc revisions list `number` and `type` as required on PUT while
    the prose keeps omitted fields; the emulator offers both."""
    phone = app.snapshot()["lead_phones"][0]
    partial = {"extension": 34}
    assert api.put(f"/lead-phones/{phone['id']}", json=partial).status_code == 200
    app.configure({"put_requires_number_and_type": True})
    refused = api.put(f"/lead-phones/{phone['id']}", json=partial)
    assert refused.status_code == 422
    assert set(refused.json()["errors"]) == {"number", "type"}
    whole = {"number": "+15145550188", "type": phone["type"], "extension": 35}
    answered = api.put(f"/lead-phones/{phone['id']}", json=whole)
    assert answered.status_code == 200, answered.text
    assert answered.json()["data"]["extension"] == 35
