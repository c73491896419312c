"""Ticket Evolution API v9 emulator: clients (index embeds phone numbers) and client phone numbers.

Written from /work/shared/api/ticketevolution.md alone; section numbers in comments refer to that file.
Requests are authenticated with X-Token and an X-Signature (Base64 HMAC-SHA256 of
"METHOD host/path?tail", host without port, tail = sorted raw query or raw body) (§2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import threading
import time
import typing as t
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from random import Random

from crmphones_emulators.clock import SYSTEM_CLOCK
from crmphones_emulators.fake import fake_company, fake_name, messy_phone
from crmphones_emulators.server import RateLimiter, RateOptions, Response, Route, Router, option

if t.TYPE_CHECKING:
    from crmphones_emulators.clock import Clock
    from crmphones_emulators.server import Request

PREFIX = "/v9"  # §1: the version is the path prefix
LABELS = ("home", "work", "cell", "Office", "mobile", "fax")  # §6 examples, ≤20 chars
MAX_PER_PAGE = 100  # §4 [I]
_EPOCH_START = int(datetime(2023, 1, 1, tzinfo=timezone.utc).timestamp())
_EPOCH_END = int(datetime(2024, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp())
_OPS: dict[str, t.Callable[[int, int], bool]] = {
    "eq": lambda a, b: a == b, "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
_PHONE_FIELDS = ("label", "country_code", "number", "extension", "is_primary", "area_code", "raw_num")
_STRING_FIELDS = ("label", "country_code", "number", "extension", "area_code", "raw_num")


def iso(epoch: int) -> str:
    """Timestamps as in §6: `2017-12-15T00:12:21Z`."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(stamp: str) -> int | None:
    """Parse an ISO 8601 date or datetime (§5); naive values are UTC [A]. None when unparseable."""
    text = stamp.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if " " in text and re.fullmatch(r"\d{4}-\d\d-\d\d \d.*", text):
        text = text.replace(" ", "T", 1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp())


def sign(secret: str, message: bytes) -> str:
    """§2: standard Base64 (padded) of the raw HMAC-SHA256 digest keyed with the API secret."""
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def string_to_sign(method: str, host: str, path: str, raw_query: str, body: bytes) -> bytes:
    """§2: `"<METHOD> <host><path>?<tail>"` rebuilt from the received request.

    The host is the Host header without its port; the `?` is always there; the tail is the raw
    body for POST/PUT/PATCH with a body, otherwise the received query pairs, still encoded as sent,
    sorted byte-wise by key (stable, so repeated `key[]` pairs keep their order) [A].
    """
    if host.startswith("["):  # IPv6 literal: "[::1]:8080"
        host = host[: host.find("]") + 1]
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    head = f"{method.upper()} {host}{path}?".encode()
    if method.upper() in ("POST", "PUT", "PATCH") and body:
        return head + body
    pairs = [pair for pair in raw_query.split("&") if pair]
    pairs.sort(key=lambda pair: pair.partition("=")[0].encode())
    return head + "&".join(pairs).encode()


def _digits(number: str) -> str:
    """Digits of the number before any extension marker."""
    main = re.split(r"(?i)ext|x|#|,", number, maxsplit=1)[0]
    return re.sub(r"\D", "", main)


def _raw_number(number: str, country_code: str | None) -> str | None:
    """`raw_number` (§6, semantics [U]): `"5550123"` from `"541-555-0123"` -- the digits without the
    country and area codes. [A] NANP: the last 7 digits; otherwise the digits without a leading
    `00`/country code. None when there are no digits."""
    digits = _digits(number)
    if not digits:
        return None
    code = (country_code or "").lstrip("+")
    if digits.startswith("00"):
        digits = digits[2:]
    if code in ("", "1") and len(digits) in (10, 11) and (len(digits) == 10 or digits[0] == "1"):
        return digits[-7:]
    if code and digits.startswith(code) and len(digits) > len(code) + 6:
        return digits[len(code):]
    return digits


def _not_found() -> Response:
    return Response(404, {"error": "Not Found"})  # §7/§10: 404 body [U]; [A]


def _bad_request(message: str) -> Response:
    return Response(400, {"error": message})  # §7: 400 for malformed POST/PUT bodies [A]


@dataclass
class TicketEvolutionOptions(RateOptions):
    """Ticket Evolution's switches (`TicketEvolutionApp` keywords, `/_emulator/config` keys,
    CLI options)."""

    token: str = option("emulator-token", "the accepted X-Token (§2)")
    secret: str = option("emulator-secret", "the API secret that keys X-Signature (§2)")
    rate_limit: int = option(600, "requests per window (§8: numbers [U]; [A])")
    rate_window: float = option(60.0, "fixed window length in seconds")
    rate_status: int = option(503, "status when throttled: 503 as documented (§7/§8), or 429 [A]",
                              choices=(503, 429))
    throttle_retry_after: bool = option(
        True, "a throttled answer carries Retry-After [A]; off: none, as the official client "
        "documents its 503 (update 2026-12-07)", flag="--no-throttle-retry-after")
    accept_creates: bool = option(
        False, "a phone create answers 202 accepted, without the phones (§7: processed later; "
        "[A] made at once)")
    redirect_to: str = option(
        "", "when set, every API request answers 301 with this URL as its Location (§7)")
    mixed_ids: bool = option(
        False, "string ids everywhere except integer ids in create answers (§6, §9.3)")
    normalize_country_code: bool = option(
        True, 'writes store country_code "+1" as "1" (T0 create; §9.3); off keeps "+1" (T2)',
        flag="--keep-country-code")
    touch_client: bool = option(
        True, "a phone write bumps its client's updated_at ([U] §10; [A] yes by default)",
        flag="--no-touch-client")
    index_embeds_phones: bool = option(
        True, "the clients index embeds phone_numbers (§3 [D]); off, a client must ask each "
        "client's list", flag="--no-index-phones")
    primary_clears_others: bool = option(
        True, "a phone written is_primary clears it on the client's others ([A], not "
        "documented); off, the others keep theirs", flag="--primary-keeps-others")


class TicketEvolutionApp:
    """In-memory Ticket Evolution account: `clients`, each with embedded `phone_numbers`."""

    name = "ticketevolution"
    options_type = TicketEvolutionOptions

    def __init__(self, records: int = 100, parents: int | None = None, seed: int = 1,
                 clock: Clock = SYSTEM_CLOCK, **options: t.Any) -> None:
        """Seed the account.

        Args:
            records: number of phone numbers (ids 1..records), spread over the clients.
            parents: number of clients (ids 1..parents); default max(1, records // 2).
            seed: same seed and parents -> same clients; same seed/records/parents -> same snapshot.
            clock: what the rate window counts in.
            options: `TicketEvolutionOptions` fields.
        """
        parents = max(1, records // 2) if parents is None else parents
        if parents < 1 and records > 0:
            msg = f"{records} phone numbers need at least one client"
            raise ValueError(msg)
        self._seeding = (records, parents, seed)
        self._initial = TicketEvolutionOptions(**options)
        self.clock = clock
        self._lock = threading.RLock()
        self.router = Router(PREFIX, [
            (r"/clients", {"GET": self._list_clients, "POST": self._create_clients}),
            (r"/clients/(\d+)", {"GET": self._show_client, "PUT": self._update_client}),
            (r"/clients/(\d+)/phone_numbers", {"GET": self._list_phones, "POST": self._create_phones}),
            (r"/clients/(\d+)/phone_numbers/(\d+)", {"GET": self._show_phone, "PUT": self._update_phone}),
        ])
        self.reset()

    def reset(self) -> None:
        """Back to the seeded account, its options as built and a fresh rate window."""
        records, parents, seed = self._seeding
        with self._lock:
            self.options = replace(self._initial)
            self.limiter = RateLimiter(self.options, self.clock)
            self.clients: dict[int, dict[str, t.Any]] = {}
            self.phones: dict[int, dict[str, t.Any]] = {}
            # Each client's phones by id, beside `phones`: a client's phones cost its own count.
            self._by_client: dict[int, dict[int, dict[str, t.Any]]] = {}
            self._seed_clients(Random(f"ticketevolution-clients-{seed}"), parents)
            self._seed_phones(Random(f"ticketevolution-phones-{seed}-{records}"), records)
            stamps = [_EPOCH_END, *(self._stamp(c["updated_at"]) for c in self.clients.values()),
                      *(self._stamp(p["updated_at"]) for p in self.phones.values())]
            self._last_write = max(stamps)

    # ---- seeding -------------------------------------------------------------------------------
    @staticmethod
    def _stamp(value: str) -> int:
        return _epoch(value) or 0

    def _seed_clients(self, rng: Random, parents: int) -> None:
        """Clients depend on (seed, parents) only, so a destination account has the same clients."""
        created = sorted(rng.randint(_EPOCH_START, _EPOCH_END - 86400) for _ in range(parents))
        for client_id, born in enumerate(created, start=1):
            name = fake_name(rng)
            company = rng.randint(1, 12) if rng.random() < 0.4 else None
            emails = []
            if rng.random() < 0.7:
                address = name.lower().replace(" ", ".").replace("'", "") + f"{client_id}@example.com"
                emails.append({"id": client_id, "url": f"/clients/{client_id}/email_addresses/{client_id}",
                               "address": address, "label": "home", "is_primary": True})
            self.clients[client_id] = {
                "id": client_id, "url": f"/clients/{client_id}", "name": name,
                "office_id": rng.choice((1, 1, 2)),
                "company_id": company,
                "company_name": fake_company(rng) if company else None,
                "tags": [],
                "email_addresses": emails, "addresses": [],
                "created_at": iso(born), "updated_at": iso(rng.randint(born, _EPOCH_END)),
            }

    def _seed_phones(self, rng: Random, records: int) -> None:
        ids = sorted(self.clients)
        for phone_id in range(1, records + 1):
            client = self.clients[rng.choice(ids)]
            born, last = self._stamp(client["created_at"]), self._stamp(client["updated_at"])
            number = messy_phone(rng)
            international = re.match(r"^(?:\+|00)(\d{2})\s", number)
            if international:
                country: str | None = international.group(1)
            elif _digits(number) and len(_digits(number)) >= 10:
                country = "1" if rng.random() < 0.7 else None
            else:
                country = None
            primary = not self._by_client.get(client["id"])
            self.phones[phone_id] = {
                "id": phone_id, "client_id": client["id"], "country_code": country, "area_code": None,
                "raw_number": _raw_number(number, country), "number": number,
                "extension": str(rng.randint(1, 9999)) if rng.random() < 0.1 else None,
                "label": rng.choice((*LABELS, None)), "is_primary": primary,
                "updated_at": iso(rng.randint(born, last)),
            }
            self._by_client.setdefault(client["id"], {})[phone_id] = self.phones[phone_id]

    # ---- DialectApp protocol ---------------------------------------------------------------------
    def snapshot(self) -> dict:
        """Full state with integer ids; each phone carries `client_id` and `is_primary`."""
        with self._lock:
            clients = [self._client_state(self.clients[i]) for i in sorted(self.clients)]
            phones = [dict(self.phones[i]) for i in sorted(self.phones)]
        return {"clients": clients, "phone_numbers": phones}

    @staticmethod
    def _client_state(client: dict[str, t.Any]) -> dict[str, t.Any]:
        return {**client, "email_addresses": [dict(e) for e in client["email_addresses"]],
                "addresses": [], "tags": list(client["tags"])}

    def configure(self, options: dict) -> None:
        """Runtime switches; unknown keys are ignored (contract)."""
        with self._lock:
            self.options.update(options)

    def handle(self, request: Request) -> Response:
        """Route (Rails: unknown routes 404 first), then authenticate, then throttle (§2, §8) [A]."""
        route = self.router.match(request.method, request.path)
        if not isinstance(route, Route):
            return _not_found()  # includes DELETE on phone numbers: no such route (§3, §9.5)
        if not self._authentic(request):
            return Response(401, {"error": "Unauthorized"})  # §7 [A]
        if self.options.redirect_to:  # §7: 301 moved permanently [D T5]
            return Response(301, {"error": "Moved Permanently"},
                            headers={"Location": self.options.redirect_to})
        allowed, _, reset_in = self.limiter.take()
        if not allowed:  # §8: 503 "token rate limit reached - retry" [D T5]; 429 variant [A]
            retry = str(max(1, math.ceil(reset_in)))
            headers = {"Retry-After": retry} if self.options.throttle_retry_after else {}
            return Response(self.options.rate_status, {"error": "Rate limit reached, retry later"},
                            headers=headers)
        with self._lock:
            return route.handler(request, *(int(arg) for arg in route.args))

    def _authentic(self, request: Request) -> bool:
        token = request.headers.get("x-token", "")
        given = request.headers.get("x-signature", "")
        if not token or not given or not hmac.compare_digest(token.encode(), self.options.token.encode()):
            return False
        expected = sign(self.options.secret, string_to_sign(request.method, request.host, request.path,
                                                    request.raw_query, request.body))
        return hmac.compare_digest(given.strip().encode(), expected.encode())

    # ---- rendering -------------------------------------------------------------------------------
    def _id(self, value: int, created: bool = False) -> int | str:
        """§6/§9.3: integer ids on create, string ids elsewhere when `mixed_ids` is on."""
        return str(value) if self.options.mixed_ids and not created else value

    def _render_phone(self, phone: dict[str, t.Any], created: bool = False) -> dict[str, t.Any]:
        """§6 response item; `url` has no `/v9`; `is_primary` is not echoed."""
        return {"id": self._id(phone["id"], created),
                "url": f"/clients/{phone['client_id']}/phone_numbers/{phone['id']}",
                "country_code": phone["country_code"], "area_code": phone["area_code"],
                "raw_number": phone["raw_number"], "number": phone["number"],
                "extension": phone["extension"], "label": phone["label"], "updated_at": phone["updated_at"]}

    def _phones_of(self, client_id: int) -> list[dict[str, t.Any]]:
        return [p for _, p in sorted(self._by_client.get(client_id, {}).items())]

    def _render_client(self, client: dict[str, t.Any]) -> dict[str, t.Any]:
        """§3: every client embeds `phone_numbers`, `primary_phone_number`, `email_addresses`, ..."""
        phones = self._phones_of(client["id"])
        primary = next((p for p in phones if p["is_primary"]), None)
        out = self._client_state(client)
        out["id"] = self._id(client["id"])
        out["phone_numbers"] = [self._render_phone(p) for p in phones]
        out["primary_phone_number"] = self._render_phone(primary) if primary else None
        out["primary_email_address"] = next((dict(e) for e in client["email_addresses"]
                                             if e["is_primary"]), None)
        return out

    @staticmethod
    def _page(request: Request, plural: str, rows: list[dict[str, t.Any]]) -> Response:
        """§4 envelope `{current_page, per_page, total_entries, <plural>}`; per_page capped at 100 [I]."""
        numbers = {}
        for key, default in (("page", 1), ("per_page", MAX_PER_PAGE)):
            raw = (request.param(key) or "").strip()
            if raw == "":
                numbers[key] = default
            elif re.fullmatch(r"\d+", raw) and int(raw) >= 1:
                numbers[key] = int(raw)
            else:
                return Response(422, {"errors": {key: ["must be a positive integer"]}})  # [A]
        page, per_page = numbers["page"], min(numbers["per_page"], MAX_PER_PAGE)
        chunk = rows[(page - 1) * per_page: page * per_page]
        return Response(200, {"current_page": page, "per_page": per_page, "total_entries": len(rows),
                              plural: chunk})

    # ---- clients ---------------------------------------------------------------------------------
    def _list_clients(self, request: Request) -> Response:
        """§3/§5: filters office_id, company_id, name (exact), created_at/updated_at with
        `.gte/.gt/.lt/.lte` suffixes (plain = equal). Ordered by id [A] (ordering is [U])."""
        checks: list[t.Callable[[dict[str, t.Any]], bool]] = []
        for key, value in request.query:
            field, _, op = key.partition(".")
            if field in ("created_at", "updated_at"):
                op = op or "eq"
                when = _epoch(value)
                if op not in _OPS:
                    return Response(422, {"errors": {key: ["is not a supported condition"]}})
                if when is None:
                    return Response(422, {"errors": {key: ["is not a valid date"]}})
                compare = _OPS[op]
                checks.append(lambda c, f=field, w=when, cmp=compare: cmp(self._stamp(c[f]), w))
            elif key in ("office_id", "company_id"):
                wanted = value.strip()
                checks.append(lambda c, f=key, v=wanted: str(c[f]) == v)
            elif key == "name":
                checks.append(lambda c, v=value: c["name"] == v)
        rows = [self._render_client(c) for _, c in sorted(self.clients.items())
                if all(check(c) for check in checks)]
        if not self.options.index_embeds_phones:
            for row in rows:
                del row["phone_numbers"]
        return self._page(request, "clients", rows)

    def _show_client(self, _: Request, client_id: int) -> Response:
        client = self.clients.get(client_id)
        return _not_found() if client is None else Response(200, self._render_client(client))

    @staticmethod
    def _json(request: Request) -> t.Any:
        try:
            return json.loads(request.body or b"null")
        except ValueError:
            return _bad_request("Malformed JSON body")

    def _client_fields(self, item: t.Any) -> tuple[dict[str, t.Any], dict[str, list[str]]]:
        if not isinstance(item, dict):
            return {}, {"base": ["is invalid"]}
        clean = {k: item[k] for k in ("name", "office_id", "company_id") if k in item}
        errors: dict[str, list[str]] = {}
        if "name" in clean and (not isinstance(clean["name"], str) or not clean["name"].strip()):
            errors["name"] = ["can't be blank"]
        return clean, errors

    def _array(self, request: Request, key: str) -> list[t.Any] | Response:
        """The body's `key` array (§3: an array even for one), or the 400 that refuses it."""
        body = self._json(request)
        if isinstance(body, Response):
            return body
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return _bad_request(f"{key} must be a non-empty array")
        return items

    def _create_clients(self, request: Request) -> Response:
        """POST /clients: `{"clients":[...]}` even for one (§3); answered like phone creation."""
        items = self._array(request, "clients")
        if isinstance(items, Response):
            return items
        checked = []
        for item in items:
            clean, errors = self._client_fields(item)
            if "name" not in clean:
                errors["name"] = ["can't be blank"]
            if errors:
                return Response(422, {**(item if isinstance(item, dict) else {}), "errors": errors})
            checked.append(clean)
        made = []
        for clean in checked:
            stamp = self._tick()
            client_id = max(self.clients, default=0) + 1
            self.clients[client_id] = {
                "id": client_id, "url": f"/clients/{client_id}", "name": clean["name"],
                "office_id": clean.get("office_id", 1), "company_id": clean.get("company_id"),
                "company_name": None, "tags": [], "email_addresses": [], "addresses": [],
                "created_at": stamp, "updated_at": stamp}
            made.append(self._render_client(self.clients[client_id]))
            made[-1]["id"] = client_id
        return Response(201, {"current_page": 1, "per_page": MAX_PER_PAGE, "total_entries": len(made),
                              "clients": made})

    def _update_client(self, request: Request, client_id: int) -> Response:
        """PUT /clients/:id with a bare object; a blank name echoes the object plus `errors` (§7)."""
        client = self.clients.get(client_id)
        if client is None:
            return _not_found()
        body = self._json(request)
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict):
            return _bad_request("body must be a JSON object")
        clean, errors = self._client_fields(body)
        if errors:
            return Response(422, {**self._render_client({**client, **clean}), "errors": errors})
        client.update(clean, updated_at=self._tick())
        return Response(200, self._render_client(client))

    # ---- phone numbers ---------------------------------------------------------------------------
    def _list_phones(self, request: Request, client_id: int) -> Response:
        if client_id not in self.clients:
            return _not_found()
        rows = [self._render_phone(p) for p in self._phones_of(client_id)]
        return self._page(request, "phone_numbers", rows)

    def _show_phone(self, _: Request, client_id: int, phone_id: int) -> Response:
        """Bare phone object [A] (show shape not in the notes)."""
        phone = self.phones.get(phone_id)
        if phone is None or phone["client_id"] != client_id:
            return _not_found()
        return Response(200, self._render_phone(phone))

    def _check_phone(self, item: t.Any, create: bool) -> tuple[dict[str, t.Any], dict[str, list[str]]]:
        """§6 fields and §7 [A] Rails-style messages; unknown keys are ignored (strong params) [A]."""
        if not isinstance(item, dict):
            return {}, {"base": ["is invalid"]}
        clean: dict[str, t.Any] = {}
        errors: dict[str, list[str]] = {}
        for key in _PHONE_FIELDS:
            if key not in item:
                continue
            value = item[key]
            if key == "is_primary":
                if not isinstance(value, bool) and value is not None:
                    errors[key] = ["is not included in the list"]
                clean[key] = bool(value)
                continue
            if isinstance(value, bool) or isinstance(value, (list, dict)):
                errors[key] = ["is invalid"]
                continue
            if isinstance(value, (int, float)):  # extension 5 comes back "5" (§6)
                value = str(value)
            clean[key] = value if value is None else str(value)
        if create and "number" not in clean:
            clean["number"] = None
        if "number" in clean and not (clean["number"] or "").strip():
            errors["number"] = ["can't be blank"]
        if len(clean.get("label") or "") > 20:
            errors["label"] = ["is too long (maximum is 20 characters)"]
        if len(clean.get("area_code") or "") > 4:
            errors["area_code"] = ["is too long (maximum is 4 characters)"]
        if clean.get("country_code") and self.options.normalize_country_code:
            clean["country_code"] = clean["country_code"].strip().lstrip("+") or None
        if "extension" in clean and clean["extension"] is not None and not clean["extension"].strip():
            clean["extension"] = None
        return clean, errors

    def _store_phone(self, client_id: int, clean: dict[str, t.Any], phone: dict[str, t.Any] | None,
                     stamp: str) -> dict[str, t.Any]:
        if phone is None:
            # Ids grow with insertion, so the last key is the largest.
            phone = {"id": next(reversed(self.phones), 0) + 1, "client_id": client_id,
                     "country_code": None, "area_code": None, "extension": None, "label": None,
                     "is_primary": False}
            self.phones[phone["id"]] = phone
            self._by_client.setdefault(client_id, {})[phone["id"]] = phone
        raw_num = clean.pop("raw_num", None)
        phone.update(clean, updated_at=stamp)
        if raw_num:  # one update revision: area_code + raw_num (rest of number) (§6) [A]
            phone["raw_number"] = re.sub(r"\D", "", raw_num) or None
        else:
            phone["raw_number"] = _raw_number(phone["number"], phone["country_code"])
        if clean.get("is_primary") and self.options.primary_clears_others:  # [A]
            for other in self._by_client[client_id].values():
                if other["id"] != phone["id"]:
                    other["is_primary"] = False
        if self.options.touch_client:
            self.clients[client_id]["updated_at"] = stamp
        return phone

    def _create_phones(self, request: Request, client_id: int) -> Response:
        """§3/§6/§9.2: `{"phone_numbers":[...]}` (array even for one) -> 201 paginated-looking
        collection; all-or-nothing: any invalid item -> 422 and nothing is created [A]."""
        if client_id not in self.clients:
            return _not_found()
        items = self._array(request, "phone_numbers")
        if isinstance(items, Response):
            return items
        checked: list[dict[str, t.Any]] = []
        errors: dict[str, list[str]] = {}
        for item in items:
            clean, item_errors = self._check_phone(item, create=True)
            for key, messages in item_errors.items():
                errors.setdefault(key, [])
                errors[key].extend(m for m in messages if m not in errors[key])
            checked.append(clean)
        if errors:
            return Response(422, {"errors": errors})
        stamp = self._tick()  # one request, one timestamp (T0 example)
        made = [self._render_phone(self._store_phone(client_id, clean, None, stamp), created=True)
                for clean in checked]
        if self.options.accept_creates:  # §7: 202 accepted for later processing
            return Response(202, {"status": "accepted"})
        return Response(201, {"current_page": 1, "per_page": MAX_PER_PAGE, "total_entries": len(made),
                              "phone_numbers": made})

    def _update_phone(self, request: Request, client_id: int, phone_id: int) -> Response:
        """§6/§9.2: bare object body, partial [A]; answers 200 `{"phone_numbers":[one]}`."""
        phone = self.phones.get(phone_id)
        if phone is None or phone["client_id"] != client_id:
            return _not_found()
        body = self._json(request)
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict):
            return _bad_request("body must be a JSON object")
        clean, errors = self._check_phone(body, create=False)
        if errors:
            return Response(422, {"errors": errors})
        self._store_phone(client_id, clean, phone, self._tick())
        return Response(200, {"phone_numbers": [self._render_phone(phone)]})

    # ---- clock -----------------------------------------------------------------------------------
    def _tick(self) -> str:
        """Strictly increasing write clock, second precision, later than every seeded timestamp."""
        self._last_write = max(int(time.time()), self._last_write + 1)
        return iso(self._last_write)


APP = TicketEvolutionApp
