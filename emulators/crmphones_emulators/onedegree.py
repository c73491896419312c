"""One Degree Resource Server API v1 emulator: phones on organizations, locations and opportunities.

Written from /work/shared/api/onedegree.md alone; section numbers in comments refer to that file.
Reads need the `api_key` query parameter; POST/PUT/DELETE also need `1deg-Date` and a
`1deg-Signature` chained HMAC-SHA256 (hex) over the exact request body bytes (§2).
"""

from __future__ import annotations

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
from urllib.parse import parse_qsl

from crmphones_emulators.clock import SYSTEM_CLOCK
from crmphones_emulators.fake import fake_company, fake_name, messy_phone
from crmphones_emulators.server import RateLimiter, RateOptions, Response, Route, Router, option

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from crmphones_emulators.clock import Clock
    from crmphones_emulators.server import Request

PREFIX = "/v1"  # §1: version only in the path
JSON_TYPE = "application/json; charset=utf-8"  # §9 error envelope content type
DEFAULT_PER_PAGE = 10  # §5 [D]
MAX_PER_PAGE = 100  # §5 max is [U]; [A] larger values are clamped to 100
DATE_WINDOW = 60.0  # §2: requests more than 60 s away from server time are refused
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # §2: `1deg-Date`, UTC, no milliseconds
PHONE_TYPES = ("main", "main", "fax", "Office", "", "mobile", "TTY")  # §7 examples; mobile/TTY [A]
WRITABLE = ("digits", "phone_type", "is_primary")  # §7; everything else is read-only
OWNER_TYPES = {"organization": "Organization", "location": "Location", "opportunity": "Opportunity"}  # §7 [I]
CITIES = (("San Francisco", "CA", "941"), ("Oakland", "CA", "946"), ("Berkeley", "CA", "947"),
          ("San Jose", "CA", "951"), ("Richmond", "CA", "948"))
STREETS = ("Market St", "Mission St", "Broadway", "Telegraph Ave", "Valencia St", "Grand Ave")
PROGRAMS = ("Food Pantry", "Legal Aid Clinic", "Job Training", "Emergency Shelter", "Tutoring",
            "Health Screening", "Housing Counseling", "Youth Mentoring", "Hot Meals", "ESL Classes")
_EPOCH_START = int(datetime(2015, 1, 1, tzinfo=timezone.utc).timestamp())
_EPOCH_END = int(datetime(2019, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp())
_TRUE, _FALSE = ("true", "1", "t", "yes", "on"), ("false", "0", "f", "no", "off", "")
_OPERATORS: dict[str, t.Callable[[t.Any, t.Any], bool]] = {  # §6 query[attributes] operators
    "equal_to": lambda a, b: a == b, "less_than": lambda a, b: a < b,
    "greater_than": lambda a, b: a > b, "less_than_or_equal_to": lambda a, b: a <= b,
    "greater_than_or_equal_to": lambda a, b: a >= b,
}


def iso(epoch: int) -> str:
    """§1: ISO 8601 UTC; the examples end in `.000Z`."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _epoch(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def sign(secret: str, body: bytes, date: str) -> str:
    """§2 current revision: hex(SHA256(hex(HMAC(hex(HMAC(secret, body)), date))))."""
    first = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    second = hmac.new(first.encode(), date.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(second.encode()).hexdigest()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """§9: `{"status":"error","error":"<message>"}`."""
    return Response(status, {"status": "error", "error": message}, headers=headers or {},
                    content_type=JSON_TYPE)


def _ok(status: int, body: t.Any) -> Response:
    return Response(status, body, content_type=JSON_TYPE)


def _comparable(stored: t.Any, wanted: str) -> tuple[t.Any, t.Any]:
    """Numbers compare as numbers, timestamps as instants, everything else as text (§6) [A]."""
    if isinstance(stored, int) and not isinstance(stored, bool) and re.fullmatch(r"-?\d+", wanted.strip()):
        return stored, int(wanted)
    if isinstance(stored, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", stored):
        try:
            parsed = datetime.fromisoformat(wanted.strip().replace("Z", "+00:00"))
        except ValueError:
            return stored, wanted
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return _epoch(stored), parsed.timestamp()
    return str(stored), wanted


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "org"


def _ids(value: str | Iterable[int | str] | None) -> frozenset[int]:
    """Organization ids from a comma list (command line) or a list (config)."""
    items = value.split(",") if isinstance(value, str) else (value or ())
    return frozenset(int(item) for item in items if str(item).strip())


@dataclass
class OneDegreeOptions(RateOptions):
    """One Degree's switches (`OneDegreeApp` keywords, `/_emulator/config` keys, CLI options)."""

    api_key: str = option("emulator-key", "the accepted api_key (§2)")
    # [A] §2 never says how the secret is issued; None derives one so a bare --api-key works.
    api_secret: str | None = option(None, "secret for 1deg-Signature (default: '<api-key>-secret')")
    rate_limit: int = option(100_000, "requests per window; none documented (§9), [A] fixed window")
    rate_window: float = option(3600.0, "window length in seconds")
    date_window: float = option(DATE_WINDOW, "allowed 1deg-Date skew in seconds (§2: 60)")
    foreign_organizations: frozenset[int] = option(
        frozenset(), "comma list of organization ids the key does not own (phone writes 403, §2)",
        parse=_ids)
    wrap_lists: bool = option(
        False, 'collections as {"organizations": [...]} (§5 [U]) instead of a bare array')
    touch_parents: bool = option(
        True, "a phone write bumps its owner's and organization's updated_at [A]",
        flag="--no-touch-parents")
    validation_status: int = option(400, "status of validation errors (§9: none documented, [A] 400)")
    index_embeds_phones: bool = option(
        True, "`GET /organizations` items embed phones and locations as a show does (§4 [I]); "
        "off, a client must ask each one", flag="--no-index-phones")
    primary_clears_others: bool = option(
        True, "setting is_primary on a phone clears it on the owner's others (§8 [A], not "
        "documented); off, the others keep theirs", flag="--primary-keeps-others")
    opportunity_location_routes: bool = option(
        False, "also serve the older revisions' `opportunities/:id/locations/:id/phones` "
        "routes (§3; the current docs list a location's phones only under the organization)")

    @property
    def secret(self) -> str:
        return self.api_secret if self.api_secret is not None else f"{self.api_key}-secret"


class OneDegreeApp:
    """In-memory One Degree account: organizations with locations and opportunities, all with phones."""

    name = "onedegree"
    options_type = OneDegreeOptions

    def __init__(self, records: int = 100, parents: int | None = None, seed: int = 1,
                 clock: Clock = SYSTEM_CLOCK, **options: t.Any) -> None:
        """Seed the account.

        Args:
            records: number of phones (ids 1..records) spread over organizations/locations/opportunities.
            parents: number of organizations (ids 1..parents); default max(1, records // 3).
            seed: same seed and parents -> same organizations, locations and opportunities.
            clock: what the quota window counts in.
            options: `OneDegreeOptions` fields.
        """
        parents = max(1, records // 3) if parents is None else parents
        if parents < 0 or records < 0:
            msg = "records and parents must not be negative"
            raise ValueError(msg)
        if records and not parents:
            msg = f"{records} phones need at least one organization"
            raise ValueError(msg)
        self._seeding = (records, parents, seed)
        self._initial = OneDegreeOptions(**options)
        self._initial.update(options)  # a list of foreign organizations becomes a set of ids
        self.clock = clock
        self._lock = threading.RLock()
        self.router = self._router()
        self.reset()

    def reset(self) -> None:
        """Back to the seeded account, its options as built and a fresh quota window."""
        records, parents, seed = self._seeding
        with self._lock:
            self.options = replace(self._initial)
            self.limiter = RateLimiter(self.options, self.clock)
            self.organizations: dict[int, dict[str, t.Any]] = {}
            self.locations: dict[int, dict[str, t.Any]] = {}
            self.opportunities: dict[int, dict[str, t.Any]] = {}
            self.phones: dict[int, dict[str, t.Any]] = {}
            # Each owner's phones by id, beside `phones`: an owner's phones cost its own count.
            self._by_owner: dict[tuple[str, int], dict[int, dict[str, t.Any]]] = {}
            self._seed_parents(Random(f"onedegree-parents-{seed}"), parents)
            self._seed_phones(Random(f"onedegree-phones-{seed}-{records}"), records)
            self._last_write = _EPOCH_END  # every seeded timestamp is <= _EPOCH_END

    # ---- seeding -------------------------------------------------------------------------------
    def _seed_parents(self, rng: Random, parents: int) -> None:
        """Organizations, their locations and opportunities depend on (seed, parents) only."""
        slugs: set[str] = set()
        for org_id in range(1, parents + 1):
            born = rng.randint(_EPOCH_START, _EPOCH_END - 90 * 86400)
            name = fake_company(rng)
            slug, n = _slugify(name), 2
            while slug in slugs:
                slug, n = f"{_slugify(name)}-{n}", n + 1
            slugs.add(slug)
            self.organizations[org_id] = {
                "id": org_id, "name": name, "slug": slug,
                "description": f"{name} serves the community.",
                "website": f"https://{slug}.example.org",
                "created_at": iso(born), "updated_at": iso(rng.randint(born, _EPOCH_END)),
            }
            location_ids = []
            for _ in range(rng.choice((0, 1, 1, 2, 3))):
                city, state, zip3 = rng.choice(CITIES)
                created = rng.randint(born, _EPOCH_END)
                location_id = len(self.locations) + 1
                location_ids.append(location_id)
                self.locations[location_id] = {
                    "id": location_id, "organization_id": org_id, "name": f"{city} office",
                    "address": f"{rng.randint(1, 4999)} {rng.choice(STREETS)}", "unit": None,
                    "city": city, "state": state, "zip": f"{zip3}{rng.randint(0, 99):02d}",
                    "created_at": iso(created), "updated_at": iso(rng.randint(created, _EPOCH_END)),
                }
            for _ in range(rng.choice((0, 1, 2, 3))):
                created = rng.randint(born, _EPOCH_END)
                opportunity_id = len(self.opportunities) + 1
                title = rng.choice(PROGRAMS)
                self.opportunities[opportunity_id] = {
                    "id": opportunity_id, "organization_id": org_id, "title": title,
                    "slug": f"{_slugify(title)}-{opportunity_id}",
                    "description": f"{title} run by {name}; ask for {fake_name(rng)}.",
                    # [A] opportunity locations are references to the organization's own locations
                    # (current docs point opportunity-location phones to the same phone page, §3).
                    "location_ids": sorted(rng.sample(location_ids, rng.randint(0, len(location_ids)))),
                    "created_at": iso(created), "updated_at": iso(rng.randint(created, _EPOCH_END)),
                }

    def _seed_phones(self, rng: Random, records: int) -> None:
        owners = [("Organization", o) for o in self.organizations.values()]
        owners += [("Location", x) for x in self.locations.values()]
        owners += [("Opportunity", x) for x in self.opportunities.values()]
        drafts = []
        for _ in range(records):
            kind, owner = rng.choice(owners)
            born, last = _epoch(owner["created_at"]), _epoch(owner["updated_at"])
            created = rng.randint(born, last)
            drafts.append({"digits": messy_phone(rng), "phone_type": rng.choice(PHONE_TYPES),
                           "is_primary": False, "phoneable_id": owner["id"], "phoneable_type": kind,
                           "created_at": iso(created), "updated_at": iso(rng.randint(created, last))})
        drafts.sort(key=lambda p: (p["created_at"], p["phoneable_type"], p["phoneable_id"]))
        groups: dict[tuple[str, int], list[dict[str, t.Any]]] = {}
        for phone_id, draft in enumerate(drafts, start=1):
            self.phones[phone_id] = {"id": phone_id, **draft}
            owner_key = (draft["phoneable_type"], draft["phoneable_id"])
            groups.setdefault(owner_key, []).append(self.phones[phone_id])
            self._by_owner.setdefault(owner_key, {})[phone_id] = self.phones[phone_id]
        self._last_phone_id = len(drafts)
        for group in groups.values():  # §7: the only phone is primary; else at most one is [A]
            if len(group) == 1 or rng.random() < 0.85:
                rng.choice(group)["is_primary"] = True

    # ---- DialectApp protocol ---------------------------------------------------------------------
    def snapshot(self) -> dict[str, t.Any]:
        """Flat state sorted by id; each phone also carries its `organization_id`."""
        with self._lock:
            return {
                "organizations": [dict(self.organizations[i]) for i in sorted(self.organizations)],
                "locations": [dict(self.locations[i]) for i in sorted(self.locations)],
                "opportunities": [dict(self.opportunities[i], location_ids=list(
                    self.opportunities[i]["location_ids"])) for i in sorted(self.opportunities)],
                "phones": [dict(self._render_phone(self.phones[i]),
                                organization_id=self._organization_of(self.phones[i]))
                           for i in sorted(self.phones)],
            }

    def configure(self, options: dict[str, t.Any]) -> None:
        """Runtime switches; unknown keys are ignored (contract)."""
        with self._lock:
            self.options.update(options)

    def handle(self, request: Request) -> Response:
        """Route first (Rails: unknown routes 404), then api_key, signature, throttle, action."""
        path = request.path.rstrip("/")
        if path.endswith(".xml") and path.startswith(PREFIX + "/"):
            # §1/§10.4: XML exists upstream; [A] the emulator answers 406
            return _error(406, "XML responses are not supported by this emulator; drop the .xml suffix.")
        # [A] older revisions' `resources/:id` and `providers/:id` are aliases of organizations (§3).
        path = re.sub(rf"^{PREFIX}/(resources|providers)(?=/|$)", f"{PREFIX}/organizations",
                      path.removesuffix(".json"))
        method = request.method.upper()
        route = self.router.match(method, path)
        if not isinstance(route, Route):  # Rails: no route for the path or the verb -> 404 [I]
            return _error(404, "Not found.")
        body = self._parse_body(request) if method in ("POST", "PUT", "DELETE") else {}
        denied = self._authenticate(request, method, body)
        if denied is not None:
            return denied
        allowed, _, reset_in = self.limiter.take()
        if not allowed:  # §9 none documented; [A] 429 + Retry-After in whole seconds
            return _error(429, "Rate limit exceeded.", {"Retry-After": str(max(1, math.ceil(reset_in)))})
        with self._lock:
            return route.handler(request, body, *route.args)

    # ---- auth (§2) -------------------------------------------------------------------------------
    @staticmethod
    def _parse_body(request: Request) -> dict[str, t.Any] | None:
        """JSON object, or Rails-style form params (`phone[digits]=...`) [A]; None if unreadable."""
        if not request.body:
            return {}
        content_type = request.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" in content_type:
            parsed: dict[str, t.Any] = {}
            for key, value in parse_qsl(request.body.decode(errors="replace"), keep_blank_values=True):
                match = re.fullmatch(r"(\w+)\[(\w+)\]", key)
                if match:
                    parsed.setdefault(match.group(1), {})[match.group(2)] = value
                else:
                    parsed[key] = value
            return parsed
        try:
            body = json.loads(request.body)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _authenticate(self, request: Request, method: str, body: dict[str, t.Any] | None) -> Response | None:
        key = request.param("api_key")
        if key is None and body and isinstance(body.get("api_key"), str):  # §2 O5: key in JSON body [A]
            key = body["api_key"]
        if not key:
            return _error(400, "Missing API key.")  # §2 [D] verbatim
        if not hmac.compare_digest(key.encode(), self.options.api_key.encode()):
            return _error(401, "Invalid API key.")  # §9: 401 invalid key [D]; message [A]
        if method not in ("POST", "PUT", "DELETE"):
            return None
        date = request.headers.get("1deg-date", "")
        signature = request.headers.get("1deg-signature", "")
        if not date or not signature:
            return _error(401, "Missing 1deg-Date or 1deg-Signature header.")
        try:  # §2: exactly `YYYY-MM-DDTHH:mm:ssZ`; [A] any other shape is refused
            stamp = datetime.strptime(date, DATE_FORMAT).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            return _error(401, "Invalid 1deg-Date header.")
        if abs(time.time() - stamp) > self.options.date_window:  # §2 / §9 [I]: stale or future -> 401
            return _error(401, "Request date is too far from server time.")
        # §2 current revision over the exact body bytes (empty string when there is no body).
        # [A] lowercase hex only, compared exactly; the superseded sorted-params scheme is not accepted.
        expected = sign(self.options.secret, request.body or b"", date)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return _error(401, "Invalid signature.")
        return None

    # ---- routing ---------------------------------------------------------------------------------
    def _router(self) -> Router:
        seg = r"([^/]+)"
        num = r"(\d+)"
        org = rf"/organizations/{seg}"
        table: list[tuple[str, dict[str, t.Callable[..., Response]]]] = [
            (r"/organizations", {"GET": self._list_organizations}),
            (org, {"GET": self._show_organization}),
            (rf"{org}/locations", {"GET": self._list_locations}),
            (rf"{org}/locations/{num}", {"GET": self._show_location}),
            (rf"{org}/opportunities", {"GET": self._list_org_opportunities}),
            (rf"{org}/opportunities/{seg}", {"GET": self._show_org_opportunity}),
            (r"/opportunities", {"GET": self._list_opportunities}),
            (rf"/opportunities/{seg}", {"GET": self._show_opportunity}),
        ]
        # §3 phone routes; `GET .../phones/:id` is [U] upstream, served here [A].
        owners = [
            ("organization", rf"{org}()()"),
            ("opportunity", rf"{org}/opportunities/{seg}()"),
            ("location", rf"{org}/locations/{num}()"),
            # older revisions' opportunity-location phones = the location's phones [A] (§3)
            ("location", rf"{org}/opportunities/{seg}/locations/{num}"),
        ]
        for kind, stem in owners:
            table.append((rf"{stem}/phones", {
                "GET": self._phones_handler(kind, "list"), "POST": self._phones_handler(kind, "create")}))
            table.append((rf"{stem}/phones/{num}", {
                "GET": self._phones_handler(kind, "show"), "PUT": self._phones_handler(kind, "update"),
                "DELETE": self._phones_handler(kind, "delete")}))
        return Router(PREFIX, table)

    def _phones_handler(self, kind: str, action: str) -> t.Callable[..., Response]:
        def run(request: Request, body: dict[str, t.Any] | None, org_ref: str, sub_ref: str,
                loc_ref: str, phone_ref: str | None = None) -> Response:
            if loc_ref and not self.options.opportunity_location_routes:
                return _error(404, "Not found.")  # no such route in the current docs (§3)
            owner = self._owner(kind, org_ref, sub_ref, loc_ref)
            if isinstance(owner, Response):
                return owner
            if action in ("list", "show"):
                phones = self._phones_of(*owner)
                if action == "list":  # §5 [I]: "all phone numbers" -> unpaginated bare array
                    return self._collection("phones", [self._render_phone(p) for p in phones])
                phone = next((p for p in phones if p["id"] == int(phone_ref or 0)), None)
                if phone is None:
                    return _error(404, "Phone not found.")
                return _ok(200, self._render_phone(phone))
            return self._write(action, owner, body, phone_ref)
        return run

    def _owner(self, kind: str, org_ref: str, sub_ref: str, loc_ref: str) -> tuple[str, int] | Response:
        """Resolve the phoneable; 404 when any parent is missing or belongs to another organization."""
        organization = self._find_organization(org_ref)
        if organization is None:
            return _error(404, "Organization not found.")
        if kind == "organization":
            return "Organization", organization["id"]
        if kind == "opportunity" or (kind == "location" and loc_ref):
            opportunity = self._find_opportunity(sub_ref, organization["id"])
            if opportunity is None:
                return _error(404, "Opportunity not found.")
            if kind == "opportunity":
                return "Opportunity", opportunity["id"]
            if int(loc_ref) not in opportunity["location_ids"]:
                return _error(404, "Location not found.")
            sub_ref = loc_ref
        location = self.locations.get(int(sub_ref))
        if location is None or location["organization_id"] != organization["id"]:
            return _error(404, "Location not found.")
        return "Location", location["id"]

    def _find_organization(self, ref: str) -> dict[str, t.Any] | None:
        """§4/§10.3: numeric id or slug."""
        if ref.isdigit():
            return self.organizations.get(int(ref))
        return next((o for o in self.organizations.values() if o["slug"] == ref), None)

    def _find_opportunity(self, ref: str, organization_id: int | None = None) -> dict[str, t.Any] | None:
        if ref.isdigit():
            found = self.opportunities.get(int(ref))
        else:
            found = next((o for o in self.opportunities.values() if o["slug"] == ref), None)
        if found is None or (organization_id is not None and found["organization_id"] != organization_id):
            return None
        return found

    # ---- rendering ---------------------------------------------------------------------------------
    @staticmethod
    def _render_phone(phone: dict[str, t.Any]) -> dict[str, t.Any]:
        """§7: the same schema on every owner."""
        return {key: phone[key] for key in ("id", "digits", "phone_type", "is_primary", "phoneable_id",
                                            "phoneable_type", "created_at", "updated_at")}

    def _phones_of(self, kind: str, owner_id: int) -> list[dict[str, t.Any]]:
        return [p for _, p in sorted(self._by_owner.get((kind, owner_id), {}).items())]

    def _organization_of(self, phone: dict[str, t.Any]) -> int:
        kind, owner_id = phone["phoneable_type"], phone["phoneable_id"]
        if kind == "Organization":
            return owner_id
        table = self.locations if kind == "Location" else self.opportunities
        return table[owner_id]["organization_id"]

    def _render_location(self, location: dict[str, t.Any]) -> dict[str, t.Any]:
        """§4: a location embeds `phones` and `schedule` ([A] an empty schedule object)."""
        return {**location, "schedule": {},
                "phones": [self._render_phone(p) for p in self._phones_of("Location", location["id"])]}

    def _render_organization(self, organization: dict[str, t.Any]) -> dict[str, t.Any]:
        """§4: embeds phones, locations[].phones, properties, tags, emails, comments."""
        org_id = organization["id"]
        return {**organization, "properties": {}, "tags": [], "emails": [], "comments": [],
                "phones": [self._render_phone(p) for p in self._phones_of("Organization", org_id)],
                "locations": [self._render_location(x) for x in self.locations.values()
                              if x["organization_id"] == org_id]}

    def _render_opportunity(self, opportunity: dict[str, t.Any]) -> dict[str, t.Any]:
        """§4: embeds phones, locations[].phones and an organization summary."""
        organization = self.organizations[opportunity["organization_id"]]
        out = {k: v for k, v in opportunity.items() if k != "location_ids"}
        out["phones"] = [self._render_phone(p) for p in self._phones_of("Opportunity", opportunity["id"])]
        out["locations"] = [self._render_location(self.locations[i]) for i in opportunity["location_ids"]]
        out["organization"] = {k: organization[k] for k in ("id", "name", "slug")}
        return out

    def _collection(self, name: str, items: list[dict[str, t.Any]]) -> Response:
        """§5 [A]: a bare JSON array; `wrap_lists` wraps it as `{name: [...]}`."""
        return _ok(200, {name: items} if self.options.wrap_lists else items)

    # ---- parents -----------------------------------------------------------------------------------
    def _paginate(self, request: Request, rows: list[dict[str, t.Any]], title: str
                  ) -> list[dict[str, t.Any]] | Response:
        """§5/§6: ids, attributes[...], query[attributes][...], order, page, per_page."""
        numbers = {}
        for name, default in (("page", 1), ("per_page", DEFAULT_PER_PAGE)):
            raw = (request.param(name) or "").strip()
            if raw and not raw.isdigit():
                return _error(400, f"Invalid {name}.")  # [A]
            numbers[name] = int(raw) if raw else default
        page = max(1, numbers["page"])
        per_page = min(MAX_PER_PAGE, max(1, numbers["per_page"]))
        ids = request.param("ids")
        if ids:
            wanted = {int(x) for x in ids.split(",") if x.strip().isdigit()}
            rows = [r for r in rows if r["id"] in wanted]
        for key, value in request.query:
            match = re.fullmatch(r"attributes\[(\w+)\]", key)
            if match:  # §6: exact match, AND
                rows = [r for r in rows if str(r.get(match.group(1), "")) == value]
        conditions: dict[str, dict[str, str]] = {}
        for key, value in request.query:
            match = re.fullmatch(r"query\[attributes\]\[(\w+)\]\[(operator|value)\]", key)
            if match:
                conditions.setdefault(match.group(1), {})[match.group(2)] = value
        for column, cond in conditions.items():
            compare = _OPERATORS.get(cond.get("operator", "equal_to"))
            if compare is None or "value" not in cond:
                return _error(400, f"Unsupported query on {column}.")  # [A] only the scalar operators
            rows = [r for r in rows
                    if r.get(column) is not None and compare(*_comparable(r[column], cond["value"]))]
        order = request.param("order", "name_asc")  # §5 older page: name_asc (default) | name_desc
        rows = sorted(rows, key=lambda r: (r[title].lower(), r["id"]), reverse=order == "name_desc")
        return rows[(page - 1) * per_page: page * per_page]

    @staticmethod
    def _titles_only(request: Request) -> bool:
        return (request.param("titles_only") or "").lower() in ("true", "1")

    def _list_organizations(self, request: Request, _: t.Any) -> Response:
        rows = self._paginate(request, list(self.organizations.values()), "name")
        if isinstance(rows, Response):
            return rows
        if self._titles_only(request):  # §5: light objects [A] id/name/slug
            light = [{k: r[k] for k in ("id", "name", "slug")} for r in rows]
            return self._collection("organizations", light)
        if not self.options.index_embeds_phones:  # only the show embeds them
            return self._collection("organizations", [{k: v for k, v in self._render_organization(
                r).items() if k not in ("phones", "locations")} for r in rows])
        return self._collection("organizations", [self._render_organization(r) for r in rows])

    def _show_organization(self, _request: Request, _body: t.Any, org_ref: str) -> Response:
        organization = self._find_organization(org_ref)
        if organization is None:
            return _error(404, "Organization not found.")
        return _ok(200, self._render_organization(organization))

    def _list_locations(self, _request: Request, _body: t.Any, org_ref: str) -> Response:
        """[A] unpaginated: an organization has a handful of locations."""
        organization = self._find_organization(org_ref)
        if organization is None:
            return _error(404, "Organization not found.")
        return self._collection("locations", [self._render_location(x) for x in self.locations.values()
                                              if x["organization_id"] == organization["id"]])

    def _show_location(self, _request: Request, _body: t.Any, org_ref: str, location_ref: str) -> Response:
        owner = self._owner("location", org_ref, location_ref, "")
        if isinstance(owner, Response):
            return owner
        return _ok(200, self._render_location(self.locations[owner[1]]))

    def _list_opportunities(self, request: Request, _: t.Any, organization_id: int | None = None) -> Response:
        source = [o for o in self.opportunities.values()
                  if organization_id is None or o["organization_id"] == organization_id]
        rows = self._paginate(request, source, "title")
        if isinstance(rows, Response):
            return rows
        if self._titles_only(request):
            light = [{k: r[k] for k in ("id", "title", "slug")} for r in rows]
            return self._collection("opportunities", light)
        return self._collection("opportunities", [self._render_opportunity(r) for r in rows])

    def _list_org_opportunities(self, request: Request, body: t.Any, org_ref: str) -> Response:
        """[A] paginated like the top-level list (page/per_page, default 10)."""
        organization = self._find_organization(org_ref)
        if organization is None:
            return _error(404, "Organization not found.")
        return self._list_opportunities(request, body, organization["id"])

    def _show_opportunity(self, _request: Request, _body: t.Any, ref: str) -> Response:
        opportunity = self._find_opportunity(ref)
        if opportunity is None:
            return _error(404, "Opportunity not found.")
        return _ok(200, self._render_opportunity(opportunity))

    def _show_org_opportunity(self, _request: Request, _body: t.Any, org_ref: str, ref: str) -> Response:
        owner = self._owner("opportunity", org_ref, ref, "")
        if isinstance(owner, Response):
            return owner
        return _ok(200, self._render_opportunity(self.opportunities[owner[1]]))

    # ---- writes (§8) -------------------------------------------------------------------------------
    def _tick(self) -> str:
        """Strictly increasing write clock, later than every seeded timestamp (contract)."""
        self._last_write = max(int(time.time()), self._last_write + 1)
        return iso(self._last_write)

    def _invalid(self, message: str) -> Response:
        return _error(self.options.validation_status, message)

    def _clean(self, body: dict[str, t.Any], creating: bool) -> dict[str, t.Any] | Response:
        """§8 [A]: `{"phone": {...}}` or bare attributes; read-only and unknown fields are ignored."""
        attrs = body.get("phone", body)
        if not isinstance(attrs, dict):
            return self._invalid("phone must be an object.")
        clean: dict[str, t.Any] = {}
        if "digits" in attrs or creating:
            digits = attrs.get("digits")
            if not isinstance(digits, (str, int)) or isinstance(digits, bool) or not str(digits).strip():
                return self._invalid("Digits can't be blank")  # §7 required; Rails message [A]
            clean["digits"] = str(digits)  # §7: free format, stored as sent (not normalized)
        if "phone_type" in attrs:
            kind = attrs["phone_type"]
            if kind is not None and not isinstance(kind, str):
                return self._invalid("Phone type must be a string.")
            clean["phone_type"] = kind
        if "is_primary" in attrs:
            flag = attrs["is_primary"]
            if isinstance(flag, str) and flag.strip().lower() in _TRUE + _FALSE:  # Rails casting [I]
                flag = flag.strip().lower() in _TRUE
            if not isinstance(flag, bool):
                return self._invalid("Is primary must be true or false.")
            clean["is_primary"] = flag
        return clean

    def _write(self, action: str, owner: tuple[str, int], body: dict[str, t.Any] | None,
               phone_ref: str | None) -> Response:
        kind, owner_id = owner
        organization_id = owner_id if kind == "Organization" else (
            self.locations if kind == "Location" else self.opportunities)[owner_id]["organization_id"]
        # §2: only the owner (and admins) manage phones -> 403
        if organization_id in self.options.foreign_organizations:
            return _error(403, "You are not allowed to manage phones of this organization.")
        siblings = self._phones_of(kind, owner_id)
        phone = None
        if phone_ref is not None:
            phone = next((p for p in siblings if p["id"] == int(phone_ref)), None)
            if phone is None:
                return _error(404, "Phone not found.")
        if action == "delete":
            del self.phones[phone["id"]]  # type: ignore[index]
            del self._by_owner[kind, owner_id][phone["id"]]  # type: ignore[index]
            self._touch(kind, owner_id, organization_id, self._tick())
            return _ok(200, {"status": "OK"})  # §8 [A]
        if body is None:
            return _error(400, "The request body must be a JSON object.")
        clean = self._clean(body, creating=phone is None)
        if isinstance(clean, Response):
            return clean
        stamp = self._tick()
        if phone is None:
            # §7: is_primary defaults to false unless this is the only phone of the owner.
            clean.setdefault("is_primary", not siblings)
            clean.setdefault("phone_type", "")  # [A] omitted type reads back as ""
            self._last_phone_id += 1  # ids are never reused, even after a delete
            phone = {"id": self._last_phone_id, "phoneable_id": owner_id,
                     "phoneable_type": kind, "created_at": stamp}
            self.phones[phone["id"]] = phone
            self._by_owner.setdefault((kind, owner_id), {})[phone["id"]] = phone
        phone.update(clean, updated_at=stamp)
        if clean.get("is_primary") and self.options.primary_clears_others:  # §8 [A]
            for other in siblings:
                if other["id"] != phone["id"] and other["is_primary"]:
                    other.update(is_primary=False, updated_at=stamp)
        self._touch(kind, owner_id, organization_id, stamp)
        status = 201 if action == "create" else 200  # §8 [A] create 201, update 200
        return _ok(status, {"status": "OK", "phone": self._render_phone(phone)})

    def _touch(self, kind: str, owner_id: int, organization_id: int, stamp: str) -> None:
        """[A] Rails `touch: true`: the owner and its organization get the write's updated_at, so a
        client may skip organizations whose updated_at did not move (§6)."""
        if not self.options.touch_parents:
            return
        table = {"Organization": self.organizations, "Location": self.locations,
                 "Opportunity": self.opportunities}[kind]
        table[owner_id]["updated_at"] = stamp
        self.organizations[organization_id]["updated_at"] = stamp


APP = OneDegreeApp
