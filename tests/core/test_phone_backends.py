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
