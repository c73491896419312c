"""One Degree Resource Server API v1: phones of organizations, locations and opportunities.

Facts from ``shared/api/onedegree.md`` (section numbers refer to it): ``api_key`` query
parameter on every call and a chained HMAC signature on writes (§2, ``crmphones.auth``),
nested phone routes per owner (§3), parents embedding ``phones`` and ``locations[].phones``
(§4), ``page``/``per_page`` with no envelope (§5), no updated-since filter (§6, so FULL_TABLE),
free-text ``phone_type`` and the ``is_primary`` rule (§7), ``{"status":"error"}`` errors (§9).
"""

from __future__ import annotations

import json
import typing as t

from singer_sdk import typing as th

from crmphones.answers import DEFAULT_REFUSALS
from crmphones.auth import OneDegreeSigner
from crmphones.concurrency import ordered_map
from crmphones.dialects.base import Dialect, StreamSpec
from crmphones.http import ApiClient
from crmphones.phones import canonical_phone_type
from crmphones.records import Owner, WriteResult, ancestors_property, raw_property
from crmphones.translation import native_type

if t.TYPE_CHECKING:
    import datetime
    from collections.abc import Iterator, Sequence

    from crmphones.answers import Reply
    from crmphones.plan import PlannedWrite
    from crmphones.records import PhoneRecord

__all__ = ["OneDegree"]

_PER_PAGE = 100  # §5: the maximum is undocumented; the paginator copes with a smaller one

PARENT_SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType, required=True),
    th.Property("provider", th.StringType, required=True),
    th.Property("name", th.StringType(nullable=True)),
    ancestors_property(),
    th.Property("updated_at", th.DateTimeType(nullable=True)),
    raw_property(),
).to_dict()

# Stream name -> owner kind, for phone and parent streams.
_PHONE_STREAMS = {"organization_phones": "organization", "location_phones": "location",
                  "opportunity_phones": "opportunity"}
_PARENT_STREAMS = {"organizations": "organization", "locations": "location",
                   "opportunities": "opportunity"}


class OneDegree(Dialect):
    """One Degree organizations', locations' and opportunities' phones."""

    name = "onedegree"
    title = "One Degree"
    default_api_url = "https://data.1degree.org/v1"
    required_settings = ("api_key", "api_secret")
    parent_types = ("organization", "location", "opportunity")
    # Every owner is addressed through its organization (§3): an opportunity's location
    # too, whichever opportunity lists it (the current docs have no route through one), so
    # an ``opportunity`` ancestor is no part of a location.
    ancestor_kinds = {"location": ("organization",), "opportunity": ("organization",)}
    crm_only_rejects = ("an organization, location or opportunity the account does not hold "
                        "(404), or one the key may not manage (403)")
    streams = (
        *(StreamSpec(n, Dialect.phone_schema(), is_sorted=False, parent_type=kind)
          for n, kind in _PHONE_STREAMS.items()),
        *(StreamSpec(n, PARENT_SCHEMA, is_phone_stream=False, is_sorted=False,
                     key_properties=("id",)) for n in _PARENT_STREAMS),
    )

    def build_client(self) -> ApiClient:
        """``api_key`` on every call; writes signed over their exact body bytes."""
        key = str(self.config.get("api_key") or "")
        secret = str(self.config.get("api_secret") or "")
        return ApiClient(
            self.api_url,
            api_name=self.title,
            auth_hint="the `api_key` and `api_secret` settings",
            auth=OneDegreeSigner(secret),
            headers={"Accept": "application/json"},
            params={"api_key": key},
            secrets=[key, secret],
            **self.client_settings(),
            auth_statuses=(401,),  # 403 is "not your resource": a reject, not a bad key (§9)
            error_words=_error_words,
            refusal_statuses=DEFAULT_REFUSALS | {403},
        )

    # -- read -------------------------------------------------------------------------

    def read(self, stream: str, since: datetime.datetime | None) -> Iterator[dict[str, t.Any]]:
        """Crawl organizations (with their locations) and their opportunities: FULL_TABLE.

        The per-organization reads (the organization itself when the index item lacks its
        phones, its opportunities when the stream needs them) run ``max_concurrency`` at a
        time; results come back in index order, so the records are those of a plain loop.
        """
        del since  # §6: no updated-since filter exists
        kind = _PHONE_STREAMS.get(stream) or _PARENT_STREAMS[stream]
        wants_opportunities = kind == "opportunity" or stream == "location_phones"

        def expand(organization: dict[str, t.Any]
                   ) -> tuple[dict[str, t.Any], list[dict[str, t.Any]]]:
            org = self._complete(organization)
            if not wants_opportunities:
                return org, []
            return org, list(self._pages(f"organizations/{org['id']}/opportunities"))

        for org, opportunities in ordered_map(expand, self._pages("organizations"),
                                              self.concurrency):
            owners = [(org, "organization", ())]
            owners += [(loc, "location", (("organization", str(org["id"])),))
                       for loc in org.get("locations") or []]
            own_locations = {str(loc["id"]) for loc in org.get("locations") or []}
            for opp in opportunities:
                opp_ancestors = (("organization", str(org["id"])),)
                owners.append((opp, "opportunity", opp_ancestors))
                # An opportunity's locations are its organization's own (§3: the same phone
                # page): those phones were read already, under the organization.
                for loc in opp.get("locations") or []:
                    if str(loc["id"]) not in own_locations:
                        own_locations.add(str(loc["id"]))
                        owners.append((loc, "location", opp_ancestors))
            for native, owner_kind, ancestors in owners:
                if owner_kind != kind:
                    continue
                owner = Owner(kind, str(native["id"]), ancestors)
                if stream in _PARENT_STREAMS:
                    yield self.to_parent(native, owner)
                else:
                    for phone in native.get("phones") or []:
                        yield self.to_phone_record(phone, owner).to_dict()

    def _pages(self, path: str, params: dict[str, str] | None = None
               ) -> Iterator[dict[str, t.Any]]:
        """``page``/``per_page`` pages: a bare array, or an object wrapping one (§5).

        The end is an empty page or one shorter than the longest seen (a server that
        caps ``per_page`` below what we ask must not end the crawl early).
        """
        longest = 0
        page = 1
        while True:
            items = self._page(path, page, params)
            yield from items
            longest = max(longest, len(items))
            if not items or len(items) < longest:
                return
            page += 1

    def _page(self, path: str, page: int, params: dict[str, str] | None = None
              ) -> list[dict[str, t.Any]]:
        query = {**(params or {}), "page": str(page), "per_page": str(self._per_page)}
        return _items(self.client.get_json(path, query))

    @property
    def _per_page(self) -> int:
        return self.page_size or _PER_PAGE

    def _complete(self, organization: dict[str, t.Any]) -> dict[str, t.Any]:
        """The index's item when it embeds phones and locations, else ``GET /organizations/:id``."""
        if _embeds_phones(organization):
            return organization
        return _unwrap(self.client.get_json(f"organizations/{organization['id']}"), "organization")

    def to_phone_record(self, native: dict[str, t.Any], owner: Owner) -> PhoneRecord:
        """One Degree phone (§7) -> canonical record."""
        return self.phone_record(
            native,
            id=native.get("id"),
            owner=owner,
            number=native.get("digits"),
            extension=native.get("extension"),
            label=native.get("phone_type"),
            is_primary=native.get("is_primary"),
            created_at=native.get("created_at"),
            updated_at=native.get("updated_at"),
        )

    def to_parent(self, native: dict[str, t.Any], owner: Owner) -> dict[str, t.Any]:
        """Organization, location or opportunity -> parent record (phones travel apart)."""
        return {
            "id": owner.parent_id, "provider": self.name,
            "name": native.get("name") or native.get("title"),
            "ancestors": dict(owner.ancestors),  # {} as on phone records: flattens to nothing
            "updated_at": native.get("updated_at"),
            "raw": {k: v for k, v in native.items() if k not in ("phones", "locations")},
        }

    # -- write ------------------------------------------------------------------------

    def current_phones(self, owners: Sequence[Owner]) -> Iterator[PhoneRecord]:
        """The phones of these owners' organizations, their locations and opportunities.

        Organizations are read from the index filtered to the wanted ids (``ids=3,49,2``,
        §6), one page of ``per_page`` ids a request: that is never more requests than one
        ``GET /organizations/:id`` each, and a batch of a thousand organizations costs ten.
        The index has no total count, so the rule is bounded by the ids asked: a chunk's
        pages stop once all its ids are found, at an empty or short page, or at a page that
        brings no new wanted organization or brings one not asked for (a server ignoring
        the filter). Every wanted organization the listing did not give with its phones
        and locations embedded is then read with its own GET (a 404 there: it is gone, and
        holds nothing); a batch of one organization goes straight to that GET. Opportunities
        are paged per organization only when the batch touches opportunities or their
        locations. The per-organization requests run ``max_concurrency`` at a time.
        """
        by_org: dict[str, set[Owner]] = {}
        for owner in owners:
            org = owner.parent_id if owner.parent_type == "organization" else owner.ancestor(
                "organization")
            if org:
                by_org.setdefault(org, set()).add(owner)
        wanted = sorted(by_org)
        found: dict[str, dict[str, t.Any]] = {}
        if len(wanted) > 1:
            chunks = [wanted[i:i + self._per_page] for i in range(0, len(wanted), self._per_page)]
            for listed in ordered_map(self._listed_organizations, chunks, self.concurrency):
                found.update(listed)
        unlisted = [org_id for org_id in wanted if org_id not in found]
        for org_id, org in zip(unlisted, ordered_map(self._organization, unlisted,
                                                     self.concurrency), strict=True):
            if org is not None:
                found[org_id] = org
        with_opportunities = [org_id for org_id in wanted if org_id in found and any(
            o.parent_type == "opportunity" or o.ancestor("opportunity") for o in by_org[org_id])]
        opportunities = dict(zip(with_opportunities, ordered_map(
            lambda org_id: list(self._pages(f"organizations/{org_id}/opportunities")),
            with_opportunities, self.concurrency), strict=True))
        for org_id in wanted:
            if org_id in found:
                yield from self._held_phones(org_id, found[org_id], opportunities.get(org_id, []))

    def _listed_organizations(self, chunk: list[str]) -> dict[str, dict[str, t.Any]]:
        """The wanted organizations of one chunk of ids, from the filtered index (§6)."""
        wanted, found = set(chunk), {}
        longest, page = 0, 1
        while len(found) < len(wanted):
            items = self._page("organizations", page, {"ids": ",".join(chunk)})
            new = {str(i.get("id")): i for i in items
                   if str(i.get("id")) in wanted and str(i.get("id")) not in found}
            found.update(new)
            if not new or len(new) < len(items):  # the filter was not honoured, or a repeat
                break
            longest = max(longest, len(items))
            if len(items) < longest:
                break
            page += 1
        return {org_id: org for org_id, org in found.items() if _embeds_phones(org)}

    def _organization(self, org_id: str) -> dict[str, t.Any] | None:
        """``GET /organizations/:id``, or None when it is gone (404)."""
        document = self.client.get_json(f"organizations/{org_id}", absent_ok=True)
        return None if document is None else _unwrap(document, "organization")

    def _held_phones(self, org_id: str, org: dict[str, t.Any],
                     opportunities: list[dict[str, t.Any]]) -> Iterator[PhoneRecord]:
        """An organization's phones, its locations' and its opportunities' (and theirs)."""
        org_key = (("organization", org_id),)
        for phone in org.get("phones") or []:
            yield self.to_phone_record(phone, Owner("organization", org_id))
        for loc in org.get("locations") or []:
            for phone in loc.get("phones") or []:
                yield self.to_phone_record(phone, Owner("location", str(loc["id"]), org_key))
        own_locations = {str(loc["id"]) for loc in org.get("locations") or []}
        for opp in opportunities:
            opp_owner = Owner("opportunity", str(opp["id"]), org_key)
            for phone in opp.get("phones") or []:
                yield self.to_phone_record(phone, opp_owner)
            for loc in opp.get("locations") or []:
                if str(loc["id"]) in own_locations:
                    continue  # listed above, under the organization
                own_locations.add(str(loc["id"]))  # another opportunity may list it too
                for phone in loc.get("phones") or []:
                    yield self.to_phone_record(phone, Owner("location", str(loc["id"]), org_key))

    def write_attributes(self, phone: PhoneRecord) -> dict[str, t.Any]:
        """``phone_type`` (canonical word, free text in One Degree) and ``is_primary``."""
        attributes: dict[str, t.Any] = {}
        if phone.phone_type is not None:
            attributes["phone_type"] = native_type(self.name, phone.phone_type)
        if phone.is_primary is not None:
            attributes["is_primary"] = phone.is_primary
        return attributes

    def current_attributes(self, phone: PhoneRecord) -> dict[str, t.Any]:
        """Compare types by meaning: a held "Office" already is a ``work`` phone."""
        return {"phone_type": canonical_phone_type(phone.label),
                "is_primary": bool(phone.raw.get("is_primary"))}

    def settle(self, plans: list[PlannedWrite], current: Sequence[PhoneRecord]
               ) -> list[PlannedWrite]:
        """One primary per owner (§7, ``Dialect.settle_primaries``): that setting one clears
        the others is not documented (§8 [A]), so the old primary is written ``false``."""
        return self.settle_primaries(plans, current)

    def create(self, phone: PhoneRecord) -> WriteResult:
        """POST to the owner's nested phones route (§3)."""
        path = _phones_path(Owner.of(phone))
        if path is None:  # intake rejects such a record: a caller that skipped it
            return WriteResult(rejected=self.missing_ancestors(phone.parent_type or "",
                                                               phone.ancestors))
        body = {"phone": {"digits": _digits(phone), **self.write_attributes(phone)}}
        reply = self._send("POST", path, body)
        if reply.refused:
            return WriteResult(rejected=reply.refused)
        return WriteResult(destination_id=str(_unwrap(reply.body, "phone")["id"]))

    def update(self, current: PhoneRecord, changes: dict[str, t.Any]) -> WriteResult:
        """PUT only the changed attributes to the phone's nested route (§3)."""
        path = _phones_path(Owner.of(current))
        if path is None:
            return WriteResult(rejected=self.missing_ancestors(current.parent_type or "",
                                                               current.ancestors))
        reply = self._send("PUT", f"{path}/{current.id}", {"phone": changes})
        if reply.refused:
            return WriteResult(rejected=reply.refused)
        return WriteResult(destination_id=current.id)

    def _send(self, method: str, path: str, body: dict[str, t.Any]) -> Reply:
        # The signature covers the exact bytes sent (§2): send_json serializes once.
        return self.client.send_json(method, path, body,
                                     media_type="application/json; charset=utf-8")


def _phones_path(owner: Owner) -> str | None:
    """The documented phones route of an owner (§3), or None without its organization.

    A location's phones are written under its organization's locations whichever
    opportunity lists it: the current docs give no other route (§3, update 2026-12-07).
    """
    org = owner.ancestor("organization")
    if owner.parent_type == "organization":
        return f"organizations/{owner.parent_id}/phones"
    if not org:
        return None
    if owner.parent_type == "opportunity":
        return f"organizations/{org}/opportunities/{owner.parent_id}/phones"
    return f"organizations/{org}/locations/{owner.parent_id}/phones"


def _digits(phone: PhoneRecord) -> str:
    """One Degree has no extension field (§7): it rides in ``digits`` as ``x12``."""
    number = phone.e164 or phone.number or ""
    return f"{number} x{phone.extension}" if phone.extension else number


def _embeds_phones(organization: dict[str, t.Any]) -> bool:
    """Whether an index item carries its phones and its locations' (§4), as a show does."""
    return "phones" in organization and "locations" in organization


def _items(body: t.Any) -> list[dict[str, t.Any]]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, list):
                return value
    return []


def _unwrap(body: dict[str, t.Any], root: str) -> dict[str, t.Any]:
    """A Rails root key (``{"phone": {...}}``) or a bare object (§8)."""
    inner = body.get(root) if isinstance(body, dict) else None
    return inner if isinstance(inner, dict) else body


def _error_words(body: t.Any) -> str | None:
    """``{"status":"error","error":...}`` (§9); a structured ``error`` is quoted as JSON.

    >>> _error_words({"status": "error", "error": "Not allowed"})
    'Not allowed'
    """
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict | list):
        error = json.dumps(error)
    return str(error) if error else None
