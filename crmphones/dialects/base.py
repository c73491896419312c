"""The contract every CRM dialect fulfils; the tap and the target only talk to this.

A dialect holds everything about one API: settings, auth, endpoints, paging, error
mapping, native record -> ``PhoneRecord``, and ``PhoneRecord`` -> create/update body.
"""

from __future__ import annotations

import abc
import dataclasses
import typing as t
from dataclasses import dataclass

from crmphones.http import RetryPolicy
from crmphones.phones import canonical_phone_type, normalize
from crmphones.plan import PlannedWrite
from crmphones.records import Owner, PhoneRecord, phone_schema

if t.TYPE_CHECKING:
    import datetime
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from crmphones.http import ApiClient
    from crmphones.records import WriteResult

__all__ = ["MAX_ID", "Dialect", "StreamSpec", "is_integer_id"]

#: The largest id: the APIs' integer ids and the ledger's BIGINT are signed 64-bit.
MAX_ID = 2**63 - 1


def is_integer_id(value: str | None) -> bool:
    """Whether an id is ASCII digits naming 1 to ``MAX_ID``, as every id of the four CRMs is.

    Ids go into URL paths and id filters, where other text could address another record
    (``3/../4``, ``%34``, ``1,4``); ``str.isdigit`` alone also takes other scripts' digits.
    A larger id is no record the API holds, and sent as a JSON number it stops the next run
    (``Integer exceeds 64-bit range``).

    >>> [is_integer_id(v) for v in ("42", "3/../4", "%34", "\u0664", "", None)]
    [True, False, False, False, False, False]
    >>> [is_integer_id(v) for v in ("0", str(MAX_ID), str(MAX_ID + 1), "9" * 5000)]
    [False, True, False, False]
    """
    if not (value and value.isascii() and value.isdigit()):
        return False
    digits = value.lstrip("0")  # leading zeros (`0005001`) are issue 26's: read as the number
    return 0 < len(digits) <= len(str(MAX_ID)) and int(digits) <= MAX_ID


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream a dialect can read."""

    #: Singer stream name, e.g. ``phone_numbers``.
    name: str
    #: The stream's JSON schema.
    schema: dict[str, t.Any]
    #: Field bookmarked for incremental reads, or None for FULL_TABLE.
    replication_key: str | None = None
    #: True for streams of canonical phone records (the rest are parents).
    is_phone_stream: bool = True
    #: Whether records arrive sorted by the replication key (resumable mid-stream).
    is_sorted: bool = True
    key_properties: tuple[str, ...] = ("id",)
    #: The one owner kind of a phone stream's records (One Degree's ``location_phones``),
    #: which names the kind of a record that lacks ``parent_type``; None when it has several.
    parent_type: str | None = None


class Dialect(abc.ABC):
    """Base of the four dialects. Subclasses set the class attributes and fill the verbs."""

    #: Registry name, the value of the ``provider`` setting.
    name: t.ClassVar[str]
    #: Human name for messages.
    title: t.ClassVar[str]
    #: The production base URL.
    default_api_url: t.ClassVar[str]
    #: Credential settings (see ``crmphones.settings.CREDENTIALS``) this API needs.
    required_settings: t.ClassVar[tuple[str, ...]]
    #: The streams it can read.
    streams: t.ClassVar[tuple[StreamSpec, ...]]
    #: ``parent_type`` of the phones it writes.
    parent_types: t.ClassVar[tuple[str, ...]]
    #: For each owner kind, the kinds of ``ancestors`` whose ids address it (its nested
    #: route); any other kind a record names is no part of the owner. A record lacking one
    #: is rejected at intake (``missing_ancestors``), so a dry run rejects it as a real run.
    ancestor_kinds: t.ClassVar[dict[str, tuple[str, ...]]] = {}
    #: The rejects only the CRM can give (no local check can foresee them): a dry run's
    #: log says they are not in its plan.
    crm_only_rejects: t.ClassVar[str] = "an owner id the account does not hold"
    #: Pacing when ``max_requests_per_minute`` is not set: just under the documented limit.
    default_requests_per_minute: t.ClassVar[float | None] = None
    #: The documented window ``X-RateLimit-Limit`` counts, in seconds (Outreach: an hour);
    #: None when the API documents none.
    quota_window_seconds: t.ClassVar[float | None] = None

    def __init__(self, config: Mapping[str, t.Any]) -> None:
        """Bind the dialect to one account.

        Args:
            config: The plugin's settings.
        """
        self.config = config
        self.api_url = str(config.get("api_url") or self.default_api_url).rstrip("/")
        self.default_region = str(config.get("default_region") or "US").upper()
        self.page_size = int(config.get("page_size") or 0) or None
        pace = config.get("max_requests_per_minute")
        per_minute = self.default_requests_per_minute if pace is None else float(pace)
        self.requests_per_second = per_minute / 60 if per_minute else None
        #: Pacing is the dialect's default: a limit the API's headers show may replace it.
        self.pace_is_default = pace is None
        max_wait = config.get("max_wait_seconds")
        #: How hard to try one request, and how long a pause the server may ask for.
        self.retry = RetryPolicy(max_wait=None if max_wait is None else float(max_wait))
        #: Least seconds between two lines about one pause (the target's progress lines').
        self.notice_seconds = float(config.get("progress_seconds") or 60)
        #: Requests in flight at once (``max_concurrency``), for writes and child reads.
        self.concurrency = max(1, int(config.get("max_concurrency") or 8))
        self.client = self.build_client()

    @classmethod
    def check_settings(cls, config: Mapping[str, t.Any]) -> str | None:
        """What is missing to reach the API, in one line naming the setting; None: nothing.

        By default every one of ``required_settings``; a dialect with a choice of credentials
        (Outreach: an access token, or OAuth refresh) says so itself.
        """
        for name in cls.required_settings:
            if not config.get(name):
                return f"setting `{name}` is required for provider {cls.name}"
        return None

    def close(self) -> None:
        """Release connections."""
        self.client.close()

    def client_settings(self) -> dict[str, t.Any]:
        """The `ApiClient` keywords every dialect takes from the settings: pacing, the retry
        policy with ``max_wait_seconds``, the pause lines' interval, the quota's window."""
        return {"max_requests_per_second": self.requests_per_second, "retry": self.retry,
                "notice_seconds": self.notice_seconds,
                "quota_window": self.quota_window_seconds,
                "pace_is_default": self.pace_is_default}

    # -- shared helpers ---------------------------------------------------------------

    def owner_kind(self, parent_type: str | None, stream: str, *, mapped: bool = False) -> str:
        """The kind of owner a record's phone is written to: the one rule, for every dialect.

        The record's own ``parent_type``; without one, the kind of the stream it arrived on
        when that stream (one of this dialect's) holds one kind; else this CRM's kind when it
        has only one. A kind is never guessed among several: the record is rejected. With a
        parent map (``mapped``) the mapped id is this CRM's one kind when it has one kind (the
        record's kind is the source CRM's); with several, the record must name one of them.

        Raises:
            ValueError: the reason no kind can be written to (the record's reject reason).
        """
        kinds = self.parent_types
        if len(kinds) == 1 and (mapped or not parent_type):
            return kinds[0]
        kind = parent_type or next((spec.parent_type for spec in self.streams
                                    if spec.name == stream), None)
        if kind is None:
            msg = (f"missing parent_type: a {self.title} phone belongs to one of "
                   f"{', '.join(kinds)}, and stream {stream!r} does not say which")
            raise ValueError(msg)
        if kind not in kinds:
            msg = f"parent_type {kind!r} cannot be written to {self.title} (accepts: {', '.join(kinds)})"
            raise ValueError(msg)
        return kind

    def missing_ancestors(self, kind: str, ancestors: Mapping[str, str]) -> str | None:
        """Why an owner of ``kind`` with these ``ancestors`` cannot be addressed, or None."""
        missing = [k for k in self.ancestor_kinds.get(kind, ()) if not ancestors.get(k)]
        if not missing:
            return None
        return (f"a {self.title} {kind} phone needs its "
                f"{' and '.join(f'ancestors.{k}' for k in missing)} (the {kind}'s route "
                f"goes through it)")

    def phone_record(
        self,
        native: dict[str, t.Any],
        *,
        id: str | int | None,
        owner: Owner,
        number: str | None,
        extension: str | int | None = None,
        label: str | None = None,
        region_hint: str | None = None,
        is_primary: bool | None = None,
        created_at: str | None = None,
        updated_at: str | None = None,
    ) -> PhoneRecord:
        """Build a canonical record from a native one, normalizing the number."""
        normalized = normalize(
            number, extension, region_hint=region_hint, default_region=self.default_region,
            line_type=True,
        )
        return PhoneRecord(
            id=None if id is None else str(id),
            provider=self.name,
            parent_type=owner.parent_type,
            parent_id=owner.parent_id,
            number=number,
            e164=normalized.e164,
            extension=normalized.extension,
            region=normalized.region,
            phone_type=canonical_phone_type(label, default=normalized.line_type or "other"),
            label=label,
            is_primary=is_primary,
            is_valid=normalized.is_valid,
            created_at=created_at,
            updated_at=updated_at,
            ancestors=dict(owner.ancestors),
            raw=native,
        )

    @staticmethod
    def phone_schema() -> dict[str, t.Any]:
        """The canonical schema, shared by every phone stream."""
        return phone_schema()

    # -- verbs ------------------------------------------------------------------------

    @abc.abstractmethod
    def build_client(self) -> ApiClient:
        """The HTTP client with this API's auth, headers and pacing."""

    @abc.abstractmethod
    def read(self, stream: str, since: datetime.datetime | None) -> Iterator[dict[str, t.Any]]:
        """Yield the records of one stream updated at or after ``since``.

        Phone streams yield ``PhoneRecord.to_dict()`` bodies.
        """

    @abc.abstractmethod
    def current_phones(self, owners: Sequence[Owner]) -> Iterator[PhoneRecord]:
        """Yield the destination's phones of the given owners, as canonical records."""

    @abc.abstractmethod
    def write_attributes(self, phone: PhoneRecord) -> dict[str, t.Any]:
        """Native attributes a write would set for a desired phone (None fields left out)."""

    @abc.abstractmethod
    def current_attributes(self, phone: PhoneRecord) -> dict[str, t.Any]:
        """The same native attributes as the destination holds them now."""

    def changes(self, wanted: PhoneRecord, current: PhoneRecord) -> dict[str, t.Any]:
        """Native attributes an update must send: those whose values differ."""
        have = self.current_attributes(current)
        return {k: v for k, v in self.write_attributes(wanted).items() if have.get(k) != v}

    @abc.abstractmethod
    def create(self, phone: PhoneRecord) -> WriteResult:
        """Create one phone on its owner."""

    def create_many(self, owner: Owner, phones: Sequence[PhoneRecord]) -> Iterable[WriteResult]:
        """Create several phones of one owner; APIs with a batch create override this."""
        del owner
        return [self.create(phone) for phone in phones]

    @abc.abstractmethod
    def update(self, current: PhoneRecord, changes: dict[str, t.Any]) -> WriteResult:
        """Send only ``changes`` (native attributes) to an existing phone."""

    def settle(self, plans: list[PlannedWrite], current: Sequence[PhoneRecord]
               ) -> list[PlannedWrite]:
        """Adjust a plan to the API's own rules (one phone per type...); default: as is.

        A rule may reject a planned write (with a note), turn a create into an update of a
        held phone, or add writes of its own: updates of held phones that no input record
        asks for (``seq`` None), e.g. the old primary written not primary.

        Args:
            plans: The plan for the owners' wanted phones (every input record of the run's
                owners, the latest per phone key).
            current: Every phone the destination holds on those owners.
        """
        del current
        return plans

    def unprimary(self) -> dict[str, t.Any]:
        """The native attributes that make a held phone not its owner's primary."""
        return {"is_primary": False}

    def settle_primaries(self, plans: list[PlannedWrite], current: Sequence[PhoneRecord]
                         ) -> list[PlannedWrite]:
        """One primary per owner, whatever the server does when another is set.

        When the input marks several phones of an owner primary, the latest record wins and
        the others are written not primary. When the input makes a phone primary, every
        other phone the owner holds as primary is written not primary explicitly: by its
        own input record's update when it has one, else by an added update (``seq`` None).
        A CRM that clears the old primary itself then receives a write that changes
        nothing; one that does not ends with two primaries without it. A phone created on
        such an owner without a flag is created not primary: a CRM may make an owner's only
        phone its primary (One Degree, §7), and the winner may be created after it.
        """
        winners: dict[Owner, PlannedWrite] = {}
        for plan in sorted((p for p in plans if p.action != "reject"),
                           key=lambda p: -t.cast("int", p.seq)):
            if plan.wanted.is_primary is not True:
                continue
            owner = Owner.of(plan.wanted)
            if owner not in winners:
                winners[owner] = plan
                continue
            plan.wanted.is_primary = False
            plan.note = "another input record is this owner's primary number"
            if plan.current is not None:
                plan.changes = self.changes(plan.wanted, plan.current)
                plan.action = "update" if plan.changes else "unchanged"
        if not winners:
            return plans
        for plan in plans:
            # A phone created without a flag may become primary by the CRM's default (One
            # Degree: an owner's only phone is primary), beside the winner: say it is not.
            if (plan.action == "create" and plan.wanted.is_primary is None
                    and Owner.of(plan.wanted) in winners):
                plan.wanted.is_primary = False
        by_current = {p.current.id: p for p in plans if p.current is not None}
        added = []
        for phone in current:
            owner = Owner.of(phone)
            winner = winners.get(owner)
            if (winner is None or phone.is_primary is not True
                    or (winner.current is not None and winner.current.id == phone.id)):
                continue
            note = (f"not primary: input record {winner.seq} makes {winner.wanted.e164} "
                    f"this owner's primary")
            own = by_current.get(phone.id)
            if own is None:
                added.append(PlannedWrite(None, "update",
                                          dataclasses.replace(phone, is_primary=False),
                                          phone, self.unprimary(), note))
            elif own.action != "reject":
                own.wanted.is_primary = False
                own.changes = {**own.changes, **self.unprimary()}
                own.action, own.note = "update", own.note or note
        # The added writes go first: each owner's updates are sent in plan order.
        return [*added, *plans]
