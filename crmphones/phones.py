"""Phone-number normalization: one place where phonenumbers is called.

Two interchangeable backends: ``phonenumbers`` (the default, pure Python) and
``rphonenumbers`` (the same API on the Rust port of libphonenumber, proven identical on our
messy corpus by ``tests/core/test_phone_backends.py``; a distinct number of the messy stream
takes 7-8 us against 15-17 with phonenumbers and the shortcuts below), chosen with the
``phone_normalizer`` setting. A process runs one plugin, so the choice is process-wide.

>>> n = normalize("+1 514-987-6543 x12")
>>> (n.e164, n.extension, n.region, n.is_valid)
('+15149876543', '12', 'CA', True)
>>> normalize("(202) 555-0143 ext. 7", default_region="US").e164
'+12025550143'
>>> normalize("call me").reason
'not a phone number'
>>> normalize("0044 20 7946 0958").e164  # "00" is the international prefix of most countries
'+442079460958'
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
from phonenumbers import phonenumberutil

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
_MAX_RAW_LENGTH = 64  # longer strings are never phone numbers; refuse before parsing
_DIGITS = re.compile(r"\d+")

# phonenumbers compiles each metadata pattern it uses through `re.compile` on every use,
# whose own cache lookup was a tenth of a number's time; kept compiled, a North American
# number takes 34-35 us against 38 (the patterns are the metadata's: 80 on our corpus).
phonenumbers.enable_pattern_cache()
_NOT_ASCII_DIGITS = re.compile(r"[^0-9]+")
_digits_of_any_script = phonenumberutil.normalize_digits_only


def _digits_only(number: t.Any, keep_non_digits: bool = False) -> str:
    """phonenumbers' ``normalize_digits_only``, for ASCII text without its loop over each
    character: there only 0-9 are digits, each its own value, so the result is the text
    without its other characters (or, keeping them, the text itself). Other text (wide or
    Arabic-Indic digits) goes to phonenumbers' own. Parsing calls it two or three times a
    number: 34 to 30-32 us a North American number (tests/core/test_phone_backends.py)."""
    if number.__class__ is str and number.isascii():
        return number if keep_non_digits else _NOT_ASCII_DIGITS.sub("", number)
    return _digits_of_any_script(number, keep_non_digits)


phonenumberutil.normalize_digits_only = _digits_only  # the name parse() calls


@dataclass(frozen=True, slots=True)
class NormalizedNumber:
    """What phonenumbers makes of a raw string."""

    #: E.164 form (``+15145550142``), or None when the number is not valid.
    e164: str | None
    #: Extension digits, from the string (``x12``, ``ext. 12``) or the explicit field.
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
    ext = _clean_extension(extension)
    return _normalize_cached(
        (raw or "").strip(), ext, (region_hint or "").upper() or None, default_region.upper(),
        line_type,
    )


@functools.lru_cache(maxsize=4096)
def _normalize_cached(
    raw: str, extension: str | None, region_hint: str | None, default_region: str,
    line_type: bool,
) -> NormalizedNumber:
    # Each distinct raw string is parsed once: phonenumbers is the CPU cost of the target.
    # The bound keeps memory flat on long runs: about 2.5 MB when full (16,384 entries held
    # 10 MB, 100,000 held 60 MB). Repeats of a raw string are mostly near each other (a
    # re-export) or few and frequent (an office's main line), which 4,096 entries catch.
    if not raw:
        return NormalizedNumber(None, extension, None, False, "empty number")
    if len(raw) > _MAX_RAW_LENGTH:
        return NormalizedNumber(None, extension, None, False, "number too long to be a phone")
    lib = _lib
    region = region_hint if region_hint in lib.SUPPORTED_REGIONS else default_region
    # Reasons are categories (the number itself is kept beside them), so runs can count them.
    try:
        parsed = _parse_north_american(raw, region) if lib is phonenumbers else None
        if parsed is None:
            parsed = lib.parse(raw, region)
    except lib.NumberParseException:
        return NormalizedNumber(None, extension, None, False, "not a phone number")
    # is_valid_number(n) is is_valid_number_for_region(n, region_code_for_number(n)): the
    # region lookup is the expensive half, so it is done once.
    number_region, valid = _region_and_validity(parsed)
    if not valid and raw.startswith("00"):
        # "00" dials abroad from most of the world but not from NANP regions: read it as "+".
        try:
            parsed = lib.parse("+" + raw[2:], region)
        except lib.NumberParseException:
            pass
        else:
            number_region, valid = _region_and_validity(parsed)
    ext = extension or parsed.extension or None
    if not valid:
        return NormalizedNumber(None, ext, number_region, False, "not a valid number for its region")
    return NormalizedNumber(
        e164=lib.format_number(parsed, lib.PhoneNumberFormat.E164),
        extension=ext,
        region=number_region,
        is_valid=True,
        line_type=_LINE_TYPES.get(lib.number_type(parsed)) if line_type else None,
    )


# A North American number as people most often write it: +1 or 1 or nothing, then the area
# code (maybe in parentheses, which must start 2-9) and seven digits, groups apart by at most
# one space, dot or hyphen.
_NORTH_AMERICAN = re.compile(
    r"(?P<plus>\+)?(?P<one>1[ .-]?)?(?:\((?P<area>[2-9]\d\d)\) ?|(?P<bare>[2-9]\d\d)[ .-]?)"
    r"(?P<rest>\d{3}[ .-]?\d{4})")
_NORTH_AMERICAN_REGIONS = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])


def _parse_north_american(raw: str, region: str) -> phonenumbers.PhoneNumber | None:
    """``phonenumbers.parse(raw, region)`` for a North American number in a common shape,
    without its general machinery (extensions, prefixes, letters, national prefixes), which was
    half of a number's time; 78% of the messy stream's distinct numbers have such a shape.
    None for any other text, or for a number without "+" outside the regions of +1 (a "1"
    before it is then no country code).

    Such a number is +1 and its ten digits: phonenumbers reads "+1" or, in a region of +1,
    "1" before a national number as the country code, and strips no national prefix from a
    national number that starts 2-9 (tests/core/test_phone_backends.py checks both agree on
    every shape, in every region)."""
    shape = _NORTH_AMERICAN.fullmatch(raw)
    if shape is None or (shape["plus"] is None and region not in _NORTH_AMERICAN_REGIONS) or (
            shape["plus"] is not None and shape["one"] is None):
        return None
    digits = (shape["area"] or shape["bare"]) + _NOT_ASCII_DIGITS.sub("", shape["rest"])
    return phonenumbers.PhoneNumber(country_code=1, national_number=int(digits))


def _region_and_validity(parsed: t.Any) -> tuple[str | None, bool]:
    """``region_code_for_number(parsed)``, and ``is_valid_number_for_region`` for that region.

    With phonenumbers, both come down to one test, "the number has a type in this region's
    metadata" (``_has_type``), which this makes in two regular expressions instead of
    phonenumbers' dozen, and makes once for a region found by it (the 25 regions of +1, whose
    first without leading digits to have the number's type is its region). Both answers for a
    North American number: 11 to 2 us here (tests/core/test_phone_backends.py checks they are
    phonenumbers' own).
    """
    lib = _lib
    if lib is not phonenumbers:
        region = lib.region_code_for_number(parsed)
        return region, lib.is_valid_number_for_region(parsed, region)
    country_code = parsed.country_code
    regions = _regions_of(country_code)
    if not regions:
        return None, False
    number = phonenumbers.national_significant_number(parsed)
    if len(regions) == 1:  # the country code's only region: no search
        return regions[0][0], _is_valid_for_region(number, country_code, regions[0][0])
    for region, leading_digits, metadata in regions:
        if metadata is None:
            continue
        if leading_digits is not None:
            if leading_digits.match(number):
                return region, _is_valid_for_region(number, country_code, region)
        elif _has_type(number, metadata):
            return region, True  # the very test validity makes
    return None, False


def _is_valid_for_region(number: str, country_code: int, region: str) -> bool:
    """``is_valid_number_for_region`` of a number of ``country_code`` whose national
    significant number is ``number``."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, region.upper())
    if metadata is None or (region != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY and
                            country_code != phonenumbers.country_code_for_valid_region(region)):
        return False
    return _has_type(number, metadata)


@functools.cache
def _regions_of(country_code: int) -> tuple[tuple[str, re.Pattern[str] | None, t.Any], ...]:
    """The regions of a country code in the order phonenumbers searches them: (region, its
    leading digits compiled or None, its metadata or None)."""
    regions = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
        leading = None if metadata is None else metadata.leading_digits
        regions.append((region, None if leading is None else re.compile(leading), metadata))
    return tuple(regions)


# phonenumbers' number types in the order _number_type_helper tests them; mobile is tested
# only where its pattern differs from fixed lines'.
_TYPE_DESCRIPTIONS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number",
                      "pager", "uan", "voicemail", "fixed_line")
_NEVER = re.compile(r"(?!)")
# (region, country code, number length) -> its patterns (``_type_patterns``), made on first use.
_TYPE_PATTERNS: dict[tuple[str, int, int], tuple[re.Pattern[str], re.Pattern[str]]] = {}


def _has_type(number: str, metadata: t.Any) -> bool:
    """``phonenumberutil._number_type_helper(number, metadata) != UNKNOWN``.

    phonenumbers tests the general description, then each type's in turn, each test a length
    check and a pattern; a type matches only if the general one does. Here the types whose
    lengths allow ``number``'s are one alternation, compiled once per region and length."""
    key = (metadata.id, metadata.country_code, len(number))
    patterns = _TYPE_PATTERNS.get(key)
    if patterns is None:
        patterns = _TYPE_PATTERNS[key] = _type_patterns(metadata, len(number))
    general, any_type = patterns
    return general.fullmatch(number) is not None and any_type.fullmatch(number) is not None


def _type_patterns(metadata: t.Any, length: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The general pattern and the alternation of the types' patterns for numbers of
    ``length`` digits; ``_NEVER`` for one no description of that length has."""

    def pattern(description: t.Any) -> str | None:  # as _is_number_matching_desc reads it
        if description is None or not description.national_number_pattern:
            return None
        lengths = description.possible_length
        return description.national_number_pattern if not lengths or length in lengths else None

    general = pattern(metadata.general_desc)
    names = _TYPE_DESCRIPTIONS + (() if metadata.same_mobile_and_fixed_line_pattern else ("mobile",))
    types = [p for name in names if (p := pattern(getattr(metadata, name))) is not None]
    if general is None or not types:
        return _NEVER, _NEVER
    return re.compile(general), re.compile("|".join(f"(?:{p})" for p in types))


def _clean_extension(extension: str | int | None) -> str | None:
    if extension is None:
        return None
    digits = "".join(_DIGITS.findall(str(extension)))
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
