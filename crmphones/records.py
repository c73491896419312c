"""The canonical phone record: what every phone stream emits and what the target accepts.

The schema is defined once here; the tap declares it on every phone stream and the
target checks incoming records against the fields it needs. ``Owner`` and ``WriteResult``
live here too: the dialects and the planner both use them, so they sit below both.
"""

from __future__ import annotations

import enum
import typing as t
from dataclasses import dataclass, field, fields

from singer_sdk import typing as th

from crmphones.phones import PHONE_TYPES

__all__ = ["ANCESTOR_KINDS", "PARENT_TYPES", "PHONE_RECORD_SCHEMA", "Outcome", "Owner",
           "PhoneRecord", "WriteResult", "ancestors_property", "phone_schema", "raw_property"]

#: Owners a phone can hang off, across the four dialects.
PARENT_TYPES = ("prospect", "lead", "organization", "location", "opportunity", "client")
#: Kinds of owner that own other owners (One Degree: an organization above a location or an
#: opportunity, an opportunity above a location): the keys ``ancestors`` can hold.
ANCESTOR_KINDS = ("organization", "opportunity")


class Outcome(str, enum.Enum):
    """What became of one input record; every record ends in exactly one."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    MERGED = "merged"  # a duplicate of a later record in the same load
    REJECTED = "rejected"


@dataclass(slots=True)
class PhoneRecord:
    """One phone number, in the shape shared by every dialect."""

    #: The phone's id in the source CRM (string whatever the API's type).
    id: str | None
    #: Dialect name (``outreach``, ``activix``, ``onedegree``, ``ticketevolution``).
    provider: str
    #: Kind of owner, one of ``PARENT_TYPES``.
    parent_type: str
    #: The owner's id in the source CRM.
    parent_id: str
    #: The number as stored in the source, untouched.
    number: str | None
    #: E.164 form, or None when the number is not valid.
    e164: str | None = None
    #: Extension digits.
    extension: str | None = None
    #: ISO 3166 alpha-2 region per libphonenumber.
    region: str | None = None
    #: Canonical type, one of ``PHONE_TYPES``.
    phone_type: str | None = "other"
    #: The source's own type or label text.
    label: str | None = None
    is_primary: bool | None = None
    is_valid: bool = False
    created_at: str | None = None
    updated_at: str | None = None
    #: Ids of the owner's own owners, by kind, for APIs that nest phones
    #: (``{"organization": "12"}`` above a location).
    ancestors: dict[str, str] = field(default_factory=dict)
    #: The native record as received.
    raw: dict[str, t.Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, t.Any]:
        """Return the record as a Singer RECORD body.

        Shallow: ``raw`` and ``ancestors`` are handed over, not deep-copied (``asdict`` would
        copy every native record, which cost the tap more than the HTTP round trip a page).
        """
        return {name: getattr(self, name) for name in _FIELD_NAMES}


_FIELD_NAMES = tuple(f.name for f in fields(PhoneRecord))


class Owner(t.NamedTuple):
    """Who a phone belongs to, with whatever a nested API needs to address it."""

    parent_type: str
    parent_id: str
    #: (kind, id) of the owner's own owners, sorted: hashable and comparable.
    ancestors: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, phone: PhoneRecord) -> Owner:
        """The owner of a phone record."""
        ancestors = phone.ancestors
        return cls(phone.parent_type, phone.parent_id,
                   tuple(sorted(ancestors.items())) if ancestors else ())

    def ancestor(self, kind: str) -> str | None:
        """The id of the ancestor of that kind, if any."""
        return dict(self.ancestors).get(kind)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The destination's answer to a write: the phone's id, or why the record was refused."""

    #: The destination's id of the phone written (or found already there).
    destination_id: str | None = None
    #: Why the record was refused; it goes to rejects.
    rejected: str | None = None
    #: Overrides the planned outcome: ``unchanged`` when a create found the phone already
    #: there (a duplicate answer reconciled), ``created`` when an update had to recreate.
    outcome: str | None = None
    #: A note kept with the outcome.
    detail: str | None = None
    #: The write was given up (the API kept failing), not refused for its content: the
    #: bookmark must not pass it, so that the next run sends it again.
    given_up: bool = False


def _nullable_string(name: str, description: str, **kwargs: t.Any) -> th.Property:
    return th.Property(name, th.StringType(nullable=True, **kwargs), description=description)


def ancestors_property(description: str | None = None) -> th.Property:
    """``ancestors``: ids by kind, each known kind declared, so that the SDK's flattening
    turns it into ``ancestors__<kind>`` columns (an object declared without properties
    would vanish from a flattened SCHEMA while its records still carry those fields)."""
    return th.Property(
        "ancestors",
        th.ObjectType(*(th.Property(kind, th.StringType(nullable=True)) for kind in ANCESTOR_KINDS),
                      additional_properties=th.StringType, nullable=True),
        description=description)


def raw_property(description: str = "The native record as received") -> th.Property:
    """``raw``: a native record, whatever its shape; declared as an object without
    ``properties``, so the SDK's flattening keeps it whole, as JSON text."""
    return th.Property("raw", th.CustomType({"type": ["object", "null"],
                                             "additionalProperties": True}),
                       description=description)


PHONE_RECORD_SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property("id", th.StringType(nullable=True), description="Phone id in the source CRM"),
    th.Property("provider", th.StringType, required=True, description="Source dialect"),
    th.Property(
        "parent_type", th.StringType(allowed_values=list(PARENT_TYPES)), required=True,
        description="Kind of owner",
    ),
    th.Property("parent_id", th.StringType, required=True, description="Owner id in the source"),
    _nullable_string("number", "The number as stored in the source"),
    _nullable_string("e164", "E.164 form; null when not a valid number"),
    _nullable_string("extension", "Extension digits"),
    _nullable_string("region", "ISO 3166 alpha-2 region per libphonenumber"),
    th.Property(
        "phone_type", th.StringType(allowed_values=list(PHONE_TYPES)), required=True,
        description="Canonical type",
    ),
    _nullable_string("label", "The source's own type or label text"),
    th.Property("is_primary", th.BooleanType(nullable=True), description="Primary number flag"),
    th.Property("is_valid", th.BooleanType, required=True, description="Valid per libphonenumber"),
    th.Property("created_at", th.DateTimeType(nullable=True), description="Created in the source"),
    th.Property("updated_at", th.DateTimeType(nullable=True), description="Updated in the source"),
    ancestors_property("Ids of the owner's own owners by kind, for nested APIs "
                       '(e.g. {"organization": "12"} above a location)'),
    raw_property(),
).to_dict()


def phone_schema(*, without: t.Iterable[str] = (), extra: dict[str, t.Any] | None = None
                 ) -> dict[str, t.Any]:
    """The canonical schema of a dialect's phone stream.

    Args:
        without: Canonical fields the API never holds (Activix has no primary flag): left
            out, so that no stream advertises a column that is always null.
        extra: The stream's own properties (JSON schemas by name), added.
    """
    dropped = set(without)
    properties = {name: prop for name, prop in PHONE_RECORD_SCHEMA["properties"].items()
                  if name not in dropped}
    required = [name for name in PHONE_RECORD_SCHEMA.get("required", []) if name not in dropped]
    return {**PHONE_RECORD_SCHEMA, "properties": {**properties, **(extra or {})},
            "required": required}
