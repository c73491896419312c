"""Activix CRM API v2: lead phones, read through ``GET /leads`` and written to ``/lead-phones``.

Facts from ``shared/api/activix.md`` (section numbers refer to it): Bearer key (§2), phones
only readable embedded in leads with ``include[]=phones`` (§3), ``page``/``per_page`` <= 100
with a ``links``/``meta`` envelope (§4), ``filter[updated_at][gte]`` at day precision (§5),
one phone per type per lead (§6), ``{"message"}`` errors, 403 ``Duplicate phone.``,
404 on a vanished phone, 422 per-field errors (§7), 200 requests per minute (§8).
"""

from __future__ import annotations

import itertools
import typing as t

from singer_sdk import typing as th

from crmphones.concurrency import ordered_map
from crmphones.dialects.base import Dialect, StreamSpec
from crmphones.http import ApiClient
from crmphones.paging import follow_next_links
from crmphones.records import Owner, WriteResult, phone_schema, raw_property
from crmphones.translation import native_type

if t.TYPE_CHECKING:
    import datetime
    from collections.abc import Iterator, Mapping, Sequence

    from crmphones.answers import Reply
    from crmphones.plan import PlannedWrite
    from crmphones.records import PhoneRecord

__all__ = ["Activix"]

_PER_PAGE = 100  # §4: the maximum
_LOOKUPS_BEFORE_PAGING = 3  # below this many leads, one GET each is always cheapest
_TYPES = ("mobile", "work", "home")  # §6: the type slots of a lead

# §6: a lead's phones have no primary flag.
LEAD_PHONE_SCHEMA = phone_schema(without=("is_primary",), extra={
    "lead_updated_at": th.DateTimeType(nullable=True).type_dict})
LEAD_SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType, required=True),
    th.Property("provider", th.StringType, required=True),
    th.Property("first_name", th.StringType(nullable=True)),
    th.Property("last_name", th.StringType(nullable=True)),
    th.Property("created_at", th.DateTimeType(nullable=True)),
    th.Property("updated_at", th.DateTimeType(nullable=True)),
    raw_property(),
).to_dict()


class Activix(Dialect):
    """Activix leads' phones."""

    name = "activix"
    title = "Activix"
    default_api_url = "https://api.crm.activix.ca/v2"
    required_settings = ("access_token",)
    parent_types = ("lead",)
    crm_only_rejects = ("a lead id the account does not hold (422), a number Activix calls a "
                        "duplicate (403)")
    # §8: 200 requests/minute; pace a little under it so a window edge never earns a 429.
    default_requests_per_minute = 190
    streams = (
        # Phones carry no filterable date of their own: the bookmark is the lead's (§5).
        StreamSpec("lead_phones", LEAD_PHONE_SCHEMA, replication_key="lead_updated_at",
                   is_sorted=False),
        StreamSpec("leads", LEAD_SCHEMA, replication_key="updated_at", is_phone_stream=False,
                   is_sorted=False),
    )

    def __init__(self, config: Mapping[str, t.Any]) -> None:
        """Bind to one account; ``type_slot_conflict`` says what a held type slot means."""
        super().__init__(config)
        #: ``reject`` a new number for a held type slot, or ``replace`` the slot's number.
        self.type_slot_conflict = str(config.get("type_slot_conflict") or "reject")

    def build_client(self) -> ApiClient:
        """Bearer key, JSON, paced under 200 requests a minute."""
        token = str(self.config.get("access_token") or "")
        return ApiClient(
            self.api_url,
            api_name=self.title,
            auth_hint="the `access_token` setting (the Activix API key)",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            secrets=[token],
            **self.client_settings(),
            auth_statuses=(401,),  # 403 also means "Duplicate phone." (§7)
            error_words=_error_words,
            # 403: a duplicate (reconciled on a create); 404: the phone is gone (an update
            # recreates it). A 400 is a malformed request: ours, for every record, so a stop.
            refusal_statuses={403, 404, 422},
        )

    # -- read -------------------------------------------------------------------------

    def read(self, stream: str, since: datetime.datetime | None) -> Iterator[dict[str, t.Any]]:
        """Page through leads updated since the bookmark's day, newest created first."""
        params: list[tuple[str, str]] = [("per_page", str(min(self.page_size or _PER_PAGE,
                                                                 _PER_PAGE)))]
        if stream == "lead_phones":
            params.append(("include[]", "phones"))
        if since is not None:
            # Day precision (§5): re-read the bookmark's day, then drop what is older.
            params.append(("filter[updated_at][gte]", since.date().isoformat()))
        seen: set[str] = set()
        for lead in follow_next_links(self._get_page, "leads", params):
            if since is not None and _older(lead.get("updated_at"), since):
                continue
            if stream == "leads":
                if str(lead["id"]) not in seen:
                    seen.add(str(lead["id"]))
                    yield self.to_lead(lead)
                continue
            for native in _phones_of(lead):
                phone = self.to_phone_record(native, lead)
                if phone.id in seen:  # a lead moved between pages while we read
                    continue
                seen.add(t.cast("str", phone.id))
                yield {**phone.to_dict(), "lead_updated_at": lead.get("updated_at")}

    def _get_page(self, url: str, params: t.Any) -> dict[str, t.Any]:
        return t.cast("dict[str, t.Any]", self.client.get_json(url, params))

    def to_phone_record(self, native: dict[str, t.Any], lead: dict[str, t.Any] | None = None
                        ) -> PhoneRecord:
        """Activix phone (current or older shape, §6) -> canonical record."""
        lead_id = native.get("lead_id") or (native.get("lead") or {}).get("id") or (
            lead or {}).get("id")
        label = native.get("type")
        if label is None and "mobile" in native:  # the older schema's boolean flag
            label = "mobile" if native["mobile"] else None
        return self.phone_record(
            native,
            id=native.get("id"),
            owner=Owner("lead", str(lead_id)),
            number=native.get("number"),
            extension=native.get("extension"),
            label=label,
            created_at=native.get("created_at"),
            updated_at=native.get("updated_at"),
        )

    def to_lead(self, lead: dict[str, t.Any]) -> dict[str, t.Any]:
        """Activix lead -> parent record (phones travel in ``lead_phones``)."""
        return {
            "id": str(lead["id"]), "provider": self.name,
            "first_name": lead.get("first_name"), "last_name": lead.get("last_name"),
            "created_at": lead.get("created_at"), "updated_at": lead.get("updated_at"),
            "raw": {k: v for k, v in lead.items() if k not in ("phones", "leadPhones")},
        }

    # -- write ------------------------------------------------------------------------

    def current_phones(self, owners: Sequence[Owner]) -> Iterator[PhoneRecord]:
        """The phones of these leads, by the cheaper of two reads (the list has no id filter, §5).

        One ``GET /leads/:id?include[]=phones`` per lead, or every page of the lead list when
        the account has fewer pages than the batch has leads. The first page, fetched to learn
        the page count, is used either way when paging wins. The per-lead GETs run
        ``max_concurrency`` at a time.
        """
        wanted = sorted({o.parent_id for o in owners})
        if len(wanted) > _LOOKUPS_BEFORE_PAGING:
            params = [("include[]", "phones"), ("per_page", str(_PER_PAGE))]
            first = self._get_page("leads", params)
            if int((first.get("meta") or {}).get("last_page") or 1) < len(wanted):
                yield from self._phones_from_pages(first, set(wanted))
                return
        # One GET per lead, max_concurrency at a time (the pacing still holds the rate).
        for phones in ordered_map(self._lead_phones, wanted, self.concurrency):
            yield from phones

    def _phones_from_pages(self, first: dict[str, t.Any], wanted: set[str]
                           ) -> Iterator[PhoneRecord]:
        next_url = (first.get("links") or {}).get("next")
        rest = follow_next_links(self._get_page, next_url, None) if next_url else iter(())
        for lead in itertools.chain(first.get("data") or [], rest):
            if str(lead.get("id")) in wanted:
                yield from (self.to_phone_record(p, lead) for p in _phones_of(lead))

    def _lead_phones(self, lead_id: str) -> list[PhoneRecord]:
        document = self.client.get_json(f"leads/{lead_id}", [("include[]", "phones")],
                                        absent_ok=True)
        if document is None:  # the lead is gone: it holds nothing
            return []
        lead = _unwrap(document)
        return [self.to_phone_record(p, lead) for p in _phones_of(lead)]

    def write_attributes(self, phone: PhoneRecord) -> dict[str, t.Any]:
        """``number``, ``type`` and ``extension`` as a write sets them (§6)."""
        attributes: dict[str, t.Any] = {"number": phone.e164,
                                        "extension": _extension(phone.extension)}
        if phone.phone_type is not None:
            attributes["type"] = native_type(self.name, phone.phone_type)
        return attributes

    def current_attributes(self, phone: PhoneRecord) -> dict[str, t.Any]:
        """The same, as held (``type`` of older records derived from ``mobile``)."""
        return {"number": phone.e164, "type": phone.label,
                "extension": _extension(phone.extension)}

    def settle(self, plans: list[PlannedWrite], current: Sequence[PhoneRecord]
               ) -> list[PlannedWrite]:
        """A lead holds one phone per number and one per type (§6, §7): plan by those rules.

        A new extension for a number the lead holds is that phone updated in place; when
        several input records give one number different extensions, the latest wins, whether
        the lead holds the number or not.
        Then the type slots: the latest typed record claims a slot first, untyped ones take
        the first free slot of mobile, work, home. A record whose slot another phone holds
        is rejected with that reason (instead of earning a 403), or, with
        ``type_slot_conflict: replace``, a new number updates the slot's phone to it.
        """
        by_number = {(phone.parent_id, phone.e164): phone for phone in current if phone.e164}
        for plan in plans:
            same = by_number.get((plan.wanted.parent_id, plan.wanted.e164))
            if plan.action == "create" and same is not None:
                plan.action, plan.current = "update", same
                plan.changes = self.changes(plan.wanted, same)
        # One phone per number: a held one, or the run's new one (two new extensions of one
        # number would be two creates, the second refused as a duplicate).
        latest: dict[t.Any, PlannedWrite] = {}
        for plan in sorted(plans, key=lambda p: -t.cast("int", p.seq)):
            if plan.action == "reject":
                continue
            number = plan.current.id if plan.current else (plan.wanted.parent_id, plan.wanted.e164)
            if number in latest:
                plan.action = "reject"
                plan.note = (f"input record {latest[number].seq} gives this number "
                             "another extension; Activix holds a number once per lead")
            else:
                latest[number] = plan
        self._settle_slots(plans, current, {p.current.id for p in latest.values() if p.current})
        return plans

    def _settle_slots(self, plans: list[PlannedWrite], current: Sequence[PhoneRecord],
                      mentioned: set[str | None]) -> None:
        """One phone per type per lead: each write claims its slot, latest typed first."""
        moving = {p.current.id for p in plans if p.current and p.action == "update"
                  and "type" in p.changes}
        holders = {(phone.parent_id, phone.label): phone for phone in current
                   if phone.label and phone.id not in moving}
        taken: dict[tuple[str, str], str | None] = {slot: phone.id
                                                    for slot, phone in holders.items()}
        writes = [p for p in plans if p.action in ("create", "update")]
        typed = [p for p in writes if self._slot(p)]
        untyped = [p for p in writes if not self._slot(p)]
        for plan in [*sorted(typed, key=lambda p: -t.cast("int", p.seq)),
                     *sorted(untyped, key=lambda p: -t.cast("int", p.seq))]:
            lead = plan.wanted.parent_id or ""
            mine = plan.current.id if plan.current else None
            slot = self._slot(plan)
            if slot is None:
                slot = next((s for s in _TYPES if (lead, s) not in taken), None)
                plan.wanted.phone_type = slot
                if slot is not None and plan.current is not None:
                    plan.changes = self.changes(plan.wanted, plan.current)
            holder = taken.get((lead, slot), mine) if slot else None
            if slot is not None and holder == mine:
                taken[(lead, slot)] = mine or f"new:{plan.seq}"
                continue
            held = holders.get((lead, slot)) if slot else None
            if (self.type_slot_conflict == "replace" and plan.action == "create"
                    and held is not None and holder == held.id and held.id not in mentioned):
                # The source is the truth: the slot's phone takes the source's number.
                plan.action, plan.current = "update", held
                plan.changes = self.changes(plan.wanted, held)
                plan.note = (f"replaces {held.e164} in the lead's {slot} slot "
                             "(type_slot_conflict: replace)")
                taken[(lead, slot)] = held.id
                mentioned.add(held.id)  # the run's now: an earlier record replaces it no more
                continue
            plan.action = "reject"
            plan.note = (f"the lead already has a {slot or 'mobile, work and home'} "
                         "phone; Activix allows one phone per type per lead")

    def _slot(self, plan: PlannedWrite) -> str | None:
        """The type slot a write wants: its own type, else the one its phone holds."""
        return self.write_attributes(plan.wanted).get("type") or (
            plan.current.label if plan.current else None)

    def create(self, phone: PhoneRecord) -> WriteResult:
        """POST /lead-phones (§6); a 403 duplicate is reconciled against the lead's phones."""
        body = {"lead_id": int(phone.parent_id), "number": phone.e164,
                "type": native_type(self.name, phone.phone_type or "other"),
                "extension": _extension(phone.extension)}
        reply = self.client.send_json("POST", "lead-phones", body)
        if reply.status == 403:
            return self._reconcile_duplicate(phone, reply)
        if reply.refused:
            return WriteResult(rejected=reply.refused)
        return WriteResult(destination_id=str(_unwrap(reply.body)["id"]))

    def update(self, current: PhoneRecord, changes: dict[str, t.Any]) -> WriteResult:
        """PUT /lead-phones/:id: the changes, with ``number`` and ``type`` always (the docs
        mark both required, §6 update); a phone deleted meanwhile is recreated with the new
        values."""
        body = {"number": current.e164 or current.number,
                "type": current.label or native_type(self.name, current.phone_type or "other"),
                **changes}
        reply = self.client.send_json("PUT", f"lead-phones/{current.id}", body)
        if reply.status == 404:
            wanted = self.to_phone_record({**current.raw, **body, "id": None})
            created = self.create(wanted)
            if created.rejected or created.outcome:
                return created
            return WriteResult(destination_id=created.destination_id, outcome="created",
                               detail="the phone was deleted in Activix during the run; recreated")
        if reply.refused:  # a 403 duplicate, a 422: its words
            return WriteResult(rejected=reply.refused)
        detail = None
        if "number" in changes:
            detail = f"replaced {current.e164} (type_slot_conflict: replace)"
        return WriteResult(destination_id=current.id, detail=detail)

    def _reconcile_duplicate(self, phone: PhoneRecord, reply: Reply) -> WriteResult:
        """403 ``Duplicate phone.``: the number is there already, or its type slot is taken.

        Any other 403 is the key lacking access (§7): the run stops.
        """
        text = reply.refused or ""
        if "duplicate" not in text.lower():
            raise self.client.answers.credential_error(403, reply.where, text)
        for held in self._lead_phones(phone.parent_id):
            if held.e164 == phone.e164 and (held.extension or "") == (phone.extension or ""):
                return WriteResult(destination_id=held.id, outcome="unchanged",
                                   detail="already on the lead (Activix answered Duplicate phone.)")
        return WriteResult(rejected=f"{text} (lead {phone.parent_id} has another "
                                    f"{native_type(self.name, phone.phone_type or 'other')} phone)")


def _extension(extension: str | None) -> int | str | None:
    """An extension as Activix writes it: an integer (§6), or None."""
    if not extension:
        return None
    return int(extension) if extension.isascii() and extension.isdigit() else extension


def _phones_of(lead: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """Embedded phones, under either spelling the docs show (§3)."""
    return lead.get("phones") or lead.get("leadPhones") or lead.get("lead_phones") or []


def _unwrap(document: dict[str, t.Any]) -> dict[str, t.Any]:
    """Current docs wrap single objects in ``data``; older ones answer bare (§6)."""
    inner = document.get("data")
    return inner if isinstance(inner, dict) else document


def _older(updated_at: str | None, since: datetime.datetime) -> bool:
    if not updated_at:
        return False
    import pendulum

    return pendulum.parse(updated_at) < since  # type: ignore[operator]


def _error_words(body: t.Any) -> str | None:
    """``message`` plus the per-field messages of a 422 (§7).

    >>> _error_words({"message": "The given data was invalid.",
    ...               "errors": {"lead_id": ["The field lead_id is required."]}})
    'The given data was invalid. (lead_id: The field lead_id is required.)'
    """
    if not isinstance(body, dict):
        return None
    text = str(body.get("message") or "")
    errors = body.get("errors")
    if isinstance(errors, dict):
        details = "; ".join(f"{field}: {' '.join(map(str, msgs if isinstance(msgs, list) else [msgs]))}"
                            for field, msgs in errors.items())
        text = f"{text} ({details})" if text else details
    return text or None
