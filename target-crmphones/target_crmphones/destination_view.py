"""What this run read of the destination: an owner's phones, read for one batch's diff, serve
the next batches for a while instead of being listed again.

A warehouse export is seldom sorted by parent, so a parent's records are spread over many
batches: 1,000,000 records over 50,000 prospects, in batches of 10,000, listed each prospect
17 times (3,300 Outreach listings where 200 hold them all). What was read is kept per owner
for ``seconds`` (in the staging file's TEMP tables: bounded memory, gone with the run). An
owner this run writes to is forgotten before the write, so its next diff reads it again. A
person's edit in the CRM within that time is missed, as one made between a batch's read and
its writes always could be; ``seconds`` 0 reads every batch's owners (setting
``reuse_reads_seconds``).
"""

from __future__ import annotations

import time
import typing as t

import orjson

from crmphones.records import Owner, PhoneRecord

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from target_crmphones.staging import Staging

__all__ = ["DestinationView"]


class DestinationView:
    """The destination's phones per owner, as read in this run, for ``seconds``."""

    def __init__(self, staging: Staging, seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Keep reads in ``staging`` for ``seconds`` (0: keep nothing) by ``clock``."""
        self.staging = staging
        self.seconds = seconds
        self.clock = clock
        #: Owners listed from the destination, and owners served from an earlier read.
        self.owners_read = 0
        self.owners_reused = 0

    def phones(self, owners: Sequence[Owner],
               read: Callable[[Sequence[Owner]], Iterable[PhoneRecord]]) -> list[PhoneRecord]:
        """Every phone the destination holds on these owners: kept ones, and ``read`` (a
        dialect's ``current_phones``) for the others.

        Each owner's phones keep the order they were read in (a dialect's rules may take the
        first of two equal ones). A read may bring other owners' phones too (a page of
        leads): they are passed on, but not kept, as nothing says they are all of theirs.
        """
        if self.seconds <= 0:
            self.owners_read += len(owners)
            return list(read(owners))
        keys = {_key(owner): owner for owner in owners}
        kept = self.staging.read_since(list(keys), self.clock() - self.seconds)
        missing = {key: owner for key, owner in keys.items() if key not in kept}
        read_at = self.clock()
        current = list(read(list(missing.values()))) if missing else []
        self.staging.keep_read(
            list(missing), read_at,
            [(key, _text(phone)) for phone in current if (key := _key(Owner.of(phone))) in missing])
        self.owners_read += len(missing)
        self.owners_reused += len(kept)
        return [*(_phone(text) for texts in kept.values() for text in texts), *current]

    def forget(self, owners: Iterable[Owner]) -> None:
        """These owners are about to be written to: read them again when next needed."""
        self.staging.forget_read([_key(owner) for owner in owners])


def _key(owner: Owner) -> str:
    return orjson.dumps((owner.parent_type, owner.parent_id, owner.ancestors)).decode()


def _text(phone: PhoneRecord) -> str:
    return orjson.dumps(phone.to_dict()).decode()


def _phone(text: str) -> PhoneRecord:
    return PhoneRecord(**orjson.loads(text))
