"""Phone-number normalization: one place where phonenumbers is called.

Two interchangeable backends with the same API: ``phonenumbers`` (the default, pure Python)
and ``rphonenumbers`` (libphonenumber's Rust port), chosen with the ``phone_normalizer``
setting. A process runs one plugin, so the choice is process-wide. Both go through the same
code below, which uses only phonenumbers' public API; they give the same answers when their
metadata versions match (``tests/core/test_phones_reference.py`` reports both).

>>> n = normalize("+1 514-987-6543 x12")
>>> (n.e164, n.extension, n.region, n.is_valid)
('+15149876543', '12', 'CA', True)
>>> normalize("(202) 555-0143 ext. 7", default_region="US").e164
'+12025550143'
>>> normalize("call me").reason
'not a phone number'
>>> normalize("0044 20 7946 0958").e164  # "00" is the international prefix of most countries
'+442079460958'
>>> normalize("(202) 555-014\u0663").e164  # any script's digits
'+12025550143'
>>> normalize("514-987-6543", "\uff11\uff12").extension  # as a CRM returns it
'12'
>>> canonical_phone_type("Cell")
'mobile'
"""

from __future__ import annotations

import functools
import importlib
import re
import typing as t
from dataclasses import dataclass

import phonenumbers

from crmphones.errors import ConfigError

if t.TYPE_CHECKING:
    import types

__all__ = ["BACKENDS", "PHONE_TYPES", "NormalizedNumber", "backend", "canonical_phone_type",
           "normalize", "use_backend"]

#: ``phone_normalizer`` values: the module each one imports.
BACKENDS = ("phonenumbers", "rphonenumbers")
_lib: types.ModuleType = phonenumbers

#: The canonical phone types every dialect maps to and from.
PHONE_TYPES = ("mobile", "work", "home", "fax", "main", "voip", "other")

# Words people and CRMs use for each canonical type; matched on whole lower-cased words.
_TYPE_WORDS = {
    "mobile": ("mobile", "cell", "cellular", "cellphone", "portable", "sms", "iphone", "cel"),
    "work": ("work", "office", "business", "bureau", "direct", "company", "travail"),
    "home": ("home", "house", "personal", "residence", "maison", "domicile"),
    "fax": ("fax", "facsimile", "telecopieur"),
    "main": ("main", "primary", "switchboard", "reception", "general", "hq", "headquarters"),
    "voip": ("voip", "skype", "sip"),
    "other": ("other",),
}
_WORD_TO_TYPE = {word: kind for kind, words in _TYPE_WORDS.items() for word in words}

# phonenumbers' own limit: both backends refuse longer input before reading it (checked by
# tests/core/test_phones_reference.py). Refusing it here too keeps such text, which no CRM
# field holds as a number, out of the cache.
_MAX_INPUT_LENGTH = 250

# phonenumbers otherwise looks each metadata pattern up in `re`'s own cache on every use;
# this public switch keeps them compiled.
phonenumbers.enable_pattern_cache()


@dataclass(frozen=True, slots=True)
class NormalizedNumber:
    """What phonenumbers makes of a raw string."""

    #: E.164 form (``+15145550142``), or None when the number is not valid.
    e164: str | None
    #: Extension digits in ASCII, from the string (``x12``, ``ext. 12``) or the explicit field.
    extension: str | None
    #: ISO 3166 alpha-2 region of the number per libphonenumber, or None.
    region: str | None
    #: True when libphonenumber considers the number valid.
    is_valid: bool
    #: Why the number is not valid (None when it is).
    reason: str | None = None
    #: libphonenumber's line type mapped to a canonical type, when it knows it.
    line_type: str | None = None


# libphonenumber's line types (PhoneNumberType values, equal in both backends); FIXED_LINE
# could be work or home, so the label decides.
_LINE_TYPES = {phonenumbers.PhoneNumberType.MOBILE: "mobile",
               phonenumbers.PhoneNumberType.VOIP: "voip"}


def backend() -> str:
    """The normalization backend this process uses: ``phonenumbers`` or ``rphonenumbers``."""
    return _lib.__name__


def use_backend(name: str | None) -> None:
    """Normalize with ``phonenumbers`` or ``rphonenumbers`` from now on, in this process.

    Raises:
        ConfigError: for an unknown name, or a backend that is not installed.
    """
    global _lib
    name = name or "phonenumbers"
    if name not in BACKENDS:
        msg = f"setting `phone_normalizer` must be one of {', '.join(BACKENDS)}, got {name!r}"
        raise ConfigError(msg)
    try:
        module = importlib.import_module(name)
    except ImportError:
        msg = (f"setting `phone_normalizer` is {name} but it is not installed; "
               "install crmphones[fast] or use phonenumbers")
        raise ConfigError(msg) from None
    if module is not _lib:
        _lib = module
        _normalize_cached.cache_clear()


def normalize(
    raw: str | None,
    extension: str | int | None = None,
    *,
    region_hint: str | None = None,
    default_region: str = "US",
    line_type: bool = False,
) -> NormalizedNumber:
    """Parse a number as a person typed it.

    Args:
        raw: The number as stored in the source (may hold an extension).
        extension: An extension held in a separate field; wins over one in ``raw``.
        region_hint: The record's own country (e.g. Outreach ``countryCode``).
        default_region: Region assumed for national numbers without a hint.
        line_type: Also look up libphonenumber's line type (the tap's default type); the
            target does not need it, and it costs as much as the validation.

    Returns:
        The normalized number; ``is_valid`` False with a ``reason`` when it is not one.
    """
    ext = _ascii_digits(extension)
    text = (raw or "").strip()
    if len(text) > _MAX_INPUT_LENGTH:
        return NormalizedNumber(None, ext, None, False, "number too long to be a phone")
    return _normalize_cached(
        text, ext, (region_hint or "").upper() or None, default_region.upper(), line_type)


@functools.lru_cache(maxsize=4096)
def _normalize_cached(
    raw: str, extension: str | None, region_hint: str | None, default_region: str,
    line_type: bool,
) -> NormalizedNumber:
    # Each distinct raw string is parsed once: phonenumbers is the CPU cost of the target.
    # The bound keeps memory flat on long runs. Repeats of a raw string are mostly near each
    # other (a re-export) or few and frequent (an office's main line), which a bounded cache
    # catches.
    if not raw:
        return NormalizedNumber(None, extension, None, False, "empty number")
    lib = _lib
    region = region_hint if region_hint in lib.SUPPORTED_REGIONS else default_region
    parsed = _parse(lib, raw, region)
    number_region, valid = _region_and_validity(lib, parsed)
    if not valid and raw[:2].isdecimal() and _ascii_digits(raw[:2]) == "00":
        # "00" dials abroad from most of the world but not from every region (not from those
        # of +1, say), where it may not parse at all or not give a valid number: read it as
        # "+". Its zeros may be any script's, as phonenumbers reads every script's digits.
        abroad = _parse(lib, "+" + raw[2:], region)
        if abroad is not None:
            parsed = abroad
            number_region, valid = _region_and_validity(lib, parsed)
    # Reasons are categories (the number itself is kept beside them), so runs can count them.
    if parsed is None:
        return NormalizedNumber(None, extension, None, False, "not a phone number")
    ext = extension or _ascii_digits(parsed.extension)
    if not valid:
        return NormalizedNumber(None, ext, number_region, False, "not a valid number for its region")
    return NormalizedNumber(
        e164=lib.format_number(parsed, lib.PhoneNumberFormat.E164),
        extension=ext,
        region=number_region,
        is_valid=True,
        line_type=_LINE_TYPES.get(lib.number_type(parsed)) if line_type else None,
    )


def _region_and_validity(lib: types.ModuleType, parsed: t.Any) -> tuple[str | None, bool]:
    """The number's region and whether it is valid (``region_code_for_number`` and
    ``is_valid_number``), asking the country code's main region first.

    ``is_valid_number`` is ``is_valid_number_for_region`` in the number's region, and
    ``region_code_for_number`` tries the main region of a country code first: a number valid
    there is that region's, without a walk through the code's other regions (the 25 of +1).
    """
    if parsed is None:
        return None, False
    main = lib.region_code_for_country_code(parsed.country_code)
    if lib.is_valid_number_for_region(parsed, main):
        return main, True
    region = lib.region_code_for_number(parsed)
    return region, region is not None and lib.is_valid_number_for_region(parsed, region)


def _parse(lib: types.ModuleType, raw: str, region: str) -> t.Any:
    """``lib.parse(raw, region)``, or None for text it does not read as a number."""
    try:
        return lib.parse(raw, region)
    except lib.NumberParseException:
        return None


def _ascii_digits(text: str | int | None) -> str | None:
    """The decimal digits of ``text`` in ASCII (``\uff11\uff12`` or ``\u0661\u0662``: ``12``),
    without its other characters; None when it has none. phonenumbers reads any script's
    digits, but CRMs store and return extensions in ASCII, so matching needs them so."""
    if text is None:
        return None
    digits = "".join(str(int(c)) for c in str(text) if c.isdecimal())
    return digits or None


def canonical_phone_type(label: str | None, default: str = "other") -> str:
    """Map a CRM's own type or label text to a canonical type.

    Args:
        label: The source's text (``Cell``, ``Office``, ``Fax line``...).
        default: The type when no word is recognized.

    Returns:
        One of ``PHONE_TYPES``.
    """
    if not label:
        return default
    lowered = label.strip().lower()
    if lowered in _WORD_TO_TYPE:
        return _WORD_TO_TYPE[lowered]
    for word in re.split(r"[^a-z]+", lowered):
        if word in _WORD_TO_TYPE:
            return _WORD_TO_TYPE[word]
    return default
