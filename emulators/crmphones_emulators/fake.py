"""Deterministic fake data with the mess real CRMs hold (every draw comes from the caller's rng)."""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from random import Random

FIRST_NAMES = ("Ada", "Bruno", "Chloé", "Dmitri", "Emeka", "Fatima", "Guo", "Hana", "Ines", "Jamal",
               "Kirsten", "Luis", "Mei", "Noor", "Olga", "Pierre", "Quinn", "Rosa", "Sven", "Tariq")
LAST_NAMES = ("Okafor", "Tremblay", "Nakamura", "García", "Smith", "Kowalski", "Nguyen", "Dubois",
              "Haddad", "Olsen", "Rossi", "Chen", "Müller", "Patel", "Lefebvre", "O'Brien")
COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Soylent",
             "Hooli", "Vandelay", "Wonka", "Cyberdyne")
COMPANY_KINDS = ("Inc.", "LLC", "Ltd", "Co-op", "Foundation", "Clinic", "Center", "Services")
# Real area codes, so most seeded numbers are valid per libphonenumber.
NANP_AREAS = ("212", "312", "415", "514", "617", "646", "702", "713", "416", "604", "305", "206")
# (country code, national digits length, a valid leading part) for international numbers.
INTERNATIONAL = (("44", "20 7946 ", 4), ("33", "1 42 68 ", 4), ("49", "30 901820", 2),
                 ("61", "2 9374 ", 4), ("81", "3 3224 ", 4), ("52", "55 5062 ", 4))
JUNK = ("n/a", "none", "call me", "0", "555-CALL-NOW", "123", "+1 (000) 000-0000", "tbd", "?")


def fake_name(rng: Random) -> str:
    """`First Last`."""
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def fake_company(rng: Random) -> str:
    return f"{rng.choice(COMPANIES)} {rng.choice(COMPANY_KINDS)}"


def _nanp(rng: Random) -> tuple[str, str, str]:
    exchange = str(rng.randint(201, 989))
    while exchange.endswith("11") or exchange == "555":
        exchange = str(rng.randint(201, 989))
    return rng.choice(NANP_AREAS), exchange, f"{rng.randint(0, 9999):04d}"


def messy_phone(rng: Random) -> str:
    """A phone number as people type it into a CRM: mostly North American, many formats,
    some extensions, some international, and some junk that is no number at all."""
    roll = rng.random()
    if roll < 0.06:
        return rng.choice(JUNK)
    if roll < 0.18:
        code, stem, tail = rng.choice(INTERNATIONAL)
        digits = "".join(str(rng.randint(0, 9)) for _ in range(tail))
        return rng.choice((f"+{code} {stem}{digits}", f"00{code} {stem}{digits}"))
    area, exchange, line = _nanp(rng)
    number = rng.choice((
        f"({area}) {exchange}-{line}", f"{area}.{exchange}.{line}", f"{area}-{exchange}-{line}",
        f"+1 {area} {exchange} {line}", f"1-{area}-{exchange}-{line}", f"{area}{exchange}{line}",
        f"+1{area}{exchange}{line}", f"  {area} {exchange} {line} ",
    ))
    if rng.random() < 0.12:
        number += rng.choice((" ext. ", " x", " ext ", " #", ",")) + str(rng.randint(1, 9999))
    return number
