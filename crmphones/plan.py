"""Planning: the phones a load wants vs the phones the destination holds.

A phone is identified on its owner by E.164 + extension. A wanted phone the owner lacks
is created; one it has is updated with only the attributes that differ (unless the load is
append-only: then it is left as it is); the rest is left alone. Phones the destination holds
and the input does not mention are never touched, except where a dialect's rule needs one
more write to leave the owner as the CRM's rules mean it (the old primary written not
primary, ``Dialect.settle``): such a write has no input record of its own
(``PlannedWrite.seq`` is None).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from crmphones.records import Owner

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from crmphones.records import PhoneRecord

__all__ = ["APPEND_ONLY_NOTE", "PlannedWrite", "phone_key", "plan_writes"]

#: The note of a phone an append-only load found with other attributes and left as it is.
APPEND_ONLY_NOTE = "append-only: not updated"

PhoneKey = tuple[Owner, str, str]


class Differ(t.Protocol):
    """What planning needs of a dialect (``Dialect.changes``), named here so that the
    planner does not import the dialect contract, which itself names ``PlannedWrite``."""

    def changes(self, wanted: PhoneRecord, current: PhoneRecord) -> dict[str, t.Any]:
        """Native attributes an update must send: those whose values differ."""
        ...


def phone_key(phone: PhoneRecord) -> PhoneKey | None:
    """Owner + E.164 + extension, or None for a phone that is not a valid number."""
    if not phone.e164:
        return None
    return Owner.of(phone), phone.e164, phone.extension or ""


@dataclass(slots=True)
class PlannedWrite:
    """What to do for one wanted phone."""

    #: The input record's sequence number in the run; None for a write a dialect's rule
    #: adds for no input record of its own (``Dialect.settle``: the owner's old primary
    #: written not primary). The loader sends it like any update, records nothing for it
    #: in the ledger (no record was received for it), and the API calls count it.
    seq: int | None
    #: ``create``, ``update``, ``unchanged``, or ``reject`` (a dialect's rule refused it).
    action: str
    #: The phone as the input wants it.
    wanted: PhoneRecord
    #: The destination's phone it matched, if any.
    current: PhoneRecord | None = None
    #: Native attributes to send on an update.
    changes: dict[str, t.Any] = field(default_factory=dict)
    #: Why a dialect's rule changed the plan (kept with the outcome).
    note: str | None = None


def plan_writes(
    wanted: Sequence[tuple[int, PhoneRecord]],
    current: Iterable[PhoneRecord],
    dialect: Differ,
    *,
    updates: bool = True,
) -> list[PlannedWrite]:
    """Plan one write (or none) per wanted phone.

    Args:
        wanted: (seq, phone) pairs, already de-duplicated by ``phone_key``.
        current: The destination's phones of the same owners.
        dialect: Knows which native attributes a write sets.
        updates: False for an append-only load (``load_method``): a phone the owner holds
            with other attributes is ``unchanged``, its note naming what differs.

    Returns:
        One ``PlannedWrite`` per wanted phone, in input order.
    """
    held: dict[PhoneKey, PhoneRecord] = {}
    for phone in current:
        key = phone_key(phone)
        if key is not None:
            held.setdefault(key, phone)  # the destination's own duplicates: match the first
    plans = []
    for seq, phone in wanted:
        key = phone_key(phone)
        match = held.get(key) if key else None
        if match is None:
            plans.append(PlannedWrite(seq, "create", phone))
            continue
        changes = dialect.changes(phone, match)
        if changes and not updates:
            plans.append(PlannedWrite(seq, "unchanged", phone, match, note=(
                f"{APPEND_ONLY_NOTE} ({', '.join(sorted(changes))} differ)")))
            continue
        plans.append(PlannedWrite(seq, "update" if changes else "unchanged", phone, match, changes))
    return plans
