"""The fast normalization backend gives exactly phonenumbers' answers (a differential test).

``rphonenumbers`` is a test dependency, so this always runs: a backend that disagreed on a
single number of the corpus would fail it, and ``phone_normalizer: rphonenumbers`` would be
unsafe to offer.
"""

from __future__ import annotations

import random

import pytest

from crmphones import phones
from crmphones.emulator.fake import JUNK, messy_phone
from crmphones.errors import ConfigError

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


def test_validity_found_with_the_region_is_phonenumbers_own():
    """``_valid_for_region`` skips phonenumbers' second look at a region it found by the
    number's types; on the messy corpus, on every region's example numbers of four types
    (leading-digit regions of +1, +7, +44... among them) and on each of those with its last
    digits changed (invalid ones too), it answers as ``is_valid_number_for_region`` does."""
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
    checked = shortcut = 0
    for raw in raws:
        try:
            parsed = phonenumbers.parse(raw, "US")
        except phonenumbers.NumberParseException:
            continue
        region = phonenumbers.region_code_for_number(parsed)
        expected = phonenumbers.is_valid_number_for_region(parsed, region)
        assert phones._valid_for_region(parsed, region) == expected, raw
        checked += 1
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(parsed.country_code, ())
        shortcut += region is not None and len(regions) > 1 and phonenumbers.PhoneMetadata.\
            metadata_for_region(region).leading_digits is None
    assert checked > 6_000 and shortcut > 2_000


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
