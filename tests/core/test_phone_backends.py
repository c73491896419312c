"""The fast normalization backend gives exactly phonenumbers' answers (a differential test).

``rphonenumbers`` is a test dependency, so this always runs: a backend that disagreed on a
single number of the corpus would fail it, and ``phone_normalizer: rphonenumbers`` would be
unsafe to offer.
"""

from __future__ import annotations

import random

import pytest

from crmphones import phones
from crmphones.errors import ConfigError
from crmphones_emulators.fake import JUNK, messy_phone

REGIONS = (None, "US", "CA", "GB", "FR", "DE", "AU", "JP", "MX", "BR", "IN", "ZZ", "XX")


def _corpus(size: int) -> list[tuple[str, str | None, str | None, str]]:
    """(raw, extension, region_hint, default_region): messy CRM numbers in many contexts."""
    rng = random.Random("phone-backends")
    corpus = [(raw, None, None, "US") for raw in JUNK]
    while len(corpus) < size:
        raw = messy_phone(rng)
        if rng.random() < 0.1:  # what else people type: dots, letters, stray prefixes
            raw = rng.choice(("tel:", "+", "00", "(", "")) + raw + rng.choice(("", " ", "#", " (cell)"))
        extension = rng.choice((None, None, None, "12", "x 7", 45))
        corpus.append((raw, extension, rng.choice(REGIONS), rng.choice(("US", "CA", "GB", "FR"))))
    return corpus


@pytest.fixture
def backend():
    """Restore the default backend after a test switches it."""
    yield phones.use_backend
    phones.use_backend("phonenumbers")


def _normalize_all(corpus):
    return [phones.normalize(raw, ext, region_hint=hint, default_region=default, line_type=True)
            for raw, ext, hint, default in corpus]


def test_rphonenumbers_agrees_with_phonenumbers_on_every_number(backend):
    """20,000 messy numbers: E.164, extension, region, validity, reason and line type equal."""
    corpus = _corpus(20_000)
    backend("phonenumbers")
    expected = _normalize_all(corpus)
    backend("rphonenumbers")
    got = _normalize_all(corpus)
    differences = [(item, want, have) for item, want, have in zip(corpus, expected, got, strict=True)
                   if want != have]
    assert not differences, f"{len(differences)} differences, first: {differences[:3]}"
    assert sum(n.is_valid for n in expected) > 10_000  # most of the corpus are real numbers


def test_an_unknown_or_missing_backend_is_a_setting_error(backend):
    """One line naming the setting, not an ImportError traceback."""
    with pytest.raises(ConfigError, match="phone_normalizer"):
        backend("libphonenumber-js")


def test_region_and_validity_are_phonenumbers_own():
    """``_region_and_validity`` stands in for phonenumbers' ``region_code_for_number`` and
    ``is_valid_number_for_region``, and answers as they do: on the messy corpus, on every
    region's example numbers of four types (the regions that share +1, +7, +44... among them),
    on each of those with its last digits changed (invalid ones too), and on random national
    numbers of +1, +7, +44 and +61 of every length from 6 to 12 digits."""
    import phonenumbers

    raws = [raw for raw, *_ in _corpus(5_000)]
    rng = random.Random("validity")
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE,
                     phonenumbers.PhoneNumberType.TOLL_FREE, phonenumbers.PhoneNumberType.VOIP):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                raws += [e164, *(e164[:-3] + f"{rng.randrange(1000):03d}" for _ in range(3)),
                         e164[:-4] + "0000", e164[:4] + "0" + e164[5:]]
    for code in (1, 7, 44, 61):
        raws += [f"+{code}" + "".join(rng.choice("0123456789") for _ in range(length))
                 for length in range(6, 13) for _ in range(500)]
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            raws.append(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
    seen: dict[tuple[str | None, bool], int] = {}
    for raw in raws:
        try:
            parsed = phonenumbers.parse(raw, "US")
        except phonenumbers.NumberParseException:
            continue
        region = phonenumbers.region_code_for_number(parsed)
        expected = (region, phonenumbers.is_valid_number_for_region(parsed, region))
        assert phones._region_and_validity(parsed) == expected, raw
        seen[expected] = seen.get(expected, 0) + 1
    regions = {region for region, _ in seen}
    assert {"US", "CA", "AG", "PR", "RU", "KZ", "GB", "JE", "AU", "CX", "001", None} <= regions
    assert sum(n for (_, valid), n in seen.items() if valid) > 6_000
    assert sum(n for (_, valid), n in seen.items() if not valid) > 6_000


def test_has_type_is_phonenumbers_own():
    """``_has_type`` answers as ``_number_type_helper(...) != UNKNOWN`` for the metadata of
    every region and non-geographic code, on its example numbers of each type, each with a
    digit cut or added at either end, and on random numbers of every length from 2 to 17."""
    import phonenumbers
    from phonenumbers import PhoneMetadata, phonenumberutil

    rng = random.Random("has-type")
    everything = [PhoneMetadata.metadata_for_region(region)
                  for region in sorted(phonenumbers.SUPPORTED_REGIONS)]
    everything += [PhoneMetadata.metadata_for_nongeo_region(code)
                   for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)]
    answers = {True: 0, False: 0}
    for metadata in everything:
        examples = {description.example_number
                    for name in ("general_desc", *phones._TYPE_DESCRIPTIONS, "mobile")
                    if (description := getattr(metadata, name)) is not None
                    and description.example_number}
        numbers = {variant for example in examples
                   for variant in (example, example[1:], example[:-1], example + "0",
                                   str(rng.randrange(10)) + example)}
        numbers |= {"".join(rng.choice("0123456789") for _ in range(length))
                    for length in range(2, 18) for _ in range(3)}
        for number in sorted(numbers):
            expected = (phonenumberutil._number_type_helper(number, metadata)
                        != phonenumbers.PhoneNumberType.UNKNOWN)
            assert phones._has_type(number, metadata) == expected, (metadata.id, number)
            answers[expected] += 1
    assert answers[True] > 1_000 and answers[False] > 10_000


def test_north_american_shapes_parse_as_phonenumbers_parses_them():
    """``_parse_north_american`` stands in for ``phonenumbers.parse`` on the shapes it takes
    and gives the very same number; it must take most of the messy corpus's North American
    numbers, and nothing else. Checked in every region of +1 and in four others, on the corpus,
    on every shape it takes (random digits, 0 and 1 in the area code too) and on random text
    of the characters those shapes are made of."""
    import phonenumbers

    rng = random.Random("north-american")
    regions = [*sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1]), "GB", "FR", "ZZ", "XX"]
    texts = [raw.strip() for raw, *_ in _corpus(5_000)]
    for _ in range(20_000):
        digits = "".join(rng.choice("0123456789") for _ in range(10))
        gap = lambda: rng.choice(("", "", " ", ".", "-", "  ", "/"))  # noqa: E731
        area = rng.choice((f"({digits[:3]})", f"({digits[:3]}) ", digits[:3] + gap()))
        texts.append(rng.choice(("", "+1", "1", "+", "+1 ", "1-", "+ 1", "11", "+11"))
                     + area + digits[3:6] + gap() + digits[6:])
    texts += ["".join(rng.choice("0123456789 ()+-.") for _ in range(rng.randrange(8, 19)))
              for _ in range(20_000)]
    taken = 0
    for text in texts:
        region = rng.choice(regions)
        fast = phones._parse_north_american(text, region)
        if fast is None:
            continue
        taken += 1
        assert fast == phonenumbers.parse(text, region), (text, region)
    corpus_north_american = [raw.strip() for raw, *_ in _corpus(5_000)
                             if (phones.normalize(raw).e164 or "").startswith("+1")]
    assert taken > 6_000
    assert sum(phones._parse_north_american(raw, "US") is not None
               for raw in corpus_north_american) > 0.7 * len(corpus_north_american)


def test_digits_only_is_phonenumbers_own():
    """``_digits_only`` stands in for phonenumbers' ``normalize_digits_only`` (which parsing
    calls) and answers as it does: on the messy corpus, on random ASCII text, and on text
    with other scripts' digits, keeping the other characters or not."""
    from phonenumbers import phonenumberutil

    assert phonenumberutil.normalize_digits_only is phones._digits_only
    rng = random.Random("digits")
    ascii_texts = ["".join(rng.choice([chr(c) for c in range(32, 127)])
                           for _ in range(rng.randrange(30))) for _ in range(3_000)]
    wide = "".join(chr(0xFF10 + int(d)) for d in "5149876543")  # fullwidth digits
    other_scripts = [f"+1 {wide}", "\u0660\u0661\u0662\u0663", "\u06f0\u06f1 345",
                     "tel: \u0663\u0664-x", "", "\u00e9 1"]
    texts = [raw for raw, *_ in _corpus(3_000)] + ascii_texts + other_scripts
    for text in texts:
        for keep in (False, True):
            assert phones._digits_only(text, keep) == phones._digits_of_any_script(text, keep)
    assert phones._digits_only(f"+1 {wide}") == "15149876543"
