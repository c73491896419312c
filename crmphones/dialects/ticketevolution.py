"""Ticket Evolution API v9: clients' phone numbers, every request HMAC-signed.

Facts from ``shared/api/ticketevolution.md`` (section numbers refer to it): ``X-Token`` +
``X-Signature`` over ``METHOD host/v9/path?sorted-query-or-body`` (§2, ``crmphones.auth``),
clients index embedding ``phone_numbers`` with ``current_page``/``per_page``/
``total_entries`` (§3, §4), ``updated_at.gte`` on clients (§5), array create and bare-object
update, ``label`` <= 20 characters, ids as integers or strings, ``country_code`` "1" or "+1"
(§6), 422 messages and 503 throttling (§7, §8). There is no DELETE: no plan needs one.

The official Ruby client (update 2026-12-07) documents 503 as "the rate limit for the given
token may have been reached: retry", with no ``Retry-After``; a 503 without one is therefore
a throttle: every thread pauses, a second at first, doubling while the 503s go on, up to
``THROTTLE_PAUSE``: the window's length is not published [U]; a minute is assumed [A], the
usual span of per-token limits and the emulator's default window. An outage's 503 is the
same answer: a lone one costs a second. A 202 on a create (accepted, processed later) may have made
the phones: the loader looks them up before anything is sent again. A 301/302 stops the run
naming ``api_url`` (``crmphones.answers``).
"""

from __future__ import annotations

import itertools
import math
import typing as t

import phonenumbers
from singer_sdk import typing as th

from crmphones.auth import TicketEvolutionSigner
from crmphones.concurrency import ordered_map
from crmphones.dialects.base import Dialect, StreamSpec
from crmphones.errors import FatalRequestError
from crmphones.http import AmbiguousWriteError, ApiClient
from crmphones.phones import canonical_phone_type
from crmphones.records import Owner, WriteResult, phone_schema, raw_property
from crmphones.translation import native_type

if t.TYPE_CHECKING:
    import datetime
    from collections.abc import Iterable, Iterator, Sequence

    from crmphones.plan import PlannedWrite
    from crmphones.records import PhoneRecord

__all__ = ["LABEL_MAX", "THROTTLE_PAUSE", "TicketEvolution"]

_PER_PAGE = 100  # §4: list calls max out at 100
_LOOKUPS_BEFORE_PAGING = 3  # below this many clients, one list each is always cheapest
#: The longest pause of every thread on 503s without ``Retry-After``: the token's rate
#: window, assumed a minute (see the module doc).
THROTTLE_PAUSE = 60.0
#: §6: labels longer than this are cut to it (whitespace trimmed first), never sent to a 422.
LABEL_MAX = 20

# §6: a phone number has an `updated_at` but no `created_at`.
CLIENT_PHONE_SCHEMA = phone_schema(without=("created_at",), extra={
    "client_updated_at": th.DateTimeType(nullable=True).type_dict})
CLIENT_SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType, required=True),
    th.Property("provider", th.StringType, required=True),
    th.Property("name", th.StringType(nullable=True)),
    th.Property("updated_at", th.DateTimeType(nullable=True)),
    raw_property(),
).to_dict()


class TicketEvolution(Dialect):
    """Ticket Evolution clients' phone numbers."""

    name = "ticketevolution"
    title = "Ticket Evolution"
    default_api_url = "https://api.ticketevolution.com/v9"
    required_settings = ("api_token", "api_secret")
    parent_types = ("client",)
    crm_only_rejects = "a client id the account does not hold (404)"
    streams = (
        # Phones are filtered through their client's updated_at (§5).
        StreamSpec("client_phone_numbers", CLIENT_PHONE_SCHEMA,
                   replication_key="client_updated_at", is_sorted=False),
        StreamSpec("clients", CLIENT_SCHEMA, replication_key="updated_at",
                   is_phone_stream=False, is_sorted=False),
    )

    def build_client(self) -> ApiClient:
        """Every request signed; a 503 (throttling, §7) pauses every thread for a window."""
        token = str(self.config.get("api_token") or "")
        secret = str(self.config.get("api_secret") or "")
        return ApiClient(
            self.api_url,
            api_name=self.title,
            auth_hint="the `api_token` and `api_secret` settings",
            auth=TicketEvolutionSigner(token, secret),
            headers={"Accept": "application/json"},
            secrets=[token, secret],
            **self.client_settings(),
            auth_statuses=(401,),
            error_words=_error_words,
            throttle_pause=THROTTLE_PAUSE,
        )

    # -- read -------------------------------------------------------------------------

    def read(self, stream: str, since: datetime.datetime | None) -> Iterator[dict[str, t.Any]]:
        """Page through clients updated since the bookmark, using their embedded phones.

        A client that lacks them has its own list read; those reads run ``max_concurrency``
        at a time, their results taken in index order (the records of a plain loop).
        """
        params = {}
        if since is not None:
            params["updated_at.gte"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        clients = self._pages("clients", "clients", params)
        if stream == "clients":
            yield from (self.to_client(client) for client in clients)
            return
        seen: set[str] = set()
        for client, natives in ordered_map(self._with_phones, clients, self.concurrency):
            for native in natives:
                phone = self.to_phone_record(native, client)
                if phone.id not in seen:  # a client moved between pages while we read
                    seen.add(t.cast("str", phone.id))
                    yield {**phone.to_dict(), "client_updated_at": client.get("updated_at")}

    def _with_phones(self, client: dict[str, t.Any]
                     ) -> tuple[dict[str, t.Any], list[dict[str, t.Any]]]:
        """A client and its phone numbers: embedded, else its own list (§3)."""
        natives = client.get("phone_numbers")
        if natives is None:
            natives = list(self._pages(f"clients/{client['id']}/phone_numbers",
                                       "phone_numbers", {}))
        return client, natives

    def _pages(self, path: str, key: str, params: dict[str, str]) -> Iterator[dict[str, t.Any]]:
        """``current_page``/``per_page``/``total_entries`` pages (§4)."""
        page = 1
        while True:
            body = self._page(path, params, page)
            items = body.get(key) or []
            yield from items
            current = int(body.get("current_page") or page)
            if not items or _last_page(body, page) <= current:
                return
            page = current + 1

    def _page(self, path: str, params: dict[str, str], page: int) -> dict[str, t.Any]:
        query = sorted({**params, "page": str(page), "per_page": str(self._per_page)}.items())
        return t.cast("dict[str, t.Any]", self.client.get_json(path, query))

    @property
    def _per_page(self) -> int:
        return min(self.page_size or _PER_PAGE, _PER_PAGE)

    def to_phone_record(self, native: dict[str, t.Any], client: dict[str, t.Any] | None = None
                        ) -> PhoneRecord:
        """Ticket Evolution phone number (§6) -> canonical record."""
        client_id = native.get("client_id") or (client or {}).get("id") or _client_from_url(
            native.get("url"))
        primary = (client or {}).get("primary_phone_number") or {}
        number = native.get("number") or native.get("raw_number")
        # The calling code ("1" or "+1") says which country a national number belongs to; the
        # number itself may still carry its own international prefix ("+33 ...", "0033 ...").
        code = str(native.get("country_code") or "").strip().lstrip("+")
        region = phonenumbers.region_code_for_country_code(int(code)) if code.isdigit() else None
        return self.phone_record(
            native,
            id=native.get("id"),
            owner=Owner("client", str(client_id)),
            number=number,
            extension=native.get("extension"),
            label=native.get("label"),
            # Known when the client was read with its ``primary_phone_number`` (null: none).
            is_primary=(str(primary.get("id")) == str(native.get("id"))) if primary else (
                False if client and "primary_phone_number" in client else None),
            updated_at=native.get("updated_at"),
            region_hint=None if region == "ZZ" else region,
        )

    def to_client(self, client: dict[str, t.Any]) -> dict[str, t.Any]:
        """Client -> parent record (phones travel in ``client_phone_numbers``)."""
        return {"id": str(client["id"]), "provider": self.name, "name": client.get("name"),
                "updated_at": client.get("updated_at"),
                "raw": {k: v for k, v in client.items() if k != "phone_numbers"}}

    # -- write ------------------------------------------------------------------------

    def current_phones(self, owners: Sequence[Owner]) -> Iterator[PhoneRecord]:
        """The phones of these clients, by the cheaper of two reads (the index has no id filter).

        One ``GET /clients/:id`` per client (§3), or every page of the clients index, whose clients
        embed their ``phone_numbers``, when the account has fewer index pages than the batch
        has clients. The first index page, asked to learn ``total_entries``, is used either
        way when paging wins; the other pages are then fetched ``max_concurrency`` at a time.
        A wanted client the index did not give with its phones embedded (gone, or moved
        between pages while they were read) is read with its own show, which embeds its
        phones and names its primary (a 404 there means it holds nothing). Either way each
        client's ``primary_phone_number`` says which phone is primary.
        """
        wanted = sorted({o.parent_id for o in owners})
        held: dict[str, tuple[dict[str, t.Any], list[dict[str, t.Any]]]] = {}
        if len(wanted) > _LOOKUPS_BEFORE_PAGING:
            first = self._page("clients", {}, 1)
            last = _last_page(first, 1)
            if last < len(wanted):
                rest = ordered_map(lambda n: self._page("clients", {}, n), range(2, last + 1),
                                   self.concurrency)
                for body in itertools.chain([first], rest):
                    for client in body.get("clients") or []:
                        client_id = str(client.get("id"))
                        if client_id in wanted and client.get("phone_numbers") is not None:
                            held.setdefault(client_id, (client, client["phone_numbers"]))
        unlisted = [client_id for client_id in wanted if client_id not in held]
        for client_id, shown in zip(unlisted, ordered_map(self._client_with_phones, unlisted,
                                                          self.concurrency), strict=True):
            if shown is not None:
                held[client_id] = shown
        for client_id in wanted:
            if client_id in held:
                client, natives = held[client_id]
                for native in natives:
                    yield self.to_phone_record({**native, "client_id": client_id}, client)

    def _client_with_phones(self, client_id: str
                            ) -> tuple[dict[str, t.Any], list[dict[str, t.Any]]] | None:
        """``GET /clients/:id``, which embeds the phone numbers and names the primary one
        (§3), or None when the client is gone (404); its own list when the show lacks them."""
        try:
            client = t.cast("dict[str, t.Any]", self.client.get_json(f"clients/{client_id}"))
            return self._with_phones(client)
        except FatalRequestError as exc:
            if exc.status == 404:
                return None
            raise

    def write_attributes(self, phone: PhoneRecord) -> dict[str, t.Any]:
        """``label`` (the source's text, else the canonical type) and ``is_primary``."""
        attributes: dict[str, t.Any] = {}
        label = shorten_label(phone.label or (
            native_type(self.name, phone.phone_type) if phone.phone_type else None))
        if label:
            attributes["label"] = label
        if phone.is_primary is not None:
            attributes["is_primary"] = phone.is_primary
        return attributes

    def current_attributes(self, phone: PhoneRecord) -> dict[str, t.Any]:
        """``label`` as held; ``is_primary`` from the client's ``primary_phone_number``
        (phones do not echo it, §6), None when the read did not say."""
        return {"label": phone.label, "is_primary": phone.is_primary}

    def changes(self, wanted: PhoneRecord, current: PhoneRecord) -> dict[str, t.Any]:
        """A label is changed only when its meaning differs, or the input gave its own text.

        ``is_primary`` is sent when it differs from what the client names as primary; when
        the read did not say, only with another change.
        """
        want = self.write_attributes(wanted)
        label = want.get("label")
        same_meaning = wanted.label is None and wanted.phone_type == canonical_phone_type(
            current.label)
        if label is None or same_meaning or (label or "").lower() == (current.label or "").lower():
            want.pop("label", None)
        if want.get("is_primary") == current.is_primary or (
                current.is_primary is None and set(want) == {"is_primary"}):
            want.pop("is_primary", None)
        return want

    def settle(self, plans: list[PlannedWrite], current: Sequence[PhoneRecord]
               ) -> list[PlannedWrite]:
        """One primary per client: that writing one clears the others is not documented, so
        the old primary is written ``is_primary: false`` (``Dialect.settle_primaries``)."""
        return self.settle_primaries(plans, current)

    def create(self, phone: PhoneRecord) -> WriteResult:
        """One phone: the batch create with a single item."""
        (result,) = self.create_many(Owner.of(phone), [phone])
        return result

    def create_many(self, owner: Owner, phones: Sequence[PhoneRecord]) -> Iterable[WriteResult]:
        """All of a client's new numbers in one POST; each returned id mapped to its input.

        When the API refuses the batch (422), each item is sent alone so one bad number
        costs only itself.

        Raises:
            AmbiguousWriteError: on a 202 (the caller looks before sending again).
        """
        items = [self._item(phone) for phone in phones]
        reply = self.client.send_json("POST", f"clients/{owner.parent_id}/phone_numbers",
                                      {"phone_numbers": items})
        if reply.status == 202:  # accepted, processed later: the phones may exist by now
            msg = (f"{self.title} {reply.where}: 202 accepted for later processing, the "
                   "phones not returned")
            raise AmbiguousWriteError(msg)
        if len(items) > 1 and reply.status in (400, 422):
            return [next(iter(self.create_many(owner, [phone]))) for phone in phones]
        if reply.refused:
            return [WriteResult(rejected=reply.refused)] * len(items)
        return _map_created(items, reply.body.get("phone_numbers") or [])

    def update(self, current: PhoneRecord, changes: dict[str, t.Any]) -> WriteResult:
        """PUT a bare object of the changed attributes (§6)."""
        reply = self.client.send_json(
            "PUT", f"clients/{current.parent_id}/phone_numbers/{current.id}", changes)
        if reply.refused:
            return WriteResult(rejected=reply.refused)
        return WriteResult(destination_id=current.id)

    def _item(self, phone: PhoneRecord) -> dict[str, t.Any]:
        parsed = phonenumbers.parse(phone.e164 or "")
        return {
            "number": str(parsed.national_number),
            "country_code": f"+{parsed.country_code}",
            "extension": phone.extension,
            **self.write_attributes(phone),
        }


def shorten_label(label: str | None) -> str | None:
    """Trim, then cut to ``LABEL_MAX`` characters (§6).

    >>> shorten_label("  Head office switchboard line ")
    'Head office switchbo'
    """
    if label is None:
        return None
    return label.strip()[:LABEL_MAX] or None


def _map_created(items: list[dict[str, t.Any]], created: list[dict[str, t.Any]]
                 ) -> list[WriteResult]:
    """Match returned phones to sent items by number and extension, not by position alone."""
    pool = list(created)
    results = []
    for item in items:
        match = next((c for c in pool if _digits(c.get("number")) == _digits(item["number"])
                      and str(c.get("extension") or "") == str(item.get("extension") or "")),
                     None)
        if match is None:
            results.append(WriteResult(rejected="Ticket Evolution did not return this number "
                                                "in its create answer"))
            continue
        pool.remove(match)
        results.append(WriteResult(destination_id=str(match["id"])))
    return results


def _digits(value: t.Any) -> str:
    return "".join(ch for ch in str(value or "") if ch.isdigit())


def _last_page(body: dict[str, t.Any], page: int) -> int:
    """The number of the last page, from ``per_page`` and ``total_entries`` (§4)."""
    per_page = int(body.get("per_page") or _PER_PAGE)
    total = int(body.get("total_entries") or 0)
    return max(int(body.get("current_page") or page), math.ceil(total / per_page))


def _client_from_url(url: str | None) -> str | None:
    """``/clients/<cid>/phone_numbers/<id>`` (§6) -> ``<cid>``."""
    parts = (url or "").strip("/").split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "clients" else None


def _error_words(body: t.Any) -> str | None:
    """``error``, or Rails-style ``errors`` per field (§7).

    >>> _error_words({"errors": {"label": ["is too long (maximum is 20 characters)"]}})
    'label is too long (maximum is 20 characters)'
    """
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if isinstance(errors, dict):
        return "; ".join(f"{field} {' '.join(map(str, msgs if isinstance(msgs, list) else [msgs]))}"
                         for field, msgs in errors.items()) or None
    return str(body.get("error") or body.get("message") or errors or "") or None
