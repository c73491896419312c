"""A rerun writes nothing, for any input (issue 26): hypothesis generates Singer inputs for
each dialect (a few owners written several ways, ancestors of the right and of unused kinds,
one number in several written shapes, the same phone with other types, labels, primaries and
extensions on both sides of batch boundaries, invalid numbers, garbage lines), the target
runs each one twice in-process against a fresh emulated account, and the second run must
send no write while the account holds no phone twice (owner + E.164 + extension)."""

from __future__ import annotations

import functools
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
EXAMPLES = int(os.environ.get("CRMPHONES_RERUN_EXAMPLES") or 6)
#: A file to append one line of figures per example to (RELIABILITY.md's table), if set.
FIGURES = os.environ.get("CRMPHONES_RERUN_FIGURES")

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
#: Phones the account holds before the first run (the emulators' messy seeded ones).
SEEDED = 300

Owner = tuple[str, str, dict[str, str]]  # kind, id, the ancestors its route needs


@functools.cache
def _layout(dialect: str) -> tuple[list[Owner], list[str]]:
    """Owners of the account as seeded (the same every time): three of each kind, one of
    them holding no phone where the account has such an owner, and the numbers the others
    hold, as they hold them."""
    snapshot = DESTINATIONS[dialect].build(records=SEEDED).snapshot()
    held: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[str]] = {}
    if dialect == "onedegree":
        within = {("location", str(x["id"])): str(x["organization_id"])
                  for x in snapshot["locations"]}
        within.update({("opportunity", str(x["id"])): str(x["organization_id"])
                       for x in snapshot["opportunities"]})
        bare = [("organization", str(o["id"]), ()) for o in snapshot["organizations"]]
        bare += [(kind, i, (("organization", org),)) for (kind, i), org in within.items()]
        for p in snapshot["phones"]:
            kind, i = p["phoneable_type"].lower(), str(p["phoneable_id"])
            route = (("organization", within[kind, i]),) if kind != "organization" else ()
            held.setdefault((kind, i, route), []).append(p["digits"])
    else:
        kind = {"outreach": "prospect", "activix": "lead", "ticketevolution": "client"}[dialect]
        for p in snapshot[{"outreach": "phoneNumbers", "activix": "lead_phones",
                           "ticketevolution": "phone_numbers"}[dialect]]:
            owner = (p["relationships"]["prospect"]["data"]["id"] if dialect == "outreach"
                     else p["lead_id"] if dialect == "activix" else p["client_id"])
            held.setdefault((kind, str(owner), ()), []).append(
                p["attributes"]["number"] if dialect == "outreach" else p["number"])
        bare = [(kind, str(i), ()) for i in range(1, PARENTS + 1)]
    owners = []
    for kind in dict.fromkeys(k for k, _, _ in bare):
        empty = [o for o in bare if o[0] == kind and o not in held][:1]  # Activix: none
        owners += [*sorted(o for o in held if o[0] == kind)[:3 - len(empty)], *empty]
    numbers = [n for o in owners for n in held.get(o, ()) if n]
    return [(k, i, dict(a)) for k, i, a in owners], numbers


#: Ancestor kinds no dialect addresses an owner by; they must not make a second owner.
_UNUSED_ANCESTORS = ("account", "region", "office", "opportunity")

#: Numbers as sources write them: each group is one phone (with the extension it carries).
_SHAPES = (
    ("+1 212 555 0101", "(212) 555-0101", "212.555.0101", "2125550101", "+1-212-555-0101"),
    ("+1 415 555 0102", "415-555-0102", "(415)5550102"),
    ("+1 212 555 0103 ext. 7", "212-555-0103 x7", "(212) 555-0103 #7"),
    ("+44 20 7946 0958", "+44 (0)20 7946 0958", "0044 20 7946 0958"),
)
_RECORD = tuple(f'{{"type": "RECORD", "stream": "{name}"' for name in ("phones", "more_phones"))
_INVALID = ("12", "n/a", "", "+1 999 000", "555-0100")
_GARBAGE = ("not json", "{", "[1, 2]", '{"type": "RECORD"}', '{"type": "RECORD", "stream": '
            '"nowhere", "record": {"parent_id": "1", "number": "2125550101"}}')


@st.composite
def _records(draw: st.DrawFn, dialect: str) -> dict[str, t.Any]:
    """One phone record on one of the dialect's owners, its fields in any of their shapes."""
    owners, held = _layout(dialect)
    kind, owner_id, needed = draw(st.sampled_from(owners))
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
                                      st.sampled_from(held), st.sampled_from(_INVALID)))
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
    for n, record in enumerate(draw(st.lists(_records(dialect), min_size=10, max_size=80))):
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
        servers[variant] = serve(dialect, records=SEEDED, **options)
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
        writes = assert_rerun_writes_nothing(_account(accounts, variant), dialect, lines,
                                             batch_size_rows=batch_size, **VARIANTS[variant][2])
        if FIGURES:  # RELIABILITY.md's table is made from these lines
            with open(FIGURES, "a", encoding="utf-8") as out:
                out.write(json.dumps({"variant": variant, "lines": len(lines),
                                      "records": sum(line.startswith(_RECORD) for line in lines),
                                      "garbage": sum(line in _GARBAGE for line in lines),
                                      "first_run_writes": writes}) + "\n")

    rerun()
