"""Contract tests for the Ticket Evolution API v9 emulator, over real HTTP on loopback.

Each test pins a behaviour from /work/shared/api/ticketevolution.md (section numbers in the docstrings).
Signatures are computed here from the notes (§2), independently of the emulator's code.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import typing as t
from urllib.parse import urlencode

import httpx
import pytest

from crmphones_emulators.__main__ import build
from crmphones_emulators.clock import ManualClock
from crmphones_emulators.server import EmulatorServer
from crmphones_emulators.ticketevolution import TicketEvolutionApp, sign, string_to_sign

if t.TYPE_CHECKING:
    from collections.abc import Generator, Iterator

TOKEN = "0123456789abcdef0123456789abcdef"  # §2: 32 alphanumerics
SECRET = "s3cr3t/with+symbols=and-40-chars-long.."  # §2: 40 non-space characters


def _hmac64(secret: str, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


class Signer(httpx.Auth):
    """§2 as the vendor PHP client does it: sort the query, rewrite the URL in that order, and sign
    `METHOD host/path?tail` (host without port; tail = sorted query, or the raw body for writes)."""

    requires_request_body = True

    def __init__(self, token: str = TOKEN, secret: str = SECRET, keep_port: bool = False,
                 unsorted: bool = False, sign_query_for_writes: bool = False) -> None:
        self.token, self.secret, self.keep_port = token, secret, keep_port
        self.unsorted, self.sign_query_for_writes = unsorted, sign_query_for_writes

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        params = list(request.url.params.multi_items())
        if not self.unsorted:
            params.sort(key=lambda kv: kv[0].encode())
        query = urlencode(params)
        request.url = request.url.copy_with(query=query.encode() or None)
        host = request.url.host + (f":{request.url.port}" if self.keep_port else "")
        body = request.content
        write = request.method in ("POST", "PUT", "PATCH") and body and not self.sign_query_for_writes
        tail = body if write else query.encode()
        message = f"{request.method} {host}{request.url.path}?".encode() + tail
        request.headers["X-Token"] = self.token
        request.headers["X-Signature"] = _hmac64(self.secret, message)
        yield request


@pytest.fixture
def clock() -> ManualClock:
    """Simulated time for the rate windows: a test lets them pass at once."""
    return ManualClock()


@pytest.fixture
def app(clock: ManualClock) -> TicketEvolutionApp:
    return TicketEvolutionApp(records=300, parents=140, seed=4, token=TOKEN, secret=SECRET,
                              rate_limit=10_000, clock=clock)


@pytest.fixture
def server(app: TicketEvolutionApp) -> Iterator[EmulatorServer]:
    with EmulatorServer(app) as running:
        yield running


@pytest.fixture
def api(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/v9", auth=Signer(), timeout=5,
                      headers={"Accept": "application/json"}) as client:
        yield client


def _all_clients(api: httpx.Client, **params: t.Any) -> list[dict[str, t.Any]]:
    """Page until current_page * per_page >= total_entries (§4)."""
    clients: list[dict[str, t.Any]] = []
    page = 1
    while True:
        response = api.get("/clients", params={**params, "page": page, "per_page": 100})
        assert response.status_code == 200, response.text
        body = response.json()
        clients.extend(body["clients"])
        if body["current_page"] * body["per_page"] >= body["total_entries"]:
            assert len(clients) == body["total_entries"]
            return clients
        page += 1


def _post(api: httpx.Client, path: str, payload: t.Any) -> httpx.Response:
    """Serialize once; sign and send the same bytes (§2)."""
    return api.post(path, content=json.dumps(payload).encode(),
                    headers={"Content-Type": "application/json"})


def _put(api: httpx.Client, path: str, payload: t.Any) -> httpx.Response:
    return api.put(path, content=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})


def test_vendor_signature_example() -> None:
    """§2 + the note on the wiki example: secret `xyz` signs the pre-/v9 string to the published value."""
    message = b"GET api.ticketevolution.com/brokerages?page=1&per_page=1"
    assert _hmac64("xyz", message) == "ohGcFIHF3vg75A8Kpg42LNxuQpQZJsTBKv8xnZASzu0="
    assert sign("xyz", message) == "ohGcFIHF3vg75A8Kpg42LNxuQpQZJsTBKv8xnZASzu0="
    # the emulator rebuilds that string: port dropped, query sorted, `?` always present
    assert string_to_sign("GET", "api.ticketevolution.com:443", "/brokerages", "per_page=1&page=1",
                          b"") == message
    assert string_to_sign("GET", "api.ticketevolution.com", "/v9/categories", "", b"") == (
        b"GET api.ticketevolution.com/v9/categories?")
    body = b'{"clients":[{"name":"Michael Starr"}]}'
    assert string_to_sign("POST", "api.ticketevolution.com", "/v9/clients", "x=1", body) == (
        b'POST api.ticketevolution.com/v9/clients?{"clients":[{"name":"Michael Starr"}]}')


def test_seed_is_deterministic() -> None:
    """Same args -> same snapshot; clients depend on (seed, parents) only; records=0 keeps the clients."""
    first = TicketEvolutionApp(records=120, parents=60, seed=9).snapshot()
    assert json.dumps(first) == json.dumps(TicketEvolutionApp(records=120, parents=60, seed=9).snapshot())
    empty = TicketEvolutionApp(records=0, parents=60, seed=9).snapshot()
    assert empty["clients"] == first["clients"] and empty["phone_numbers"] == []
    assert first != TicketEvolutionApp(records=120, parents=60, seed=10).snapshot()
    assert [c["id"] for c in first["clients"]] == list(range(1, 61))
    phones = first["phone_numbers"]
    assert [p["id"] for p in phones] == list(range(1, 121))
    assert {p["client_id"] for p in phones} <= set(range(1, 61))
    assert len(TicketEvolutionApp(records=10).snapshot()["clients"]) == 5
    by_client = {c["id"]: c for c in first["clients"]}
    for phone in phones:
        assert phone["updated_at"].endswith("Z") and len(phone["updated_at"]) == 20
        assert phone["updated_at"] <= by_client[phone["client_id"]]["updated_at"]
        assert phone["label"] is None or len(phone["label"]) <= 20


def test_signature_accepted_and_rejected(server: EmulatorServer) -> None:
    """§2/§9.1: exact string (method, host sans port, /v9 path, mandatory `?`, sorted query / raw body)."""
    def call(auth: httpx.Auth | None, method: str = "GET", path: str = "/v9/clients", **kw: t.Any
             ) -> httpx.Response:
        with httpx.Client(base_url=server.url, auth=auth, timeout=5) as client:
            return client.request(method, path, **kw)

    params = {"per_page": 2, "page": 1, "updated_at.gte": "2023-06-01T00:00:00Z"}
    assert call(Signer(), params=params).status_code == 200
    assert call(Signer()).status_code == 200  # empty tail, `?` still signed
    body = json.dumps({"phone_numbers": [{"number": "541-555-0123"}]}).encode()
    assert call(Signer(), "POST", "/v9/clients/1/phone_numbers", content=body).status_code == 201
    rejected = [
        call(None, params=params),
        call(Signer(secret="wrong" * 8), params=params),
        call(Signer(token="f" * 32), params=params),
        call(Signer(keep_port=True), params=params),
        call(Signer(unsorted=True), params={"per_page": 2, "page": 1}),
        call(Signer(sign_query_for_writes=True), "POST", "/v9/clients/1/phone_numbers", content=body),
    ]
    for response in rejected:
        assert response.status_code == 401, response.request.url
        assert response.json() == {"error": "Unauthorized"}
    # the hand-built string, without the `?` and with the /v9-less path, both fail
    for message in ("GET 127.0.0.1/v9/clients/1", "GET 127.0.0.1/clients/1?"):
        headers = {"X-Token": TOKEN, "X-Signature": _hmac64(SECRET, message.encode())}
        assert call(None, path="/v9/clients/1", headers=headers).status_code == 401
    good = {"X-Token": TOKEN, "X-Signature": _hmac64(SECRET, b"GET 127.0.0.1/v9/clients/1?")}
    assert call(None, path="/v9/clients/1", headers=good).status_code == 200
    # a signed body that is re-serialized differently on the wire fails (byte-exact, §2)
    signed = _hmac64(SECRET, b"PUT 127.0.0.1/v9/clients/1/phone_numbers/1?" + b'{"label":"x"}')
    tampered = call(None, "PUT", "/v9/clients/1/phone_numbers/1", content=b'{"label": "x"}',
                    headers={"X-Token": TOKEN, "X-Signature": signed})
    assert tampered.status_code == 401


def test_clients_index_embeds_phones_and_paginates(api: httpx.Client, app: TicketEvolutionApp) -> None:
    """§3/§4/§9.4: envelope current_page/per_page/total_entries, embedded phone_numbers, to the end."""
    snap = app.snapshot()
    clients = _all_clients(api)
    assert [c["id"] for c in clients] == list(range(1, 141))
    embedded = [p for c in clients for p in c["phone_numbers"]]
    assert sorted(p["id"] for p in embedded) == list(range(1, 301))
    expected = {p["id"]: p for p in snap["phone_numbers"]}
    for client in clients:
        for phone in client["phone_numbers"]:
            want = expected[phone["id"]]
            assert {k: v for k, v in phone.items() if k != "url"} == {
                k: v for k, v in want.items() if k not in ("client_id", "is_primary")}
            assert phone["url"] == f"/clients/{client['id']}/phone_numbers/{phone['id']}"
            assert want["client_id"] == client["id"]
        primary = [p for p in client["phone_numbers"] if expected[p["id"]]["is_primary"]]
        assert client["primary_phone_number"] == (primary[0] if primary else None)
        assert {"email_addresses", "addresses", "updated_at", "created_at", "name"} <= set(client)
    body = api.get("/clients", params={"page": 2, "per_page": 50}).json()
    assert [body[k] for k in ("current_page", "per_page", "total_entries")] == [2, 50, 140]
    assert [c["id"] for c in body["clients"]] == list(range(51, 101))
    assert list(body) == ["current_page", "per_page", "total_entries", "clients"]
    assert api.get("/clients", params={"per_page": 500}).json()["per_page"] == 100  # §4 max 100 [I]
    assert api.get("/clients", params={"page": 9}).json()["clients"] == []
    defaults = api.get("/clients").json()
    assert defaults["current_page"] == 1 and defaults["per_page"] == 100
    for bad in ("0", "x", "-1"):
        response = api.get("/clients", params={"per_page": bad})
        assert response.status_code == 422 and "per_page" in response.json()["errors"]


def test_updated_at_filters(api: httpx.Client, app: TicketEvolutionApp) -> None:
    """§5/§9.4: `updated_at.gte` and friends, dates or datetimes; name/office_id exact."""
    snap = app.snapshot()["clients"]
    stamp = sorted(c["updated_at"] for c in snap)[70]
    since = {c["id"] for c in _all_clients(api, **{"updated_at.gte": stamp})}
    assert since == {c["id"] for c in snap if c["updated_at"] >= stamp} and len(since) == 70
    after = {c["id"] for c in _all_clients(api, **{"updated_at.gt": stamp})}
    assert after == since - {c["id"] for c in snap if c["updated_at"] == stamp}
    window = {"created_at.gte": "2023-06-01", "created_at.lt": "2024-01-01"}
    assert {c["id"] for c in _all_clients(api, **window)} == {
        c["id"] for c in snap if "2023-06-01" <= c["created_at"] < "2024-01-01"}
    offset = stamp.replace("Z", "+02:00")  # same wall clock, two hours earlier in UTC
    assert len(_all_clients(api, **{"updated_at.gte": offset})) >= 70
    name = snap[3]["name"]
    assert {c["id"] for c in _all_clients(api, name=name)} == {c["id"] for c in snap if c["name"] == name}
    assert {c["id"] for c in _all_clients(api, office_id=2)} == {
        c["id"] for c in snap if c["office_id"] == 2}
    assert api.get("/clients", params={"updated_at.gte": "yesterday"}).status_code == 422


def test_show_routes_and_404(api: httpx.Client, app: TicketEvolutionApp, server: EmulatorServer) -> None:
    """§3: client show embeds phones; phone index/show nested under the client; 404 otherwise."""
    phone = app.snapshot()["phone_numbers"][0]
    cid = phone["client_id"]
    client = api.get(f"/clients/{cid}")
    assert client.status_code == 200 and client.json()["id"] == cid
    assert phone["id"] in [p["id"] for p in client.json()["phone_numbers"]]
    listed = api.get(f"/clients/{cid}/phone_numbers").json()
    assert listed["total_entries"] == len(listed["phone_numbers"]) == len(client.json()["phone_numbers"])
    shown = api.get(f"/clients/{cid}/phone_numbers/{phone['id']}")
    assert shown.status_code == 200 and shown.json()["number"] == phone["number"]
    other = next(c["id"] for c in app.snapshot()["clients"] if c["id"] != cid)
    for path in ("/clients/99999", "/clients/99999/phone_numbers", f"/clients/{other}/phone_numbers/"
                 f"{phone['id']}", "/clients/1/phone_numbers/99999", "/nothing"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "Not Found"}
    with httpx.Client(base_url=server.url, auth=Signer(), timeout=5) as raw:
        assert raw.get("/clients/1").status_code == 404  # the version is the path prefix (§1)


def test_create_takes_an_array(api: httpx.Client, app: TicketEvolutionApp) -> None:
    """§6/§9.2/§9.3: array under `phone_numbers`, 201 paginated-looking answer, int ids, normalized
    country code, `raw_number`, extension as string, `is_primary` not echoed, client touched."""
    cid = 7
    before = app.snapshot()
    payload = {"phone_numbers": [
        {"label": "home", "country_code": "+1", "number": "541-555-0123", "extension": None,
         "is_primary": False},
        {"label": "work", "country_code": "+1", "number": "541-555-0987", "extension": 5},
        {"label": "cell", "country_code": "+1", "number": "541-555-0573", "is_primary": True}]}
    created = _post(api, f"/clients/{cid}/phone_numbers", payload)
    assert created.status_code == 201, created.text
    body = created.json()
    assert [body[k] for k in ("current_page", "per_page", "total_entries")] == [1, 100, 3]
    phones = body["phone_numbers"]
    assert [p["id"] for p in phones] == [301, 302, 303]
    first = phones[0]
    assert first == {"id": 301, "url": f"/clients/{cid}/phone_numbers/301", "country_code": "1",
                     "area_code": None, "raw_number": "5550123", "number": "541-555-0123",
                     "extension": None, "label": "home", "updated_at": first["updated_at"]}
    assert phones[1]["extension"] == "5" and all("is_primary" not in p for p in phones)
    newest = max(p["updated_at"] for p in before["phone_numbers"] + before["clients"])
    assert first["updated_at"] > newest
    after = app.snapshot()
    assert after["clients"][cid - 1]["updated_at"] == first["updated_at"]
    assert next(p for p in after["phone_numbers"] if p["id"] == 303)["is_primary"] is True
    assert sum(p["is_primary"] for p in after["phone_numbers"] if p["client_id"] == cid) == 1
    assert api.get(f"/clients/{cid}").json()["primary_phone_number"]["id"] == 303
    gte = _all_clients(api, **{"updated_at.gte": first["updated_at"]})
    assert [c["id"] for c in gte] == [cid]  # an incremental read sees the new phones
    for bad in ({"phone_numbers": {"number": "541-555-0123"}}, {"number": "541-555-0123"},
                {"phone_numbers": []}):
        assert _post(api, f"/clients/{cid}/phone_numbers", bad).status_code == 400
    assert api.post(f"/clients/{cid}/phone_numbers", content=b"{nope").status_code == 400
    assert _post(api, "/clients/99999/phone_numbers", payload).status_code == 404
    assert len(app.snapshot()["phone_numbers"]) == 303


def test_update_takes_a_bare_object(api: httpx.Client, app: TicketEvolutionApp) -> None:
    """§6/§9.2: PUT bare object, partial, answers `{"phone_numbers":[one]}`; round trip via show."""
    phone = app.snapshot()["phone_numbers"][5]
    path = f"/clients/{phone['client_id']}/phone_numbers/{phone['id']}"
    updated = _put(api, path, {"label": "Work", "number": "(504) 555-1212", "extension": "71"})
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert list(body) == ["phone_numbers"] and len(body["phone_numbers"]) == 1
    one = body["phone_numbers"][0]
    assert one["id"] == phone["id"] and one["url"] == path
    assert (one["label"], one["number"], one["extension"]) == ("Work", "(504) 555-1212", "71")
    assert one["raw_number"] == "5551212" and one["country_code"] == phone["country_code"]
    assert one["updated_at"] > phone["updated_at"]
    assert api.get(path).json() == one
    again = _put(api, path, {"country_code": "+44"}).json()["phone_numbers"][0]
    assert again["country_code"] == "44" and again["updated_at"] > one["updated_at"]
    assert again["number"] == "(504) 555-1212"
    snap = next(p for p in app.snapshot()["phone_numbers"] if p["id"] == phone["id"])
    assert snap["label"] == "Work" and snap["country_code"] == "44"
    assert _put(api, path, ["not", "an", "object"]).status_code == 400


def test_flags_mixed_ids_and_country_code(api: httpx.Client, app: TicketEvolutionApp) -> None:
    """§9.3: string ids except on create (flag); `"+1"` kept as sent when normalization is off."""
    app.configure({"mixed_ids": True, "normalize_country_code": False, "unknown": 1})
    created = _post(api, "/clients/3/phone_numbers", {"phone_numbers": [
        {"number": "541-555-0123", "country_code": "+1"}]}).json()["phone_numbers"][0]
    assert created["id"] == 301 and created["country_code"] == "+1"
    shown = api.get("/clients/3/phone_numbers/301").json()
    assert shown["id"] == "301"
    updated = _put(api, "/clients/3/phone_numbers/301", {"label": "Office"}).json()["phone_numbers"][0]
    assert updated["id"] == "301" and updated["country_code"] == "+1"
    assert api.get("/clients/3").json()["id"] == "3"
    assert app.snapshot()["phone_numbers"][-1]["id"] == 301


def test_validation_errors(api: httpx.Client, app: TicketEvolutionApp) -> None:
    """§7/§9.5: `number` required, `label` ≤ 20 -> 422 Rails-style errors; nothing is written."""
    missing = _post(api, "/clients/2/phone_numbers", {"phone_numbers": [{"label": "home"}]})
    assert missing.status_code == 422
    assert missing.json() == {"errors": {"number": ["can't be blank"]}}
    long_label = _post(api, "/clients/2/phone_numbers", {"phone_numbers": [
        {"number": "541-555-0123"}, {"number": "541-555-0124", "label": "x" * 21}]})
    assert long_label.status_code == 422
    assert long_label.json() == {"errors": {"label": ["is too long (maximum is 20 characters)"]}}
    assert _post(api, "/clients/2/phone_numbers", {"phone_numbers": [
        {"number": "541-555-0124", "label": "x" * 20}]}).status_code == 201
    assert len(app.snapshot()["phone_numbers"]) == 301
    phone = app.snapshot()["phone_numbers"][0]
    path = f"/clients/{phone['client_id']}/phone_numbers/{phone['id']}"
    blank = _put(api, path, {"number": ""})
    assert blank.status_code == 422 and blank.json() == {"errors": {"number": ["can't be blank"]}}
    assert app.snapshot()["phone_numbers"][0] == phone
    # v8 client update failure echoes the object plus errors (§7)
    failed = _put(api, "/clients/1", {"name": ""})
    assert failed.status_code == 422
    assert failed.json()["errors"] == {"name": ["can't be blank"]} and failed.json()["id"] == 1


def test_client_writes(api: httpx.Client, app: TicketEvolutionApp) -> None:
    """§3: POST /clients takes `{"clients":[...]}`; PUT /clients/:id a bare object."""
    made = _post(api, "/clients", {"clients": [{"name": "Michael Starr"}]})
    assert made.status_code == 201, made.text
    client = made.json()["clients"][0]
    assert client["id"] == 141 and client["name"] == "Michael Starr" and client["phone_numbers"] == []
    renamed = _put(api, "/clients/141", {"name": "Mike Starr"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Mike Starr"
    assert app.snapshot()["clients"][-1]["name"] == "Mike Starr"


def test_no_delete_route(api: httpx.Client, app: TicketEvolutionApp) -> None:
    """§3/§9.5: no DELETE for phone numbers -> 404, nothing removed."""
    phone = app.snapshot()["phone_numbers"][0]
    response = api.delete(f"/clients/{phone['client_id']}/phone_numbers/{phone['id']}")
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}
    assert api.request("PATCH", f"/clients/{phone['client_id']}").status_code == 404
    assert len(app.snapshot()["phone_numbers"]) == 300


def test_rate_limit(api: httpx.Client, server: EmulatorServer, clock: ManualClock) -> None:
    """§7/§8: throttled -> 503 with Retry-After (documented), 429 as a switchable variant."""
    with httpx.Client(base_url=server.url, timeout=5) as admin:
        assert admin.post("/_emulator/config", json={"rate_limit": 2, "rate_window": 0.5}).status_code == 200
    clock.advance(0.55)
    answers = [api.get("/clients/1") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 503]
    assert int(answers[2].headers["Retry-After"]) >= 1 and "error" in answers[2].json()
    clock.advance(0.55)
    server.app.configure({"rate_status": 429})
    answers = [api.get("/clients/1") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1
    clock.advance(0.55)
    assert api.get("/clients/1").status_code == 200


def test_state_cli_and_defaults(server: EmulatorServer, app: TicketEvolutionApp) -> None:
    """/_emulator/state is the snapshot; CLI options reach the app; the CLI prints its URL."""
    with httpx.Client(base_url=server.url, timeout=5) as admin:
        assert admin.get("/_emulator/state").json() == json.loads(json.dumps(app.snapshot()))
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--parents", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    TicketEvolutionApp.options_type.add_arguments(parser)
    built = build(TicketEvolutionApp, parser.parse_args(["--token", "k", "--secret", "s", "--rate-limit", "7",
                                     "--rate-status", "429", "--mixed-ids"]))
    options = built.options
    assert (options.token, options.secret, built.limiter.limit, options.rate_status) == ("k", "s", 7, 429)
    assert options.mixed_ids and options.normalize_country_code and options.touch_client
    assert len(built.snapshot()["phone_numbers"]) == 10 and len(built.snapshot()["clients"]) == 5
    default = TicketEvolutionApp(records=2)
    assert (default.options.token, default.options.secret, default.options.rate_status) == (
        "emulator-token", "emulator-secret", 503)
    proc = subprocess.Popen([sys.executable, "-m", "crmphones_emulators", "ticketevolution", "--port", "0",
                             "--records", "10"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("serving ticketevolution on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        with httpx.Client(base_url=url, timeout=5,
                          auth=Signer(token="emulator-token", secret="emulator-secret")) as client:
            assert client.get("/v9/clients").json()["total_entries"] == 5
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        proc.stdout.close()


@pytest.mark.parametrize("clears", [True, False])
def test_new_primary_clears_the_old_one_or_not(api: httpx.Client, app: TicketEvolutionApp,
                                               clears: bool) -> None:
    """[A]: whether a number written primary clears the client's old primary is not
    documented: both, by option; `primary_phone_number` names one of them either way."""
    app.configure({"primary_clears_others": clears})
    cid = 9
    old = [p["id"] for p in app.snapshot()["phone_numbers"]
           if p["client_id"] == cid and p["is_primary"]]
    made = _post(api, f"/clients/{cid}/phone_numbers", {"phone_numbers": [
        {"number": "541-555-0199", "country_code": "+1", "is_primary": True}]})
    new = made.json()["phone_numbers"][0]["id"]
    primaries = [p["id"] for p in app.snapshot()["phone_numbers"]
                 if p["client_id"] == cid and p["is_primary"]]
    assert sorted(primaries) == ([new] if clears else sorted([*old, new]))
    assert old, "the seeded client has a primary to clear"
