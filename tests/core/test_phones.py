"""Normalization: the formats people type, and what must be refused."""

from __future__ import annotations

import doctest

import pytest

import crmphones.answers
import crmphones.auth
import crmphones.phones
from crmphones.phones import canonical_phone_type, normalize


@pytest.mark.parametrize("module", [crmphones.phones, crmphones.answers, crmphones.auth])
def test_doctests(module: object) -> None:
    """The examples in the docstrings hold."""
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize(
    ("raw", "extension", "e164", "ext", "region"),
    [
        ("(514) 987-6543", None, "+15149876543", None, "CA"),
        ("514.987.6543", None, "+15149876543", None, "CA"),
        ("+1 514 987 6543 ext. 12", None, "+15149876543", "12", "CA"),
        ("514-987-6543 x7", None, "+15149876543", "7", "CA"),
        ("514-987-6543", "0042", "+15149876543", "0042", "CA"),
        ("514-987-6543 x7", 9, "+15149876543", "9", "CA"),  # the field wins
        ("+44 20 7946 0958", None, "+442079460958", None, "GB"),
        ("+33 1 42 68 53 00", None, "+33142685300", None, "FR"),
        ("1-202-555-0143", None, "+12025550143", None, "US"),
    ],
)
def test_normalize_valid(raw: str, extension: object, e164: str, ext: str | None,
                         region: str) -> None:
    """Messy but real numbers come out in E.164 with their extension and region."""
    result = normalize(raw, extension, default_region="US")  # type: ignore[arg-type]
    assert (result.e164, result.extension, result.region, result.is_valid) == (
        e164, ext, region, True)


def test_region_hint_beats_default() -> None:
    """A record's own country decides how a national number is read."""
    assert normalize("020 7946 0958", region_hint="GB", default_region="US").e164 == "+442079460958"
    assert normalize("020 7946 0958", default_region="US").is_valid is False


@pytest.mark.parametrize("raw", ["", "n/a", "call me", "555", "12345678901234567890123", "☎☎☎",
                                 "1" * 500])
def test_normalize_refuses_junk(raw: str) -> None:
    """Junk is never valid and always carries a reason."""
    result = normalize(raw)
    assert result.is_valid is False
    assert result.e164 is None
    assert result.reason


@pytest.mark.parametrize(
    ("label", "kind"),
    [("Cell", "mobile"), ("mobile", "mobile"), ("Office", "work"), ("Fax line", "fax"),
     ("HOME", "home"), ("skype", "voip"), ("Main", "main"), ("whatever", "other"), (None, "other")],
)
def test_canonical_phone_type(label: str | None, kind: str) -> None:
    """CRM labels map onto the canonical types."""
    assert canonical_phone_type(label) == kind
