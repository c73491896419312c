"""A seeded messy Singer stream of canonical phone records, as a warehouse or a CSV tap sends them.

Every record has the canonical fields (``crmphones/records.py``) with the number as a person
typed it (formats, extensions, international, junk), no ``e164`` (the target must parse it),
a ``raw`` object like the source's native record, and 6% exact repeats of an earlier record
(re-exports happen). Run: ``python benchmarks/messy_stream.py 1000000 > messy.singer``.
"""

from __future__ import annotations

import json
import random
import sys
import typing as t

from crmphones_emulators.fake import messy_phone

_TEXT = {"type": ["string", "null"]}
#: What a warehouse table or a CSV tap declares: every column nullable.
SCHEMA = {"type": "object", "properties": {
    **{name: _TEXT for name in ("id", "provider", "parent_type", "parent_id", "number", "e164",
                                "extension", "region", "phone_type", "label")},
    "is_primary": {"type": ["boolean", "null"]}, "is_valid": {"type": ["boolean", "null"]},
    "created_at": {"type": ["string", "null"], "format": "date-time"},
    "updated_at": {"type": ["string", "null"], "format": "date-time"},
    "ancestors": {"type": ["object", "null"]}, "raw": {"type": ["object", "null"]},
}}
LABELS = ("Cell", "Office", "Home", "mobile", "work", "Fax", "Main line", None)


def messy_records(count: int, *, parents: int = 50_000, seed: str = "bench-cpu"
                  ) -> t.Iterator[dict[str, t.Any]]:
    """``count`` records over ``parents`` prospects."""
    rng = random.Random(seed)
    recent: list[dict[str, t.Any]] = []
    for index in range(1, count + 1):
        if recent and rng.random() < 0.06:
            yield rng.choice(recent)
            continue
        number, label = messy_phone(rng), rng.choice(LABELS)
        updated = f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:" \
                  f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
        parent = str(rng.randint(1, parents))
        record = {
            "id": str(index), "provider": "outreach", "parent_type": "prospect",
            "parent_id": parent, "number": number, "e164": None, "extension": None,
            "region": None, "phone_type": None, "label": label, "is_primary": index % 3 == 0,
            "is_valid": False, "created_at": updated, "updated_at": updated, "ancestors": None,
            "raw": {"type": "phoneNumber", "id": index,
                    "attributes": {"number": number, "phoneType": label, "order": index % 3,
                                   "status": "valid", "updatedAt": updated},
                    "relationships": {"prospect": {"data": {"type": "prospect", "id": parent}}}},
        }
        if len(recent) < 1000:
            recent.append(record)
        else:
            recent[rng.randrange(1000)] = record
        yield record


def singer_lines(count: int, stream: str = "phone_numbers") -> t.Iterator[str]:
    """SCHEMA, the RECORD lines, and a closing STATE."""
    yield json.dumps({"type": "SCHEMA", "stream": stream, "key_properties": [],
                      "schema": SCHEMA})
    for record in messy_records(count):
        yield json.dumps({"type": "RECORD", "stream": stream, "record": record})
    yield json.dumps({"type": "STATE", "value": {"bookmarks": {stream: {"done": count}}}})


if __name__ == "__main__":
    out = sys.stdout
    for line in singer_lines(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000):
        out.write(line + "\n")
