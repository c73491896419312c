"""Outreach REST API v2 emulator: JSON:API `phoneNumbers` (read/write) and `prospects` (read).

Written from /work/shared/api/outreach.md alone; section numbers in comments refer to that file.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import itertools
import json
import math
import re
import secrets
import threading
import time
import typing as t
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from random import Random
from urllib.parse import parse_qsl, quote

from crmphones_emulators.clock import SYSTEM_CLOCK
from crmphones_emulators.fake import fake_name, messy_phone
from crmphones_emulators.server import RateLimiter, RateOptions, Response, Route, Router, option

if t.TYPE_CHECKING:
    from crmphones_emulators.clock import Clock
    from crmphones_emulators.server import Request

PREFIX = "/api/v2"  # §1: the version lives in the path only
TOKEN_PATH = "/oauth/token"  # §2: on the API's host, outside the versioned prefix
#: What a mint answers about the refresh token sent (§2 update: whether a used one stops
#: working is [U]; connectors that run for months keep every one returned).
ROTATIONS = ("rotate", "rotate-keep-old", "same", "omit")
MEDIA_TYPE = "application/vnd.api+json"  # §1
PHONE_TYPES = ("mobile", "work", "home", "voip", "other", None)  # §4
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000  # §5
MAX_LIMIT, MAX_OFFSET = 1000, 10_000  # §5 deprecated offset paging
COUNT_TRUNCATED_AT = 2_000_000  # §5
_START_MS = int(datetime(2023, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
_END_MS = int(datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp() * 1000) - 1
_COUNTRIES = {"44": "GB", "33": "FR", "49": "DE", "61": "AU", "81": "JP", "52": "MX"}

# §4: attribute -> (kind, writable, filterable/sortable). kind: "str" | "int" | "time".
PHONE_ATTRS: dict[str, tuple[str, bool, bool]] = {
    "countryCode": ("str", True, False),
    "createdAt": ("time", False, False),
    "extension": ("str", True, False),
    "number": ("str", True, True),
    "order": ("int", True, True),
    "phoneType": ("str", True, True),
    "rawNumber": ("str", True, False),
    "status": ("str", True, True),
    "statusChangedAt": ("time", False, True),
    "updatedAt": ("time", False, True),
}
# §3: only the attributes the brief asks for; createdAt/updatedAt filterable and sortable [A].
PROSPECT_ATTRS: dict[str, tuple[str, bool, bool]] = {
    "createdAt": ("time", False, True),
    "firstName": ("str", True, True),
    "lastName": ("str", True, True),
    "updatedAt": ("time", False, True),
}


def iso(ms: int | None) -> str | None:
    """`2024-01-01T00:00:00.000Z`: ISO 8601 UTC with milliseconds (§4 example)."""
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms % 1000:03d}Z"


def parse_time(value: str) -> int | None:
    """A filter timestamp in microseconds since the epoch: with or without fractions, `Z`,
    `+00:00` or any offset; naive values are UTC [A]. None when unparseable."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)", text)
    micros = 0
    if match:  # any number of fraction digits (fromisoformat in 3.10 wants exactly 3 or 6)
        text = match.group(1) + match.group(3)
        micros = int(match.group(2)[:6].ljust(6, "0"))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp()) * 1_000_000 + parsed.microsecond + micros


def _error(status: int, error_id: str, title: str, detail: str, pointer: str | None = None,
           parameter: str | None = None, headers: dict[str, str] | None = None) -> Response:
    """§7 envelope `{"errors": [{id, title, detail, source}]}`."""
    error: dict[str, t.Any] = {"id": error_id, "title": title, "detail": detail}
    if pointer is not None:
        error["source"] = {"pointer": pointer}
    elif parameter is not None:
        error["source"] = {"parameter": parameter}
    return Response(status, {"errors": [error]}, headers=dict(headers or {}), content_type=MEDIA_TYPE)


def _oauth_error(status: int, code: str, description: str) -> Response:
    """A token endpoint's refusal: `{"error", "error_description"}` (RFC 6749 §5.2) [A]."""
    return Response(status, {"error": code, "error_description": description},
                    headers={"Cache-Control": "no-store"}, log_body=False)


def _bad(detail: str, parameter: str | None = None, error_id: str = "badRequest") -> Response:
    return _error(400, error_id, "Bad Request", detail, parameter=parameter)


def _invalid(detail: str, pointer: str) -> Response:
    return _error(422, "validationError", "Validation Error", detail, pointer=pointer)


def _not_found(kind: str, ident: t.Any) -> Response:
    return _error(404, "resourceNotFound", "Resource Not Found",
                  f"Could not find '{kind}' with ID '{ident}'.")


def _ids(value: str | t.Iterable[int | str] | None) -> frozenset[int]:
    """Ids from a comma list (command line) or a list (config)."""
    items = value.split(",") if isinstance(value, str) else (value or ())
    return frozenset(int(item) for item in items if str(item).strip())


@dataclass
class OutreachOptions(RateOptions):
    """Outreach's switches (`OutreachApp` keywords, `/_emulator/config` keys, CLI options)."""

    token: str = option("emulator-token", "accepted Bearer access token (§2; any configured bearer [A])")
    fixed_token_lifetime: float = option(
        0.0, "seconds the fixed `token` stays valid from the start (or a reset); 0: forever [A]")
    client_id: str = option("emulator-client", "OAuth app client id the token endpoint takes (§2)")
    client_secret: str = option("emulator-client-secret", "OAuth app client secret (§2)")
    refresh_token: str = option("emulator-refresh-token",
                                "the refresh token first issued: what a user pastes (§2)")
    token_lifetime: float = option(7200.0, "seconds a minted access token lives: expires_in (§2)")
    refresh_token_lifetime: float = option(14 * 86_400.0,
                                           "seconds a refresh token can be used (§2: 14 days)")
    rotation: str = option("rotate", "rotate: a new refresh token each mint, the used one "
                           "refused (400 invalid_grant); rotate-keep-old: a new one, the used "
                           "one still works; same: the one sent comes back; omit: none comes "
                           "back [U]", choices=ROTATIONS)
    revoke_on_refresh: bool = option(
        False, "a mint revokes the access tokens minted before it (Doorkeeper's way) [A]")
    mint_window: float = option(60.0, "at most one mint per user in this many seconds; "
                                "another answers 429 with Retry-After (§2)")
    rate_limit: int = option(10_000, "requests per window (§8: 10,000 per hour)")
    rate_window: float = option(3600.0, "length of the fixed window in seconds")
    second_limit: int = option(
        0, "when > 0, the X-RateLimit headers carry a second, larger limit after the first "
        "(`9999, 19988`: update 2026-12-07 [I]), counted by the same requests")
    refused_prospects: frozenset[int] = option(
        frozenset(), "comma list of prospect ids whose phones this user may not write: 403 "
        "unauthorizedRequest (§7, per-record permission rules)", parse=_ids)
    scope_refused: bool = option(
        False, "every request answers 403 unauthorizedOauthScope (§7: the token lacks the scope)")
    link_origin: str = option(
        "", "scheme://host[:port] written in links instead of the request's own (a link to "
        "another host or to http://)")


class OutreachApp:
    """In-memory Outreach account: `prospects` (ids 1..parents) and their `phoneNumbers`."""

    name = "outreach"
    options_type = OutreachOptions

    def __init__(self, records: int = 100, parents: int | None = None, seed: int = 1,
                 clock: Clock = SYSTEM_CLOCK, **options: t.Any) -> None:
        """Seed the account.

        Args:
            records: number of phone numbers (ids 1..records).
            parents: number of prospects (ids 1..parents); default max(1, records // 2).
            seed: same seed and parents -> same prospects; same seed/records/parents -> same snapshot.
            clock: what the quota window counts in.
            options: `OutreachOptions` fields.
        """
        parents = max(1, records // 2) if parents is None else parents
        if records < 0 or parents < 1:
            msg = "records must be >= 0 and parents >= 1"
            raise ValueError(msg)
        self._seeding = (records, parents, seed)
        self._initial = OutreachOptions(**options)
        self.clock = clock
        self._lock = threading.RLock()
        self.router = Router(PREFIX, [
            (r"/phoneNumbers", {"GET": self._list_phones, "POST": self._create_phone}),
            (r"/phoneNumbers/([^/]+)", {"GET": self._show_phone, "PATCH": self._update_phone,
                                        "DELETE": self._delete_phone}),
            (r"/prospects", {"GET": self._list_prospects}),
            (r"/prospects/([^/]+)", {"GET": self._show_prospect}),
        ])
        self.reset()

    def reset(self) -> None:
        """Back to the seeded account, its options as built and a fresh quota window."""
        records, parents, seed = self._seeding
        with self._lock:
            self.options = replace(self._initial)
            self.limiter = RateLimiter(self.options, self.clock)
            self._started = self.clock.now()
            #: Usable refresh tokens -> when they expire; minted access tokens -> expiry.
            self.refresh_tokens = {self.options.refresh_token:
                                   self._started + self.options.refresh_token_lifetime}
            self.access_tokens: dict[str, float] = {}
            self._last_mint = -math.inf
            self._serial = itertools.count(1)
            self.prospects: dict[int, dict[str, t.Any]] = {}
            self.phones: dict[int, dict[str, t.Any]] = {}
            self._seed_prospects(Random(f"outreach-prospects-{seed}-{parents}"), parents)
            self._seed_phones(Random(f"outreach-phones-{seed}-{parents}-{records}"), records)
            self._next_id = records + 1
            stamps = [row[k] for rows in (self.prospects, self.phones) for row in rows.values()
                      for k in ("createdAt", "updatedAt")]
            self._last_write = max([_END_MS, *stamps])

    # ---- seeding -------------------------------------------------------------------------------
    def _seed_prospects(self, rng: Random, parents: int) -> None:
        """Prospects depend on (seed, parents) only, so two accounts share them (contract)."""
        created = sorted(rng.randint(_START_MS, _END_MS - 86_400_000) for _ in range(parents))
        for prospect_id, born in enumerate(created, start=1):
            first, _, last = fake_name(rng).partition(" ")
            self.prospects[prospect_id] = {"id": prospect_id, "firstName": first or None,
                                           "lastName": last or None, "createdAt": born,
                                           "updatedAt": rng.randint(born, _END_MS)}

    def _seed_phones(self, rng: Random, records: int) -> None:
        drafts = []
        for _ in range(records):
            prospect = self.prospects[rng.randint(1, len(self.prospects))]
            created = rng.randint(prospect["createdAt"], _END_MS)
            number = messy_phone(rng)
            drafts.append({
                "prospect": prospect["id"], "number": number, "rawNumber": number,
                "phoneType": rng.choice(PHONE_TYPES),
                "extension": str(rng.randint(1, 9999)) if rng.random() < 0.1 else None,
                "countryCode": self._country(number) if rng.random() < 0.6 else None,
                "status": None, "statusChangedAt": None,
                "createdAt": created, "updatedAt": rng.randint(created, _END_MS),
            })
        drafts.sort(key=lambda p: (p["createdAt"], p["prospect"]))  # ids grow with creation time
        positions: dict[int, int] = {}
        for phone_id, draft in enumerate(drafts, start=1):
            order = positions.get(draft["prospect"], 0)
            positions[draft["prospect"]] = order + 1
            self.phones[phone_id] = {"id": phone_id, **draft, "order": order}

    @staticmethod
    def _country(number: str) -> str | None:
        """§4: an ISO country, not a dial code; junk numbers get none."""
        match = re.match(r"\s*(?:\+|00)(\d\d)", number)
        if match and match.group(1) in _COUNTRIES:
            return _COUNTRIES[match.group(1)]
        if len(re.sub(r"\D", "", number)) < 10:
            return None
        return "CA" if re.search(r"\b(514|416|604)\b|^\s*\(?(514|416|604)", number) else "US"

    # ---- DialectApp protocol ---------------------------------------------------------------------
    def snapshot(self) -> dict:
        """Every resource object exactly as GET renders it, sorted by id."""
        with self._lock:
            return {"phoneNumbers": [self._render_phone(self.phones[i]) for i in sorted(self.phones)],
                    "prospects": [self._render_prospect(self.prospects[i]) for i in sorted(self.prospects)]}

    def configure(self, options: dict) -> None:
        """Runtime switches; unknown keys are ignored (contract). A new `refresh_token` is
        issued as of now (a user authorized again)."""
        with self._lock:
            self.options.update(options)
            if "refresh_token" in options:
                self.refresh_tokens[self.options.refresh_token] = (
                    self.clock.now() + self.options.refresh_token_lifetime)

    def handle(self, request: Request) -> Response:
        """Route, authenticate, throttle, check the media type, then run (§1, §2, §8)."""
        if request.path.rstrip("/") == TOKEN_PATH:
            return self._token_endpoint(request)
        route = self._route(request)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self._valid_access(token.strip()):
            remaining, reset_in = self.limiter.peek()
            response = _error(401, "unauthorized", "Unauthorized",
                              "The access token is missing, invalid or expired.")  # §10: body [U]
            response.headers.update(self._quota_headers(remaining, reset_in))
            response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
        allowed, remaining, reset_in = self.limiter.take()
        headers = self._quota_headers(remaining, reset_in)
        if self.options.scope_refused:  # §7: the token lacks the scope, for every request
            return _error(403, "unauthorizedOauthScope", "Unauthorized OAuth Scope",
                          "The access token lacks the scope this request needs.", headers=headers)
        if not allowed:  # §8: 429 with Retry-After in seconds [A]
            headers["Retry-After"] = str(max(1, math.ceil(reset_in)))
            reset_at = iso(int((self.clock.time() + reset_in) * 1000))
            return _error(429, "rateLimitExceeded", "Rate Limit Exceeded",
                          f"You have exceeded your permitted rate limit of {self.limiter.limit}; "
                          f"please try again at {reset_at}.", headers=headers)
        if request.body and request.method.upper() in ("POST", "PATCH", "PUT", "DELETE"):
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != MEDIA_TYPE:  # §1: 415 only when a body is sent [A]
                response = Response(415, {"errors": [{
                    "id": "unsupportedMediaType", "title": "Unsupported Media Type",
                    "details": f"Expected Content-Type {MEDIA_TYPE}."}]}, content_type=MEDIA_TYPE)
                response.headers.update(headers)
                return response
        if isinstance(route, Response):
            response = route
        else:
            with self._lock:
                response = route.handler(request, route.args[0] if route.args else None)
        response.headers.update(headers)
        return response

    # ---- OAuth (§2) -----------------------------------------------------------------------------
    def _valid_access(self, token: str) -> bool:
        """The fixed token (for its lifetime, if any), or a minted one not yet expired."""
        with self._lock:
            now = self.clock.now()
            if token == self.options.token:
                life = self.options.fixed_token_lifetime
                return life <= 0 or now < self._started + life
            return now < self.access_tokens.get(token, -math.inf)

    def _token_endpoint(self, request: Request) -> Response:
        """`POST /oauth/token`, form `client_id, client_secret, grant_type=refresh_token,
        refresh_token` (optional `redirect_uri`, not checked [A]); errors as RFC 6749 §5.2 [A]."""
        if request.method.upper() != "POST":
            return _oauth_error(405, "invalid_request", "The token endpoint takes POST.")
        form = dict(parse_qsl(request.body.decode(errors="replace"), keep_blank_values=True))
        options = self.options
        with self._lock:
            now = self.clock.now()
            if (form.get("client_id") != options.client_id
                    or form.get("client_secret") != options.client_secret):
                return _oauth_error(401, "invalid_client", "Client authentication failed.")
            if form.get("grant_type") != "refresh_token":
                return _oauth_error(400, "unsupported_grant_type",
                                    "Only grant_type=refresh_token is emulated.")
            sent = form.get("refresh_token", "")
            if now >= self.refresh_tokens.get(sent, -math.inf):
                return _oauth_error(400, "invalid_grant",
                                    "The provided authorization grant is invalid, expired, "
                                    "revoked, or was issued to another client.")
            wait = self._last_mint + options.mint_window - now
            if wait > 0:  # §2: more than one mint per user a minute
                response = _oauth_error(429, "rate_limited",
                                        "Too many token requests; try again later.")
                response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                return response
            self._last_mint = now
            if options.revoke_on_refresh:
                self.access_tokens.clear()
            access = f"oa-access-{next(self._serial)}-{secrets.token_hex(8)}"
            self.access_tokens[access] = now + options.token_lifetime
            body: dict[str, t.Any] = {
                "access_token": access, "token_type": "bearer",
                "expires_in": int(options.token_lifetime),
                "scope": "phoneNumbers.all prospects.read",
                "created_at": int(self.clock.time())}
            if options.rotation in ("rotate", "rotate-keep-old"):
                body["refresh_token"] = f"oa-refresh-{secrets.token_hex(12)}"
                self.refresh_tokens[body["refresh_token"]] = (
                    now + options.refresh_token_lifetime)
                if options.rotation == "rotate":
                    del self.refresh_tokens[sent]
            elif options.rotation == "same":
                body["refresh_token"] = sent
        return Response(200, body, headers={"Cache-Control": "no-store"}, log_body=False)

    def _quota_headers(self, remaining: int, reset_in: float) -> dict[str, str]:
        """§8: limit, remaining, and the reset time as Unix epoch seconds; with
        ``second_limit``, two values each (the hour's first)."""
        limit, left = str(self.limiter.limit), str(remaining)
        second = self.options.second_limit
        if second > 0:
            used = self.limiter.limit - remaining
            limit, left = f"{limit}, {second}", f"{left}, {max(0, second - used)}"
        return {"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": left,
                "X-RateLimit-Reset": str(math.ceil(self.clock.time() + reset_in))}

    def _refused(self, prospect: int | None) -> Response | None:
        """§7: 403 ``unauthorizedRequest`` for a phone of a prospect this user may not write."""
        if prospect is None or prospect not in self.options.refused_prospects:
            return None
        return _error(403, "unauthorizedRequest", "Unauthorized Request",
                      f"You are not allowed to modify phone numbers of prospect {prospect}.")

    def _route(self, request: Request) -> Response | Route:
        """The shared router; a known path with another method is a 405 with `Allow` [A]."""
        route = self.router.match(request.method, request.path)
        if isinstance(route, Route):
            return route
        if not route:
            return _error(404, "notFound", "Not Found", f"No route matches {request.path}.")
        response = _error(405, "methodNotAllowed", "Method Not Allowed",
                          f"{request.method.upper()} is not supported on {request.path.rstrip('/')}.")
        response.headers["Allow"] = ", ".join(route)
        return response

    # ---- rendering ---------------------------------------------------------------------------------
    def _render_phone(self, phone: dict[str, t.Any], fields: set[str] | None = None,
                      auth_meta: bool = False) -> dict[str, t.Any]:
        """§4/§9.2: integer id, singular type, every attribute present (null when empty)."""
        attributes = {name: iso(phone[name]) if kind == "time" else phone[name]
                      for name, (kind, _, _) in PHONE_ATTRS.items()}
        out: dict[str, t.Any] = {"type": "phoneNumber", "id": phone["id"],
                                 "attributes": self._sparse(attributes, fields)}
        if fields is None or "prospect" in fields:
            ref = {"type": "prospect", "id": phone["prospect"]} if phone["prospect"] is not None else None
            out["relationships"] = {"prospect": {"data": ref}}
        if auth_meta:  # §4: provideAuthorizationMeta=true
            out["meta"] = {"canWrite": True, "canDelete": True}
        return out

    def _render_prospect(self, prospect: dict[str, t.Any], fields: set[str] | None = None,
                         auth_meta: bool = False) -> dict[str, t.Any]:
        attributes = {name: iso(prospect[name]) if kind == "time" else prospect[name]
                      for name, (kind, _, _) in PROSPECT_ATTRS.items()}
        out: dict[str, t.Any] = {"type": "prospect", "id": prospect["id"],
                                 "attributes": self._sparse(attributes, fields)}
        if fields is None or "phoneNumbers" in fields:
            phones = [{"type": "phoneNumber", "id": p["id"]}
                      for p in self._phones_of(prospect["id"])]
            related = f"{PREFIX}/phoneNumbers?{quote('filter[prospect][id]')}={prospect['id']}"
            out["relationships"] = {"phoneNumbers": {"data": phones, "links": {"related": related}}}
        if auth_meta:
            out["meta"] = {"canWrite": True, "canDelete": True}
        return out

    @staticmethod
    def _sparse(attributes: dict[str, t.Any], fields: set[str] | None) -> dict[str, t.Any]:
        return attributes if fields is None else {k: v for k, v in attributes.items() if k in fields}

    def _phones_of(self, prospect_id: int) -> list[dict[str, t.Any]]:
        return [p for _, p in sorted(self.phones.items()) if p["prospect"] == prospect_id]

    def _document(self, status: int, kind: str, row: dict[str, t.Any], request: Request) -> Response:
        fields = self._fields(request, kind)
        if isinstance(fields, Response):
            return fields
        auth_meta = request.param("provideAuthorizationMeta", "false") == "true"
        render = self._render_phone if kind == "phoneNumber" else self._render_prospect
        return Response(status, {"data": render(row, fields, auth_meta)}, content_type=MEDIA_TYPE)

    @staticmethod
    def _fields(request: Request, kind: str) -> set[str] | Response | None:
        """§6: `fields[phoneNumber]=number,updatedAt`; unknown names -> 400 [I S7]."""
        known = {"phoneNumber": {*PHONE_ATTRS, "prospect"},
                 "prospect": {*PROSPECT_ATTRS, "phoneNumbers"}}
        wanted = request.param(f"fields[{kind}]")
        if wanted is None:
            return None
        names = {n.strip() for n in wanted.split(",") if n.strip()}
        unknown = sorted(names - known[kind])
        if unknown:
            return _bad(f"The field '{unknown[0]}' is not a known field of '{kind}'.",
                        parameter=f"fields[{kind}]", error_id="fieldsParameter.unknownResourceField")
        return names

    # ---- reading -------------------------------------------------------------------------------
    def _list_phones(self, request: Request, _: None) -> Response:
        return self._collection(request, "phoneNumber", PHONE_ATTRS, self.phones)

    def _list_prospects(self, request: Request, _: None) -> Response:
        return self._collection(request, "prospect", PROSPECT_ATTRS, self.prospects)

    def _show_phone(self, request: Request, ident: str) -> Response:
        phone = self.phones.get(int(ident)) if ident.isdigit() else None
        return _not_found("phoneNumber", ident) if phone is None else self._document(
            200, "phoneNumber", phone, request)

    def _show_prospect(self, request: Request, ident: str) -> Response:
        prospect = self.prospects.get(int(ident)) if ident.isdigit() else None
        return _not_found("prospect", ident) if prospect is None else self._document(
            200, "prospect", prospect, request)

    def _collection(self, request: Request, kind: str, attrs: dict[str, tuple[str, bool, bool]],
                    table: dict[int, dict[str, t.Any]]) -> Response:
        """§5/§6: filter, sort, then cursor (or deprecated offset) pagination."""
        new_syntax = request.param("newFilterSyntax", "false") == "true"
        checks: list[t.Callable[[dict[str, t.Any]], bool]] = []
        for key, value in request.query:
            if not key.startswith("filter["):
                continue
            check = self._filter(kind, attrs, key, value, new_syntax)
            if isinstance(check, Response):
                return check
            checks.append(check)
        sort = self._sort(request, attrs)
        if isinstance(sort, Response):
            return sort
        fields = self._fields(request, kind)
        if isinstance(fields, Response):
            return fields
        rows = [table[key] for key in sorted(table)]
        if checks:
            rows = [row for row in rows if all(check(row) for check in checks)]
        _sort_rows(rows, sort)
        page = self._page(request, rows, sort)
        if isinstance(page, Response):
            return page
        chunk, links = page
        auth_meta = request.param("provideAuthorizationMeta", "false") == "true"
        render = self._render_phone if kind == "phoneNumber" else self._render_prospect
        body: dict[str, t.Any] = {"data": [render(row, fields, auth_meta) for row in chunk]}
        if request.param("count", "false") == "true":  # §5: only when asked
            body["meta"] = {"count": min(len(rows), COUNT_TRUNCATED_AT),
                            "count_truncated": len(rows) > COUNT_TRUNCATED_AT}
        body["links"] = links
        return Response(200, body, content_type=MEDIA_TYPE)

    def _filter(self, kind: str, attrs: dict[str, tuple[str, bool, bool]], key: str, value: str,
                new_syntax: bool) -> Response | t.Callable[[dict[str, t.Any]], bool]:
        """§6 grammar: exact, `a,b` any-of, `a..b` inclusive, `neginf..b`, `a..inf`, `__null__`,
        `__notnull__`; `filter[prospect][id]` on phones; `filter[id]` everywhere [A]."""
        match = re.fullmatch(r"filter\[(\w+)\](?:\[(\w*)\])?", key)
        if match is None:
            return _bad(f"Malformed filter parameter '{key}'.", parameter=key)
        name, sub = match.group(1), match.group(2)
        if kind == "phoneNumber" and name == "prospect" and sub == "id":
            column, kind_of = "prospect", "int"
        elif name == "id" and sub is None:
            column, kind_of = "id", "int"
        elif name in attrs and attrs[name][2] and (sub is None or (new_syntax and sub in (
                "", "gte", "lte", "gt", "lt"))):
            column, kind_of = name, attrs[name][0]
        elif name in attrs and attrs[name][2]:
            return _bad(f"Unsupported filter '{key}' (newFilterSyntax=true enables [] and gte/lte).",
                        parameter=key)
        elif name in attrs or (kind == "prospect" and name == "phoneNumbers"):  # §6, §9.7 [A]
            return _bad(f"The attribute '{name}' of '{kind}' is not filterable.", parameter=key,
                        error_id="filterParameter.unfilterableAttribute")
        else:
            return _bad(f"'{name}' is not a known attribute of '{kind}'.", parameter=key,
                        error_id="filterParameter.unknownAttribute")

        def convert(raw: str) -> t.Any:
            if kind_of == "time":
                micros = parse_time(raw)
                if micros is None:
                    raise ValueError(raw)
                return micros
            if kind_of == "int":
                return int(raw.strip())
            return raw

        def cell(row: dict[str, t.Any]) -> t.Any:
            value = row[column]
            return value * 1000 if kind_of == "time" and value is not None else value

        try:
            if sub in ("gte", "lte", "gt", "lt"):  # newFilterSyntax comparison
                bound = convert(value)
                ops = {"gte": lambda v: v >= bound, "lte": lambda v: v <= bound,
                       "gt": lambda v: v > bound, "lt": lambda v: v < bound}
                op = ops[sub]
                return lambda row: cell(row) is not None and op(cell(row))
            parts = [value] if sub == "" else value.split(",")  # `filter[x][]=` values are literal
            if sub == "" or not any(p in ("__null__", "__notnull__") or ".." in p for p in parts):
                # Values only (a listing of 250 prospects' phones): one set lookup a row, not
                # 250 comparisons, so the emulator answers within its latency.
                values = {convert(part) for part in parts}
                return lambda row: cell(row) in values
            tests = [self._term(part, convert, literal=sub == "") for part in parts]
        except ValueError:
            return _bad(f"Invalid value '{value}' for filter '{key}'.", parameter=key)
        return lambda row: any(test(cell(row)) for test in tests)

    @staticmethod
    def _term(part: str, convert: t.Callable[[str], t.Any], literal: bool) -> t.Callable[[t.Any], bool]:
        if not literal and part == "__null__":
            return lambda v: v is None
        if not literal and part == "__notnull__":
            return lambda v: v is not None
        if not literal and ".." in part:
            low_raw, _, high_raw = part.partition("..")
            low = None if low_raw == "neginf" else convert(low_raw)
            high = None if high_raw == "inf" else convert(high_raw)
            return lambda v: v is not None and (low is None or v >= low) and (high is None or v <= high)
        wanted = convert(part)
        return lambda v: v == wanted

    @staticmethod
    def _sort(request: Request, attrs: dict[str, tuple[str, bool, bool]]
              ) -> Response | list[tuple[str, bool]]:
        """§6: `sort=updatedAt`, `-updatedAt`, comma lists; `id` always; id breaks ties."""
        raw = request.param("sort")
        spec: list[tuple[str, bool]] = []
        for part in (raw.split(",") if raw else []):
            name, desc = (part[1:], True) if part.startswith("-") else (part, False)
            if name != "id" and not (name in attrs and attrs[name][2]):
                return _bad(f"The attribute '{name}' is not sortable.", parameter="sort",
                            error_id="sortParameter.unsortableAttribute")
            spec.append((name, desc))
        if not any(name == "id" for name, _ in spec):
            spec.append(("id", False))
        return spec

    def _page(self, request: Request, rows: list[dict[str, t.Any]], sort: list[tuple[str, bool]]
              ) -> Response | tuple[list[dict[str, t.Any]], dict[str, str]]:
        """§5: cursor pages (`page[size]`, opaque `page[after]`/`page[before]`) or offset pages."""
        origin = self.options.link_origin.rstrip("/") or f"http://{request.host or '127.0.0.1'}"
        base = f"{origin}{request.path.rstrip('/')}"
        kept = [(k, v) for k, v in request.query if not k.startswith("page[")]
        if request.param("page[limit]") is not None or request.param("page[offset]") is not None:
            return self._offset_page(request, rows, base, kept)
        size = _int_param(request, "page[size]", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        if isinstance(size, Response):
            return size
        after, before = request.param("page[after]"), request.param("page[before]")
        cursor: list[t.Any] | None = None
        sort_names = ",".join(("-" if d else "") + n for n, d in sort)
        if after is not None or before is not None:
            cursor = _decode_cursor(after if after is not None else before or "", sort_names)
            if cursor is None:
                name = "page[after]" if after is not None else "page[before]"
                return _bad(f"Invalid cursor in {name}.", parameter=name,
                            error_id="pageParameter.invalidCursor")
        # Rows are in `_compare` order with unique keys (id breaks ties): a cursor's place is
        # found by bisection, not by comparing every row.
        start = 0
        if after is not None:
            start = _bisect(rows, cursor, sort, after=True)
        elif before is not None:
            start = max(0, _bisect(rows, cursor, sort, after=False) - size)
        end = min(len(rows), start + size) if before is None else _bisect(rows, cursor, sort, after=False)
        chunk = rows[start:end]

        def link(extra: list[tuple[str, str]]) -> str:
            pairs = [*kept, ("page[size]", str(size)), *extra]
            return base + "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)

        links = {"first": link([])}
        if chunk:
            if start > 0:
                links["prev"] = link([("page[before]", _encode_cursor(_key(chunk[0], sort), sort_names))])
            if end < len(rows):
                links["next"] = link([("page[after]", _encode_cursor(_key(chunk[-1], sort), sort_names))])
        return chunk, links

    @staticmethod
    def _offset_page(request: Request, rows: list[dict[str, t.Any]], base: str,
                     kept: list[tuple[str, str]]) -> Response | tuple[list[dict[str, t.Any]], dict[str, str]]:
        """§5 deprecated: `page[limit]` <= 1000, `page[offset]` <= 10000."""
        limit = _int_param(request, "page[limit]", DEFAULT_PAGE_SIZE, 1, MAX_LIMIT)
        if isinstance(limit, Response):
            return limit
        offset = _int_param(request, "page[offset]", 0, 0, MAX_OFFSET)
        if isinstance(offset, Response):
            return offset
        chunk = rows[offset: offset + limit]

        def link(at: int) -> str:
            pairs = [*kept, ("page[limit]", str(limit)), ("page[offset]", str(at))]
            return base + "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)

        links = {"first": link(0)}
        if offset > 0:
            links["prev"] = link(max(0, offset - limit))
        if offset + limit < len(rows) and offset + limit <= MAX_OFFSET:
            links["next"] = link(offset + limit)
        return chunk, links

    # ---- writing -------------------------------------------------------------------------------
    def _tick(self) -> int:
        """A strictly increasing write clock (ms), wall time or later, after every seeded stamp."""
        self._last_write = max(self._last_write + 1, int(time.time() * 1000))
        return self._last_write

    def _body(self, request: Request, ident: int | None) -> Response | dict[str, t.Any]:
        """Parse `{"data": {...}}`; check type (and id for PATCH, §4, §9.4 [A] 422)."""
        try:
            document = request.json()
        except ValueError:
            return _bad("The request body is not valid JSON.", error_id="invalidJson")
        data = document.get("data") if isinstance(document, dict) else None
        if not isinstance(data, dict):
            return _invalid("The request body must contain a 'data' object.", "/data")
        if data.get("type") != "phoneNumber":
            return _invalid("'data.type' must be 'phoneNumber'.", "/data/type")
        if ident is not None and str(data.get("id")) != str(ident):
            return _invalid(f"'data.id' must match the URL id '{ident}'.", "/data/id")
        for part in ("attributes", "relationships"):
            if not isinstance(data.get(part, {}), dict):
                return _invalid(f"'data.{part}' must be an object.", f"/data/{part}")
        return data

    def _changes(self, data: dict[str, t.Any], creating: bool) -> Response | dict[str, t.Any]:
        """Writable attributes and the prospect relationship; read-only ones are ignored (§9.3)."""
        changes: dict[str, t.Any] = {}
        for name, value in data.get("attributes", {}).items():
            if name not in PHONE_ATTRS:
                return _error(400, "permittedParams.unknownAttribute", "Unknown Attribute",
                              f"'{name}' is not a known attribute of 'phoneNumber'.",
                              pointer=f"/data/attributes/{name}")
            kind, writable, _ = PHONE_ATTRS[name]
            if not writable:
                continue
            pointer = f"/data/attributes/{name}"
            if kind == "int" and value is not None and (
                    not isinstance(value, int) or isinstance(value, bool)):
                return _invalid(f"'{name}' must be an integer.", pointer)
            if kind == "str" and value is not None and not isinstance(value, str):
                return _invalid(f"'{name}' must be a string.", pointer)
            if kind == "str" and value is not None and len(value) > 255:
                return _invalid(f"'{name}' is too long (maximum is 255 characters).", pointer)
            changes[name] = value
        if creating and not (isinstance(changes.get("number"), str) and changes["number"].strip()):
            return _invalid("'number' can't be blank.", "/data/attributes/number")
        if not creating and "number" in changes and not (changes["number"] or "").strip():
            return _invalid("'number' can't be blank.", "/data/attributes/number")
        relationships = data.get("relationships", {})
        for name in relationships:
            if name != "prospect":
                return _error(400, "permittedParams.unknownRelationship", "Unknown Relationship",
                              f"'{name}' is not a known relationship of 'phoneNumber'.",
                              pointer=f"/data/relationships/{name}")
        if creating or "prospect" in relationships:
            ref = relationships.get("prospect")
            ref = ref.get("data") if isinstance(ref, dict) else None
            ident = ref.get("id") if isinstance(ref, dict) and ref.get("type") == "prospect" else None
            if isinstance(ident, bool) or not isinstance(ident, (int, str)) or not str(ident).isdigit() \
                    or int(ident) not in self.prospects:
                return _invalid("'prospect' must reference an existing prospect.",
                                "/data/relationships/prospect")
            changes["prospect"] = int(ident)
        return changes

    def _create_phone(self, request: Request, _: None) -> Response:
        data = self._body(request, None)
        if isinstance(data, Response):
            return data
        changes = self._changes(data, creating=True)
        if isinstance(changes, Response):
            return changes
        refused = self._refused(changes["prospect"])
        if refused is not None:
            return refused
        now, phone_id = self._tick(), self._next_id
        self._next_id += 1
        phone = {"id": phone_id, "prospect": changes["prospect"], "number": changes["number"],
                 "rawNumber": changes["number"],  # [A] the unformatted input, unless sent
                 "phoneType": None, "extension": None, "countryCode": None,
                 "order": len(self._phones_of(changes["prospect"])),  # [A] appended to the list
                 "status": None, "statusChangedAt": None, "createdAt": now, "updatedAt": now}
        phone.update(changes)
        if phone["status"] is not None:
            phone["statusChangedAt"] = now
        self.phones[phone_id] = phone
        return self._document(201, "phoneNumber", phone, request)

    def _update_phone(self, request: Request, ident: str) -> Response:
        phone = self.phones.get(int(ident)) if ident.isdigit() else None
        if phone is None:
            return _not_found("phoneNumber", ident)
        refused = self._refused(phone["prospect"])
        if refused is not None:
            return refused
        data = self._body(request, phone["id"])
        if isinstance(data, Response):
            return data
        changes = self._changes(data, creating=False)
        if isinstance(changes, Response):
            return changes
        now = self._tick()
        if "status" in changes and changes["status"] != phone["status"]:
            phone["statusChangedAt"] = now  # [A]
        phone.update(changes)
        phone["updatedAt"] = now  # every write bumps updatedAt (incremental readers see it)
        return self._document(200, "phoneNumber", phone, request)

    def _delete_phone(self, request: Request, ident: str) -> Response:
        phone = self.phones.get(int(ident)) if ident.isdigit() else None
        if phone is None:
            return _not_found("phoneNumber", ident)
        del self.phones[phone["id"]]  # §6: no tombstone
        self._tick()
        return Response(204)


def _key(row: dict[str, t.Any], sort: list[tuple[str, bool]]) -> list[t.Any]:
    return [row[name] for name, _ in sort]


def _sort_rows(rows: list[dict[str, t.Any]], sort: list[tuple[str, bool]]) -> None:
    """Sort rows given in id order in the order of `_compare`: one stable pass per field, the
    last first.

    Key passes rather than `cmp_to_key(_compare)`: the same order, several times faster, so
    paging a few thousand rows costs the server far less than a request's latency.
    """
    passes = list(reversed(sort))
    if passes[0] == ("id", False):
        passes = passes[1:]  # the rows come in id order (the table is read by id)
    for name, desc in passes:
        # (False,) sorts before (True, value): nulls first ascending, last once reversed.
        rows.sort(key=lambda r, n=name: (False,) if r[n] is None else (True, r[n]), reverse=desc)


def _bisect(rows: list[dict[str, t.Any]], cursor: list[t.Any] | None, sort: list[tuple[str, bool]],
            *, after: bool) -> int:
    """The index of the first row past `cursor` (`after`), else of the first not before it."""
    order = functools.cmp_to_key(lambda a, b: _compare(a, b, sort))
    find = bisect.bisect_right if after else bisect.bisect_left
    return find(rows, order(cursor), key=lambda row: order(_key(row, sort)))


def _compare(left: list[t.Any], right: list[t.Any], sort: list[tuple[str, bool]]) -> int:
    """Compare two sort keys; nulls sort first ascending (last descending) [A]."""
    for a, b, (_, desc) in zip(left, right, sort, strict=True):
        if a == b:
            continue
        if a is None or b is None:
            result = -1 if a is None else 1
        else:
            result = -1 if a < b else 1
        return -result if desc else result
    return 0


def _encode_cursor(key: list[t.Any], sort_names: str) -> str:
    """Opaque to clients: the last row's sort key, bound to the sort it came from."""
    raw = json.dumps({"s": sort_names, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort_names: str) -> list[t.Any] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (ValueError, binascii.Error):
        return None
    if not isinstance(decoded, dict) or decoded.get("s") != sort_names or not isinstance(
            decoded.get("k"), list):
        return None
    key = decoded["k"]
    return key if len(key) == sort_names.count(",") + 1 else None


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int | Response:
    """[A] out-of-range page parameters are a 400, never silently clamped."""
    raw = request.param(name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d+", raw.strip()) or not low <= int(raw) <= high:
        return _bad(f"'{name}' must be an integer between {low} and {high}.", parameter=name,
                    error_id="pageParameter.invalid")
    return int(raw)


APP = OutreachApp
