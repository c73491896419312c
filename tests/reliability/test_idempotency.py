"""A rerun writes nothing, for any input (issue 26): hypothesis generates Singer inputs for
each dialect (a few owners written several ways, ancestors of the right and of unused kinds,
one number in several written shapes, the same phone with other types, labels, primaries and
extensions on both sides of batch boundaries, invalid numbers, garbage lines), the target
runs each one twice in-process against a fresh emulated account, and the second run must
send no write while the account holds no phone twice (owner + E.164 + extension)."""

from __future__ import annotations

import json
import os
import typing as t

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.conftest import DESTINATIONS, PARENTS, assert_rerun_writes_nothing, serve

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from crmphones_emulators import EmulatorServer

#: Examples per dialect and emulator variant: each is two target runs.
EXAMPLES = int(os.environ.get("CRMPHONES_RERUN_EXAMPLES") or 8)

#: Each dialect run against every behaviour its docs leave open (`primary_clears_others`),
#: and with each ``type_slot_conflict`` the target offers for Activix's slots.
VARIANTS: dict[str, tuple[str, dict[str, t.Any], dict[str, t.Any]]] = {
    "outreach": ("outreach", {}, {}),
    "activix": ("activix", {}, {}),
    "activix-replace": ("activix", {}, {"type_slot_conflict": "replace"}),
    "onedegree": ("onedegree", {}, {}),
    "onedegree-keeps": ("onedegree", {"primary_clears_others": False}, {}),
    "ticketevolution": ("ticketevolution", {}, {}),
    "ticketevolution-keeps": ("ticketevolution", {"primary_clears_others": False}, {}),
}


def _onedegree_owners() -> list[tuple[str, str, dict[str, str]]]:
    """A few of the emulated account's organizations, locations and opportunities, each with
    the organization its route goes through (the account is seeded the same every time)."""
    app = DESTINATIONS["onedegree"].build()
    owners = [("organization", str(o), {}) for o in (1, 2, 3)]
    owners += [(kind, str(item["id"]), {"organization": str(item["organization_id"])})
               for kind, items in (("location", app.locations), ("opportunity", app.opportunities))
               for item in list(items.values())[:2]]
    return owners


#: (kind, id, the ancestors its route needs) of a few owners each CRM's emulator holds.
_OWNERS = {
    "outreach": [("prospect", str(i), {}) for i in (1, 7, PARENTS)],
    "activix": [("lead", str(i), {}) for i in (1, 7, PARENTS)],
    "ticketevolution": [("client", str(i), {}) for i in (1, 7, PARENTS)],
    "onedegree": _onedegree_owners(),
}
#: Ancestor kinds no dialect addresses an owner by; they must not make a second owner.
_UNUSED_ANCESTORS = ("account", "region", "office", "opportunity")

#: Numbers as sources write them: each group is one phone (with the extension it carries).
_SHAPES = (
    ("+1 212 555 0101", "(212) 555-0101", "212.555.0101", "2125550101", "+1-212-555-0101"),
    ("+1 415 555 0102", "415-555-0102", "(415)5550102"),
    ("+1 212 555 0103 ext. 7", "212-555-0103 x7", "(212) 555-0103 #7"),
    ("+44 20 7946 0958", "+44 (0)20 7946 0958", "0044 20 7946 0958"),
)
_INVALID = ("12", "n/a", "", "+1 999 000", "555-0100")
_GARBAGE = ("not json", "{", "[1, 2]", '{"type": "RECORD"}', '{"type": "RECORD", "stream": '
            '"nowhere", "record": {"parent_id": "1", "number": "2125550101"}}')


@st.composite
def _records(draw: st.DrawFn, dialect: str) -> dict[str, t.Any]:
    """One phone record on one of the dialect's owners, its fields in any of their shapes."""
    kind, owner_id, needed = draw(st.sampled_from(_OWNERS[dialect]))
    record: dict[str, t.Any] = {}
    if draw(st.booleans()) or dialect == "onedegree":
        record["parent_type"] = kind
    record["parent_id"] = "0" * draw(st.integers(0, 3)) + owner_id
    ancestors = {k: "0" * draw(st.integers(0, 2)) + v for k, v in needed.items()}
    if draw(st.booleans()):
        extra = draw(st.sampled_from(_UNUSED_ANCESTORS))
        ancestors.setdefault(extra, str(draw(st.integers(1, 9))))
    if ancestors:
        record["ancestors"] = ancestors
    record["number"] = draw(st.one_of(st.sampled_from(_SHAPES).flatmap(st.sampled_from),
                                      st.sampled_from(_INVALID)))
    if draw(st.booleans()):
        record["extension"] = draw(st.sampled_from(["12", "7", "", None]))
    for name, values in (("phone_type", [None, "mobile", "work", "home", "fax", "other"]),
                         ("label", [None, "Cell", "Office", "Home", "Main line",
                                    "Head office switchboard line"]),
                         ("is_primary", [None, True, False])):
        value = draw(st.sampled_from(values))
        if value is not None:
            record[name] = value
    return record


@st.composite
def _inputs(draw: st.DrawFn, dialect: str) -> tuple[list[str], int]:
    """Singer lines (two phone streams, STATE messages, garbage lines) and a batch size."""
    lines = [json.dumps({"type": "SCHEMA", "stream": stream, "key_properties": [],
                         "schema": {"type": "object", "properties": {}}})
             for stream in ("phones", "more_phones")]
    for n, record in enumerate(draw(st.lists(_records(dialect), min_size=1, max_size=40))):
        stream = draw(st.sampled_from(("phones", "phones", "more_phones")))
        lines.append(json.dumps({"type": "RECORD", "stream": stream, "record": record}))
        if draw(st.integers(0, 6)) == 0:
            lines.append(draw(st.sampled_from(_GARBAGE)))
        if n % 5 == 4:
            lines.append(json.dumps({"type": "STATE", "value": {"upto": n}}))
    return lines, draw(st.integers(1, 8))


@pytest.fixture(scope="module")
def accounts() -> Iterator[dict[str, EmulatorServer]]:
    """One emulated account per variant, reset before each example."""
    servers: dict[str, EmulatorServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


def _account(servers: dict[str, EmulatorServer], variant: str) -> EmulatorServer:
    dialect, options, _ = VARIANTS[variant]
    if variant not in servers:
        servers[variant] = serve(dialect, **options)
    server = servers[variant]
    server.app.reset()
    server.requests.clear()
    return server


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_rerun_of_any_input_writes_nothing(variant: str,
                                             accounts: dict[str, EmulatorServer]) -> None:
    dialect = VARIANTS[variant][0]

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(given_input=_inputs(dialect))
    def rerun(given_input: tuple[list[str], int]) -> None:
        lines, batch_size = given_input
        assert_rerun_writes_nothing(_account(accounts, variant), dialect, lines,
                                    batch_size_rows=batch_size, **VARIANTS[variant][2])

    rerun()
