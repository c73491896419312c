"""Activix CRM API v2 emulator: leads (read, with embedded phones) and lead-phones (write).

Written from /work/shared/api/activix.md alone; section numbers in comments refer to that file.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import typing as t
from collections import deque
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from random import Random
from urllib.parse import quote

from crmphones_emulators.clock import SYSTEM_CLOCK
from crmphones_emulators.fake import fake_name, messy_phone
from crmphones_emulators.server import RateOptions, Response, Route, Router, option

if t.TYPE_CHECKING:
    from crmphones_emulators.clock import Clock
    from crmphones_emulators.server import Request

PREFIXES = ("/api/v2", "/v2")  # legacy crm.activix.ca/api/v2 and current api.crm.activix.ca/v2 (§1)
TYPES = ("home", "work", "mobile")  # §6
DIVISIONS = ("new", "used", "service")  # §5; "none" in a filter means no division
E164 = re.compile(r"^\+[1-9]\d{6,14}$")  # §6: "E.164 (+15141234455)"
INVALID = "The given data was invalid."  # §7 Laravel validation message
_EPOCH_START = int(datetime(2023, 1, 1, tzinfo=timezone.utc).timestamp())
_EPOCH_END = int(datetime(2024, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp())
_DATE_FIELDS = {"created_at": "created_at", "created": "created_at", "updated_at": "updated_at",
                "updated": "updated_at", "sale_date": "sale_date"}  # §5: both revisions' names
_OPS = {"eq": lambda a, b: a == b, "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
_INCLUDES = {"phones": "phones", "leadphones": "phones", "lead_phones": "phones",
             "emails": "emails", "leademails": "emails", "lead_emails": "emails"}  # §3


def iso(epoch: int) -> str:
    """Render a timestamp the way Activix examples do: `2018-04-09T18:05:00+00:00` (§2)."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _msg(status: int, message: str, **extra: t.Any) -> Response:
    return Response(status, {"message": message, **extra})


def _invalid(errors: dict[str, list[str]]) -> Response:
    return Response(422, {"message": INVALID, "errors": errors})


def _digits(number: str) -> str:
    """Comparable form of a number for the duplicate rule: digits before any extension, NANP as 1+10."""
    main = re.split(r"(?i)ext|x|#", number, maxsplit=1)[0]
    digits = re.sub(r"\D", "", main)
    return "1" + digits if len(digits) == 10 else digits


def _day(value: str) -> date | None:
    """Parse a filter date; time of day is dropped because filters are day-precision (§5) [A]."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc)
    return parsed.date()


@dataclass
class ActivixOptions(RateOptions):
    """Activix's switches (`ActivixApp` keywords, `/_emulator/config` keys, CLI options)."""

    token: str = option("emulator-token", "accepted Bearer API key (§2)")
    rate_limit: int = option(200, "requests per window (§8)")
    rate_window: float = option(60.0, "rolling window length in seconds")
    link_origin: str = option(
        "", "scheme://host[:port] written in links instead of the request's own: the docs' "
        "pagination example links to http://api.crm.activix.ca (update 2026-12-07)")
    bare_objects: bool = option(
        False, "single objects without the {data: ...} wrapper (older docs, seed 001)")
    mobile_flag: bool = option(
        False, "phones with boolean `mobile` and nested `lead` instead of `type`/`lead_id` "
        "(older schema, §6)")
    touch_lead: bool = option(
        True, "a phone write bumps its lead's updated_at ([U] in §10; [A] yes by default)",
        flag="--no-touch-lead")
    per_page_as_string: bool = option(
        False, 'meta.per_page as a string ("25"), as one doc example does (§4)')
    put_requires_number_and_type: bool = option(
        False, "PUT /lead-phones/:id answers 422 without `number` and `type`, which both doc "
        "revisions list as required (update 2026-12-07); off, omitted fields stay unchanged "
        "as the page's prose says")


class SlidingWindow:
    """`rate_limit` requests per rolling `rate_window` (§8, §9.7), thread-safe; it reads the
    options at each request, so a reconfigured limit holds at once."""

    def __init__(self, options: ActivixOptions, clock: Clock = SYSTEM_CLOCK) -> None:
        self.options, self.clock = options, clock
        self._hits: deque[float] = deque()
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        return self.options.rate_limit

    def take(self) -> tuple[bool, int, int, int]:
        """Record one hit if allowed. Returns (allowed, remaining, retry_after_s, reset_epoch)."""
        with self._lock:
            now, window = self.clock.now(), self.options.rate_window
            while self._hits and self._hits[0] <= now - window:
                self._hits.popleft()
            allowed = len(self._hits) < self.limit
            if allowed:
                self._hits.append(now)
            wait = (self._hits[0] + window - now) if self._hits else 0.0
            retry = max(1, math.ceil(wait))
            return allowed, max(0, self.limit - len(self._hits)), retry, int(self.clock.time() + retry)


class ActivixApp:
    """In-memory Activix account: `leads` with `emails`, and `lead_phones` (one per type per lead)."""

    name = "activix"
    options_type = ActivixOptions

    def __init__(self, records: int = 100, parents: int | None = None, seed: int = 1,
                 clock: Clock = SYSTEM_CLOCK, **options: t.Any) -> None:
        """Seed the account.

        Args:
            records: number of lead phones.
            parents: number of leads (ids 1..parents); default max(1, records // 2).
            seed: same seed (and parents) -> same leads; same seed/records/parents -> same snapshot.
            clock: what the rate window counts in.
            options: `ActivixOptions` fields.
        """
        parents = max(1, records // 2) if parents is None else parents
        if records > len(TYPES) * parents:
            msg = f"{records} phones do not fit on {parents} leads (one phone per type per lead)"
            raise ValueError(msg)
        self._seeding = (records, parents, seed)
        self._initial = ActivixOptions(**options)
        self.clock = clock
        self._lock = threading.RLock()
        self.router = Router(PREFIXES, [
            (r"/leads", {"GET": self._list_leads, "POST": self._create_lead}),
            (r"/leads/search", {"GET": self._search_leads}),
            (r"/leads/(\d+)", {"GET": self._show_lead, "PUT": self._update_lead}),
            (r"/lead-phones", {"POST": self._create_phone}),  # no GET/DELETE documented (§3)
            (r"/lead-phones/(\d+)", {"PUT": self._update_phone}),
        ])
        self.reset()

    def reset(self) -> None:
        """Back to the seeded account, its options as built and an empty rate window."""
        records, parents, seed = self._seeding
        with self._lock:
            self.options = replace(self._initial)
            self.limiter = SlidingWindow(self.options, self.clock)
            self.leads: dict[int, dict[str, t.Any]] = {}
            self.phones: dict[int, dict[str, t.Any]] = {}
            # Each lead's phones by id, kept beside `phones` so a lead's phones cost its own
            # count, not the account's (a page of 100 leads would otherwise scan every phone 100x).
            self._by_lead: dict[int, dict[int, dict[str, t.Any]]] = {}
            self._seed_leads(Random(f"activix-leads-{seed}"), parents)
            self._seed_phones(Random(f"activix-phones-{seed}-{records}"), records)
            self._last_write = max([_EPOCH_END, *(self._epoch(r["updated_at"]) for r in self.leads.values())])

    # ---- seeding -------------------------------------------------------------------------------
    @staticmethod
    def _epoch(stamp: str) -> int:
        return int(datetime.fromisoformat(stamp).timestamp())

    def _seed_leads(self, rng: Random, parents: int) -> None:
        """Leads depend on (seed, parents) only, so two accounts share the same leads (contract)."""
        created = sorted(rng.randint(_EPOCH_START, _EPOCH_END - 86400) for _ in range(parents))
        for lead_id, born in enumerate(created, start=1):
            name = fake_name(rng)
            first, _, last = name.partition(" ") if isinstance(name, str) else (name[0], "", name[-1])
            updated = rng.randint(born, _EPOCH_END)
            self.leads[lead_id] = {
                "id": lead_id, "account_id": 1,
                "first_name": first or None, "last_name": last or None,
                "second_contact": fake_name(rng) if rng.random() < 0.1 else None,
                "division": rng.choice([*DIVISIONS, None]),
                "postal_code": None if rng.random() < 0.2 else self._postal(rng),
                "sale_date": iso(rng.randint(born, updated)) if rng.random() < 0.3 else None,
                "created_at": iso(born), "updated_at": iso(updated),
                "emails": [],
            }
            if rng.random() < 0.7 and first:
                address = f"{first}.{last or lead_id}@example.com".lower().replace(" ", "")
                self.leads[lead_id]["emails"].append({"id": lead_id, "lead_id": lead_id,
                                                      "address": address, "type": "home"})

    @staticmethod
    def _postal(rng: Random) -> str:
        letters, digits = "ABCEGHJKLMNPRSTVXY", "0123456789"
        return "".join(rng.choice(letters if i % 2 == 0 else digits) for i in range(3)) + " " + "".join(
            rng.choice(digits if i % 2 == 0 else letters) for i in range(3))

    def _seed_phones(self, rng: Random, records: int) -> None:
        slots = [(lead_id, kind) for lead_id in self.leads for kind in TYPES]
        rng.shuffle(slots)
        drafts = []
        for lead_id, kind in slots[:records]:
            lead = self.leads[lead_id]
            born, last = self._epoch(lead["created_at"]), self._epoch(lead["updated_at"])
            created = rng.randint(born, last)
            taken = {_digits(p["number"]) for p in drafts if p["lead_id"] == lead_id}
            number = messy_phone(rng)
            while _digits(number) and _digits(number) in taken:  # the API forbids same-lead dupes
                number = messy_phone(rng)
            drafts.append({"lead_id": lead_id, "number": number, "type": kind,
                           "extension": rng.randint(1, 9999) if rng.random() < 0.1 else None,
                           "created_at": iso(created), "updated_at": iso(rng.randint(created, last))})
        drafts.sort(key=lambda p: (p["created_at"], p["lead_id"], p["type"]))  # ids are incremental
        for phone_id, draft in enumerate(drafts, start=1):
            self.phones[phone_id] = {"id": phone_id, **draft}
            self._by_lead.setdefault(draft["lead_id"], {})[phone_id] = self.phones[phone_id]

    # ---- DialectApp protocol ---------------------------------------------------------------------
    def snapshot(self) -> dict:
        """Full state, canonical (current) schema regardless of rendering flags."""
        with self._lock:
            leads = [dict(self.leads[i], emails=[dict(e) for e in self.leads[i]["emails"]])
                     for i in sorted(self.leads)]
            phones = [self._canonical(self.phones[i]) for i in sorted(self.phones)]
        return {"leads": leads, "lead_phones": phones}

    def configure(self, options: dict) -> None:
        """Runtime switches; unknown keys are ignored (contract)."""
        with self._lock:
            self.options.update(options)

    def handle(self, request: Request) -> Response:
        """Route, then authenticate, then throttle, like a Laravel api route group (§2, §8) [I]."""
        route = self.router.match(request.method, request.path)
        if not isinstance(route, Route):  # unknown path or method: the router answers first
            return Response(405, {"message": "Method not allowed."}, headers={"Allow": ", ".join(route)}
                            ) if route else _msg(404, "Not Found.")
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or key.strip() != self.options.token:
            return _msg(401, "Unauthenticated.")
        allowed, remaining, retry, reset = self.limiter.take()
        headers = {"X-RateLimit-Limit": str(self.limiter.limit), "X-RateLimit-Remaining": str(remaining)}
        if not allowed:  # §8: Laravel throttle headers [A]
            headers.update({"Retry-After": str(retry), "X-RateLimit-Reset": str(reset)})
            return Response(429, {"message": "Too Many Attempts."}, headers=headers)
        with self._lock:
            response = route.handler(request, int(route.args[0]) if route.args else None)
        response.headers.update(headers)
        return response

    # ---- rendering ---------------------------------------------------------------------------------
    @staticmethod
    def _canonical(phone: dict[str, t.Any]) -> dict[str, t.Any]:
        out = {key: phone[key] for key in ("id", "lead_id", "number", "type", "extension")}
        # `valid` is [U] (§10); [A] a number is valid when it is E.164.
        out["valid"] = bool(E164.match(phone["number"] or ""))
        out.update(created_at=phone["created_at"], updated_at=phone["updated_at"])
        return out

    def _render_phone(self, phone: dict[str, t.Any]) -> dict[str, t.Any]:
        out = self._canonical(phone)
        if self.options.mobile_flag:  # older schema (seed 001): boolean `mobile`, nested `lead` (§6)
            out = {"id": out["id"], "created_at": out["created_at"], "extension": out["extension"],
                   "lead": {"id": out["lead_id"]}, "mobile": out["type"] == "mobile",
                   "number": out["number"], "updated_at": out["updated_at"], "valid": out["valid"]}
        return out

    def _render_lead(self, lead: dict[str, t.Any], include: set[str]) -> dict[str, t.Any]:
        out = {k: v for k, v in lead.items() if k != "emails"}
        if "emails" in include:
            out["emails"] = [dict(e) for e in lead["emails"]]
        if "phones" in include:  # §3: embedded only when requested
            out["phones"] = [self._render_phone(p) for p in self._phones_of(lead["id"])]
        return out

    def _single(self, status: int, obj: dict[str, t.Any]) -> Response:
        return Response(status, obj if self.options.bare_objects else {"data": obj})  # §6, §9.2

    def _phones_of(self, lead_id: int) -> list[dict[str, t.Any]]:
        return [p for _, p in sorted(self._by_lead.get(lead_id, {}).items())]

    @staticmethod
    def _includes(request: Request) -> set[str]:
        """Accept include[]=phones, include[0]=leadPhones, include=phones,emails (§3) [A]."""
        found = set()
        for key, value in request.query:
            if key == "include" or re.fullmatch(r"include\[\d*\]", key):
                for part in value.split(","):
                    if part.strip().lower() in _INCLUDES:
                        found.add(_INCLUDES[part.strip().lower()])
        return found

    # ---- leads ---------------------------------------------------------------------------------
    def _list_leads(self, request: Request, _: None) -> Response:
        filters: list[t.Callable[[dict], bool]] = []
        for key, value in request.query:
            match = re.fullmatch(r"filter\[(\w+)\](?:\[(\w+)\])?", key)
            if not match:
                continue
            field, op = match.group(1), match.group(2) or "eq"
            check = self._filter(field, op, value)
            if isinstance(check, Response):
                return check
            if check is not None:
                filters.append(check)
        rows = [lead for lead in self.leads.values() if all(f(lead) for f in filters)]
        return self._paginate(request, rows)

    def _search_leads(self, request: Request, _: None) -> Response:
        """§3: matches name, second_contact, phone number, email address (substring, any case)."""
        query = dict(request.query).get("query", "").strip().lower()
        if not query:
            return _invalid({"query": ["The field query is required."]})
        digits = re.sub(r"\D", "", query)

        def hit(lead: dict[str, t.Any]) -> bool:
            texts = [f"{lead['first_name'] or ''} {lead['last_name'] or ''}", lead["second_contact"] or "",
                     *(e["address"] for e in lead["emails"])]
            numbers = [p["number"] or "" for p in self._phones_of(lead["id"])]
            return any(query in s.lower() for s in texts + numbers) or bool(
                digits and len(digits) >= 3 and any(digits in re.sub(r"\D", "", n) for n in numbers))

        return self._paginate(request, [lead for lead in self.leads.values() if hit(lead)])

    def _filter(self, field: str, op: str, value: str) -> Response | t.Callable[[dict], bool] | None:
        """One `filter[field][op]=value` (§5). Unknown fields are ignored [A]."""
        if op not in _OPS or (op != "eq" and field not in _DATE_FIELDS):
            return _invalid({f"filter.{field}": [f"The operator {op} is not supported."]})
        if field in _DATE_FIELDS:
            day, column, compare = _day(value), _DATE_FIELDS[field], _OPS[op]
            if day is None:
                return _invalid({f"filter.{field}": [f"The filter.{field} is not a valid date."]})
            return lambda lead: bool(lead[column]) and compare(_day(lead[column]), day)
        if field == "division":  # comma list = OR; "none" = no division (§5)
            wanted = {v.strip().lower() for v in value.split(",")}
            return lambda lead: (lead["division"] or "none") in wanted
        like = self._like(value)
        if field == "name":
            return lambda lead: any(like(s) for s in (
                f"{lead['first_name'] or ''} {lead['last_name'] or ''}".strip(), lead["first_name"],
                lead["last_name"], lead["second_contact"]))
        if field == "email":
            return lambda lead: any(like(e["address"]) for e in lead["emails"])
        if field == "phone":
            return lambda lead: any(like(p["number"]) or like(_digits(p["number"] or ""))
                                    for p in self._phones_of(lead["id"]))
        if field == "postal_code":
            return lambda lead: like(lead["postal_code"])
        return None

    @staticmethod
    def _like(value: str) -> t.Callable[[str | None], bool]:
        """Case-insensitive equality; a trailing `%` makes it a prefix match (§5)."""
        needle = value.lower()
        if needle.endswith("%"):
            stem = needle.rstrip("%")
            return lambda s: s is not None and s.lower().startswith(stem)
        return lambda s: s is not None and s.lower() == needle

    def _paginate(self, request: Request, rows: list[dict[str, t.Any]]) -> Response:
        """Laravel LengthAwarePaginator envelope (§4); newest created first (§3)."""
        params = dict(request.query)
        raw = params.get("per_page", "25")
        if not re.fullmatch(r"\d+", raw.strip()):
            return _invalid({"per_page": ["The per page must be an integer."]})
        per_page = int(raw)
        if not 1 <= per_page <= 100:  # §9.5: 422 outside 1..100 [A]
            return _invalid({"per_page": ["The per page must be between 1 and 100."]})
        page_raw = params.get("page", "1").strip()
        page = int(page_raw) if re.fullmatch(r"\d+", page_raw) and int(page_raw) >= 1 else 1  # [I]
        rows = sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)
        total, include = len(rows), self._includes(request)
        last_page = max(1, math.ceil(total / per_page))
        chunk = rows[(page - 1) * per_page: page * per_page]
        origin = self.options.link_origin.rstrip("/") or f"http://{request.host or '127.0.0.1'}"
        base = f"{origin}{request.path.rstrip('/')}"
        frm = (page - 1) * per_page + 1 if chunk else None
        return Response(200, {
            "data": [self._render_lead(r, include) for r in chunk],
            "links": {"first": self._url(base, request, 1), "last": self._url(base, request, last_page),
                      "prev": self._url(base, request, page - 1) if page > 1 else None,
                      "next": self._url(base, request, page + 1) if page < last_page else None},
            "meta": {"current_page": page, "from": frm, "last_page": last_page, "path": base,
                     "per_page": str(per_page) if self.options.per_page_as_string else per_page,
                     "to": frm + len(chunk) - 1 if frm else None, "total": total},
        })

    @staticmethod
    def _url(base: str, request: Request, page: int) -> str:
        """Rebuild the query like PHP http_build_query: `include[]` -> `include[0]`, page in place."""
        pairs: dict[str, str] = {}
        counters: dict[str, int] = {}
        for key, value in request.query:
            if key.endswith("[]"):
                index = counters.get(key, 0)
                counters[key] = index + 1
                key = f"{key[:-2]}[{index}]"
            pairs[key] = value
        pairs["page"] = str(page)
        return base + "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs.items())

    def _show_lead(self, request: Request, lead_id: int) -> Response:
        lead = self.leads.get(lead_id)
        if lead is None:
            return _msg(404, "No query results for model Lead.")
        return self._single(200, self._render_lead(lead, self._includes(request)))

    # ---- writes ----------------------------------------------------------------------------------
    def _tick(self) -> str:
        """Strictly increasing write clock at second precision (contract; §2 timestamp format)."""
        self._last_write = max(int(time.time()), self._last_write + 1)
        return iso(self._last_write)

    @staticmethod
    def _body(request: Request) -> dict[str, t.Any] | Response:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return _msg(400, "The request is malformed.")
        return body if isinstance(body, dict) else _msg(400, "The request is malformed.")

    def _check_phone(self, body: dict[str, t.Any], required: tuple[str, ...]
                     ) -> tuple[dict, dict[str, list[str]]]:
        """Validate writable phone fields (§6); read-only id/valid/timestamps are ignored (§9.4)."""
        clean: dict[str, t.Any] = {}
        errors: dict[str, list[str]] = {}
        if "type" not in body and isinstance(body.get("mobile"), bool):  # older schema (§6) [A]
            body = {**body, "type": "mobile" if body["mobile"] else "home"}
        elif "mobile" in body and not isinstance(body["mobile"], bool):
            errors["mobile"] = ["The field mobile must be true or false."]
        for field in required:
            if body.get(field) in (None, ""):
                errors[field] = [f"The field {field} is required."]
        if body.get("lead_id") not in (None, ""):
            lead_id = body["lead_id"]
            if isinstance(lead_id, str) and lead_id.isdigit():
                lead_id = int(lead_id)
            if not isinstance(lead_id, int) or isinstance(lead_id, bool):
                errors["lead_id"] = ["The field lead_id must be an integer."]
            elif lead_id not in self.leads:
                errors["lead_id"] = ["The selected lead_id is invalid."]
            clean["lead_id"] = lead_id
        if body.get("number") not in (None, ""):
            if not isinstance(body["number"], str) or not E164.match(body["number"]):
                errors["number"] = ["The number format is invalid."]  # §6/§7 verbatim
            clean["number"] = body["number"]
        if body.get("type") not in (None, ""):
            if body["type"] not in TYPES:
                errors["type"] = ["The selected type is invalid."]
            clean["type"] = body["type"]
        if "extension" in body:  # int or null in examples; digit strings tolerated ([U] §10)
            ext = body["extension"]
            if isinstance(ext, str) and ext.strip().isdigit():
                ext = int(ext)
            if ext is not None and (not isinstance(ext, int) or isinstance(ext, bool) or ext < 0):
                errors["extension"] = ["The field extension must be an integer."]
            clean["extension"] = ext
        return clean, errors

    def _duplicate(self, lead_id: int, number: str, kind: str, own_id: int | None) -> bool:
        """§7 [A]: same number on the lead, or a second phone of that type on the lead."""
        digits = _digits(number or "")
        return any(
            p["id"] != own_id and (p["type"] == kind or (digits and _digits(p["number"] or "") == digits))
            for p in self._by_lead.get(lead_id, {}).values())

    def _store_phone(self, clean: dict[str, t.Any], phone: dict[str, t.Any] | None) -> dict[str, t.Any]:
        stamp = self._tick()
        if phone is None:
            # Ids grow with insertion, so the last key is the largest.
            phone = {"id": next(reversed(self.phones), 0) + 1, "extension": None, "created_at": stamp}
            self.phones[phone["id"]] = phone
        else:
            self._by_lead[phone["lead_id"]].pop(phone["id"])
        phone.update(clean, updated_at=stamp)
        self._by_lead.setdefault(phone["lead_id"], {})[phone["id"]] = phone
        if self.options.touch_lead:
            self.leads[phone["lead_id"]]["updated_at"] = stamp
        return phone

    def _create_phone(self, request: Request, _: None) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        clean, errors = self._check_phone(body, ("lead_id", "number", "type"))
        if errors:
            return _invalid(errors)
        if self._duplicate(clean["lead_id"], clean["number"], clean["type"], None):
            return _msg(403, "Duplicate phone.")
        return self._single(201, self._render_phone(self._store_phone(clean, None)))

    def _update_phone(self, request: Request, phone_id: int) -> Response:
        phone = self.phones.get(phone_id)
        if phone is None:  # route-model binding runs before validation [I]
            return _msg(404, "No query results for model LeadPhone.")
        body = self._body(request)
        if isinstance(body, Response):
            return body
        required = ("number", "type") if self.options.put_requires_number_and_type else ()
        clean, errors = self._check_phone(body, required)
        if errors:
            return _invalid(errors)
        merged = {**phone, **clean}
        if self._duplicate(merged["lead_id"], merged["number"], merged["type"], phone_id):
            return _msg(403, "Duplicate phone.")
        return self._single(200, self._render_phone(self._store_phone(clean, phone)))

    def _create_lead(self, request: Request, _: None) -> Response:
        """POST /leads: nested `phones` are appended (§3)."""
        return self._write_lead(request, None)

    def _update_lead(self, request: Request, lead_id: int) -> Response:
        """PUT /leads/:id: partial; nested `phones` only appended, never updated/deleted (§3)."""
        if lead_id not in self.leads:
            return _msg(404, "No query results for model Lead.")
        return self._write_lead(request, lead_id)

    def _write_lead(self, request: Request, lead_id: int | None) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        fields = {k: body[k] for k in ("first_name", "last_name", "second_contact", "postal_code",
                                       "division") if k in body}
        errors: dict[str, list[str]] = {}
        if fields.get("division") not in (None, *DIVISIONS):
            errors["division"] = ["The selected division is invalid."]
        nested = body.get("phones") or []
        if not isinstance(nested, list) or not all(isinstance(p, dict) for p in nested):
            errors["phones"] = ["The field phones must be an array."]
            nested = []
        checked = []
        for index, item in enumerate(nested):
            item = {k: v for k, v in item.items() if k != "lead_id"}  # the parent is implied
            clean, item_errors = self._check_phone(item, ("number", "type"))
            errors.update({f"phones.{index}.{k}": v for k, v in item_errors.items()})
            checked.append(clean)
        if errors:
            return _invalid(errors)
        new_id = lead_id or max(self.leads, default=0) + 1
        seen: list[tuple[str, str]] = []
        for clean in checked:
            key = (_digits(clean["number"]), clean["type"])
            if self._duplicate(new_id, clean["number"], clean["type"], None) or any(
                    key[0] == s[0] or key[1] == s[1] for s in seen):
                return _msg(403, "Duplicate phone.")
            seen.append(key)
        stamp = self._tick()
        lead = self.leads.get(new_id) or {
            "id": new_id, "account_id": 1, "first_name": None, "last_name": None, "second_contact": None,
            "division": None, "postal_code": None, "sale_date": None, "created_at": stamp, "emails": []}
        lead.update(fields, updated_at=stamp)
        self.leads[new_id] = lead
        for clean in checked:
            self._store_phone({**clean, "lead_id": new_id}, None)
        return self._single(201 if lead_id is None else 200, self._render_lead(lead, {"phones"}))


APP = ActivixApp
