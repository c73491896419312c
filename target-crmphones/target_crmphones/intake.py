"""Intake: each input record checked, normalized and shaped into a staged row.

A record the target cannot write (no parent, no number, a field of the wrong type, an
owner kind the CRM lacks or that cannot be told among its kinds (``Dialect.owner_kind``), an
owner id that is not an integer from 1 to 2**63-1, an owner without the ancestors its route
needs (``Dialect.missing_ancestors``), a number that is not valid) gets its reason here and is
never sent: every check that needs no answer from the CRM is made here, so a dry run rejects
what the real run will.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import typing as t

import orjson

from crmphones.dialects.base import MAX_ID, is_integer_id
from crmphones.phones import PHONE_TYPES, canonical_phone_type, normalize
from crmphones.records import PhoneRecord

if t.TYPE_CHECKING:
    from collections.abc import Sequence

    from crmphones.dialects.base import Dialect

__all__ = ["Intake", "record_text", "wanted_phones"]


_FIELDS = ("source_id", "parent_type", "parent_id", "ancestors", "number", "e164", "extension",
           "region", "phone_type", "label", "is_primary", "reject_reason")
_TEXT_FIELDS = ("parent_id", "parent_type", "number", "e164", "extension", "region",
                "phone_type", "label")
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
#: Limits a record must keep, checked before DuckDB (or a recursive walk) sees it: a phone
#: record is a few hundred bytes, and nothing a CRM holds nests this deep (orjson writes no
#: deeper either).
MAX_RECORD_BYTES = 1_000_000
MAX_DEPTH = 254
#: Longest stream name taken; longer names are not streams a tap sends.
MAX_STREAM_NAME = 255
_KEPT_OF_REJECT = 10_000  # characters of an oversized or unreadable input kept in the ledger


class Intake:
    """Turns (seq, stream, record) into staged rows for one destination."""

    def __init__(self, dialect: Dialect, parent_map: dict[str, str] | None) -> None:
        """Bind to the destination (its owner kinds, default region) and the parent map."""
        self.dialect = dialect
        self.parent_map = parent_map

    def rows(self, batch: Sequence[tuple[int, str, dict[str, t.Any]]]) -> list[dict[str, t.Any]]:
        """One staged row per record, in order."""
        return [self.normalize(seq, stream, record) for seq, stream, record in batch]

    def normalize(self, seq: int, stream: str, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """Check and normalize one input record into a staged row (with a reason if rejected)."""
        try:
            text = record_text(record)
        except ValueError as exc:
            return self.reject(seq, stream, "(not kept: nested too deep to write as text)",
                               str(exc), record)
        if len(text) > MAX_RECORD_BYTES:
            return self.reject(seq, stream, text, f"record larger than {MAX_RECORD_BYTES:,} "
                               "characters of JSON", record)
        row = _row(seq, stream, text)
        try:
            row.update(self._read_fields(record, stream))
        except ValueError as exc:
            row["reject_reason"] = str(exc)
            return row
        row.update(self._number(row["e164"], row["number"], row["extension"], row["region"]))
        return row

    def reject(self, seq: int, stream: str | None, text: str, reason: str,
               record: t.Any = None) -> dict[str, t.Any]:
        """A rejected row for input that cannot be read as a record: its text (cut to a
        readable length, as a JSON string), its reason, and the identity fields (``id``,
        ``parent_id``, ``number``) that could be read."""
        row = _row(seq, stream, json.dumps(text[:_KEPT_OF_REJECT]))
        row["reject_reason"] = reason
        if isinstance(record, dict):
            for field, name in (("source_id", "id"), ("parent_id", "parent_id"),
                                ("number", "number")):
                value = record.get(name)
                if isinstance(value, str | int) and not isinstance(value, bool):
                    row[field] = str(value)[:_KEPT_OF_REJECT // 10]
        return row

    def _number(self, e164: str | None, number: str | None, extension: str | None,
                region: str | None) -> dict[str, t.Any]:
        """The normalized number's fields of a row, and its reason when it is not valid."""
        normalized = normalize(e164 or number, extension, region_hint=region,
                               default_region=self.dialect.default_region)
        fields = {"e164": normalized.e164, "extension": normalized.extension,
                  "region": normalized.region}
        if not normalized.is_valid:
            fields["reject_reason"] = normalized.reason
        return fields

    def _read_fields(self, record: dict[str, t.Any], stream: str) -> dict[str, t.Any]:
        """The canonical fields the target needs, type-checked; ValueError says what is wrong."""
        if not isinstance(record, dict):
            msg = "record is not a JSON object"
            raise ValueError(msg)
        fields: dict[str, t.Any] = {}
        for name in _TEXT_FIELDS:
            # Text or absent, as most fields are, is read here: a call for each was half the
            # time of this method.
            value = record.get(name)
            if value.__class__ is str:
                fields[name] = value.strip() or None
            else:
                fields[name] = None if value is None else _text(name, value)
        given = _ancestors(record)
        fields["source_id"] = _text("id", record.get("id"))
        if not fields["parent_id"]:
            msg = "missing parent_id"
            raise ValueError(msg)
        if not (fields["number"] or fields["e164"]):
            msg = "missing number (or e164)"
            raise ValueError(msg)
        if self.parent_map is not None:
            source = f"{fields['parent_type'] or 'parent'} {fields['parent_id']}"
            fields["parent_id"] = self.parent_map.get(_canonical_id(fields["parent_id"]))
            if fields["parent_id"] is None:
                msg = f"{source} has no row in the parent map (parent_map_path)"
                raise ValueError(msg)
        kind = fields["parent_type"] = self.dialect.owner_kind(
            fields["parent_type"], stream, mapped=self.parent_map is not None)
        # Only the ancestors that address this kind of owner: another kind would make a
        # second key for the same owner, and a duplicate phone on every rerun.
        ancestors = {str(k): str(v) for k, v in given.items()
                     if k in self.dialect.ancestor_kinds.get(kind, ())}
        # Ids go into URL paths and id filters, where `3/../4` or `1,4` names another record.
        foreign = next((i for i in (fields["parent_id"], *ancestors.values())
                        if not is_integer_id(i)), None)
        if foreign is not None:
            shown = foreign if len(foreign) <= 24 else f"{foreign[:20]}…"
            msg = f"{self.dialect.title} ids are integers from 1 to {MAX_ID}, got {shown!r}"
            raise ValueError(msg)
        # Decided here, not by the write: a dry run rejects it as the real run does.
        missing = self.dialect.missing_ancestors(kind, ancestors)
        if missing:
            raise ValueError(missing)
        # One owner, one key: ids as the CRM's integers write them (`0005001` is owner 5001).
        fields["parent_id"] = _canonical_id(fields["parent_id"])
        fields["ancestors"] = json.dumps({k: _canonical_id(v) for k, v in ancestors.items()},
                                         sort_keys=True) if ancestors else None
        kind = fields["phone_type"]
        if kind not in PHONE_TYPES:
            text = kind or fields["label"]
            fields["phone_type"] = _phone_type(text) if text else None
        fields["is_primary"] = _boolean("is_primary", record.get("is_primary"))
        return fields


def _row(seq: int, stream: str | None, text: str) -> dict[str, t.Any]:
    row: dict[str, t.Any] = dict.fromkeys(_FIELDS)
    row.update(seq=seq, stream=stream, record=text,
               fingerprint=hashlib.sha256(f"{stream}\n{text}".encode(
                   "utf-8", "surrogatepass")).hexdigest()[:32])
    return row


def _deeper_than(value: t.Any, limit: int) -> bool:
    """Whether objects and arrays nest more than ``limit`` levels (walked without recursion)."""
    level = [value]
    for _ in range(limit):
        level = [child for item in level if isinstance(item, dict | list)
                 for child in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)


def record_text(record: t.Any) -> str:
    """The record as canonical JSON (sorted keys): what is staged and fingerprinted.

    orjson first; what it refuses (integers past 64 bits, lone surrogates) is written by
    ``json`` instead, with NaN and infinities as null, as orjson writes them: the text is
    staged as JSON unchecked, so it must be JSON. A record nested deeper than ``MAX_DEPTH``
    (which orjson refuses too) raises ValueError, before ``json`` recurses into it.
    """
    try:
        return orjson.dumps(record, option=_SORTED, default=str).decode()
    except (orjson.JSONEncodeError, TypeError):
        if _deeper_than(record, MAX_DEPTH):  # what orjson refuses, before ``json`` recurses
            msg = f"record nested deeper than {MAX_DEPTH} levels"
            raise ValueError(msg) from None
        return json.dumps(_finite(record), default=str, sort_keys=True, allow_nan=False)


def _finite(value: t.Any) -> t.Any:
    """``value`` with every float that is not finite as None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _text(name: str, value: t.Any) -> str | None:
    """A field's value as a string; numbers become strings (ids), other types are refused."""
    if value.__class__ is str:  # the common case, first
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        msg = f"{name} must be a string, got {type(value).__name__}"
        raise ValueError(msg)
    return str(value).strip() or None


def _ancestors(record: dict[str, t.Any]) -> dict[str, t.Any]:
    """A record's ``ancestors``, ids by kind: an object, its JSON text (a CSV tap's column),
    or flattened into ``ancestors__<kind>`` fields (the SDK's flattening)."""
    value = record.get("ancestors")
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else None
        except ValueError:
            value = "not JSON"  # refused below
    flattened = {key[len(_FLAT_ANCESTOR):]: v for key, v in record.items()
                 if key.startswith(_FLAT_ANCESTOR) and v not in (None, "")}
    value = {} if value is None else value
    if not isinstance(value, dict) or not all(
            isinstance(v, str | int) and not isinstance(v, bool)
            for v in (*value.values(), *flattened.values())):
        msg = "ancestors must be an object of ids by kind"
        raise ValueError(msg)
    return {**value, **flattened}


_FLAT_ANCESTOR = "ancestors__"
_TRUE, _FALSE = frozenset(("true", "t", "yes", "y", "1")), frozenset(("false", "f", "no", "n", "0"))


def _boolean(name: str, value: t.Any) -> bool | None:
    """A boolean field as JSON or a CSV tap writes it (``true``, ``0``, ``yes``; ``""`` is
    null); ValueError for anything else."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return None
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
    msg = f"{name} must be a boolean (true/false, 1/0, yes/no), got {str(value)[:40]!r}"
    raise ValueError(msg)


def _canonical_id(value: str) -> str:
    """An integer id as the CRM writes it (no leading zeros); other text as it is."""
    return str(int(value)) if value.isascii() and value.isdigit() else value


# Labels repeat ("Cell", "Office"...): each is read once.
_phone_type = functools.lru_cache(maxsize=4096)(canonical_phone_type)


def wanted_phones(provider: str, winners: Sequence[tuple[t.Any, ...]]
                  ) -> list[tuple[int, PhoneRecord]]:
    """(seq, the phone it asks the destination to hold) for each winning staged row (a tuple
    of ``staging.WINNER_COLUMNS``, as ``Staging.winners_and_merged`` gives them)."""
    wanted = []
    for (seq, _, parent_type, parent_id, ancestors, number, e164, extension, region, phone_type,
         label, is_primary) in winners:
        # Positional, in ``PhoneRecord``'s field order (checked by tests/target/test_staging.py).
        wanted.append((seq, PhoneRecord(
            None, provider, parent_type, parent_id, number or e164, e164, extension, region,
            phone_type, label, is_primary, True, None, None,
            json.loads(ancestors) if ancestors else {})))
    return wanted
