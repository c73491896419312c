"""The two normalization backends on our messy CRM corpus, and on what people type.

``rphonenumbers`` is a test dependency, so this always runs: a backend that disagreed on a
single number of the messy corpus would fail it, and ``phone_normalizer: rphonenumbers`` would
be unsafe to offer until the difference is understood. rphonenumbers ships older metadata
than phonenumbers, so the failure names both versions; ``test_phones_reference.py`` holds each
backend to a reference run on itself, over every region's example numbers.
"""

from __future__ import annotations

import random

import pytest

from crmphones import phones
from crmphones.errors import ConfigError
from crmphones_emulators.fake import JUNK, messy_phone
from tests.core.test_phones_reference import _versions

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
    assert not differences, (f"{len(differences)} differences ({_versions()}), "
                             f"first: {differences[:3]}")
    assert sum(n.is_valid for n in expected) > 10_000  # most of the corpus are real numbers


def test_an_unknown_or_missing_backend_is_a_setting_error(backend):
    """One line naming the setting, not an ImportError traceback."""
    with pytest.raises(ConfigError, match="phone_normalizer"):
        backend("libphonenumber-js")


def test_phonenumbers_is_not_patched() -> None:
    """Importing the module leaves phonenumbers as installed: its functions are its own."""
    import phonenumbers
    from phonenumbers import phonenumberutil

    assert phonenumberutil.normalize_digits_only.__module__ == "phonenumbers.phonenumberutil"
    assert phonenumbers.parse.__module__ == "phonenumbers.phonenumberutil"


@pytest.mark.parametrize("name", phones.BACKENDS)
@pytest.mark.parametrize(
    ("raw", "extension", "default_region", "e164", "ext", "region"),
    [
        pytest.param("(202) 555-014\u0663", None, "US", "+12025550143", None, "US",
                     id="arabic-indic last digit"),
        pytest.param("+1 (604) 878.190\u0661", None, "US", "+16048781901", None, "CA",
                     id="arabic-indic last digit, dots"),
        pytest.param("0044 20 7946 0958", None, "ZZ", "+442079460958", None, "GB",
                     id="00 where the default region does not parse it"),
        pytest.param("0012684601234", None, "BR", "+12684601234", None, "AG",
                     id="00 where the region's own prefix misreads it"),
        pytest.param("0012684601234", None, "US", "+12684601234", None, "AG",
                     id="00 where it parses but is not valid"),
        pytest.param("Main switchboard, ask for reception: +45 32 12 34 56 EXT 4021", None, "US",
                     "+4532123456", "4021", "DK", id="long label"),
        pytest.param("514 987 6543", "\uff11\uff12", "US", "+15149876543", "12", "CA",
                     id="fullwidth extension field"),
        pytest.param("514 987 6543", "\u0661\u0662", "US", "+15149876543", "12", "CA",
                     id="arabic-indic extension field"),
        pytest.param("514 987 6543 x\u0661\u0662", None, "US", "+15149876543", "12", "CA",
                     id="arabic-indic extension in the number"),
        pytest.param("514 987 6543 ext. \uff11\uff12", None, "US", "+15149876543", "12", "CA",
                     id="fullwidth extension in the number"),
    ],
)
def test_what_people_type(backend, name: str, raw: str, extension: str | None,
                          default_region: str, e164: str, ext: str | None, region: str) -> None:
    """The README's promises, on numbers that were refused or misread before."""
    backend(name)
    result = phones.normalize(raw, extension, default_region=default_region)
    assert (result.e164, result.extension, result.region, result.is_valid, result.reason) == (
        e164, ext, region, True, None)
