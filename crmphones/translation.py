"""Phone types between CRMs: the one table that says how a canonical type is written to each.

Reading is the other direction and needs no table: every dialect passes the CRM's own text
(Outreach ``phoneType``, Activix ``type``, One Degree ``phone_type``, Ticket Evolution
``label``) through ``crmphones.phones.canonical_phone_type``.

``scripts/update_readme.py`` renders ``TYPE_TABLE`` into the README.
"""

from __future__ import annotations

from crmphones.phones import PHONE_TYPES

__all__ = ["FREE_TEXT", "NATIVE_TYPES", "native_type"]

#: CRMs that hold free text: the canonical word itself is written (Ticket Evolution writes the
#: source's own label first when the record has one; see its dialect).
FREE_TEXT = ("onedegree", "ticketevolution")

#: Canonical type -> the type a CRM with a fixed vocabulary accepts (the nearest it has).
NATIVE_TYPES: dict[str, dict[str, str]] = {
    # Outreach phoneType: mobile, work, home, voip, other (outreach.md §4).
    "outreach": {"mobile": "mobile", "work": "work", "home": "home", "voip": "voip",
                 "other": "other", "fax": "other", "main": "work"},
    # Activix: one phone per type per lead, and only three types (activix.md §6).
    "activix": {"mobile": "mobile", "work": "work", "home": "home", "voip": "mobile",
                "other": "home", "fax": "work", "main": "work"},
}


def native_type(provider: str, canonical: str) -> str:
    """The type to write to ``provider`` for a canonical type.

    >>> native_type("activix", "voip"), native_type("outreach", "fax"), native_type("onedegree", "fax")
    ('mobile', 'other', 'fax')
    """
    if provider in FREE_TEXT:
        return canonical
    return NATIVE_TYPES[provider].get(canonical, NATIVE_TYPES[provider]["other"])


def type_table() -> str:
    """The README's translation table (Markdown)."""
    providers = [*NATIVE_TYPES, *FREE_TEXT]
    lines = ["| canonical | " + " | ".join(f"`{p}`" for p in providers) + " |",
             "|---" * (len(providers) + 1) + "|"]
    for kind in PHONE_TYPES:
        lines.append(f"| `{kind}` | " + " | ".join(f"`{native_type(p, kind)}`" for p in providers)
                     + " |")
    return "\n".join(lines)
