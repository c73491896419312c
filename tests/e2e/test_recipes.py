"""The README's recipes, run as the README writes them, each in a fresh copy of the checkout
(same commands, same state ids, same paths: `output/`, `.crmphones/`), against emulators
that the `emulator` environment points at through its `CRMPHONES_*` variables."""

from __future__ import annotations

import json
import re
import typing as t
from urllib.parse import parse_qs

import duckdb

from tests.e2e.conftest import (
    meltano,
    ok,
    outreach_phones,
    recipe,
    shell,
    valid_e164,
    valid_outreach_phones,
)

if t.TYPE_CHECKING:
    import pathlib
    from collections.abc import Callable

    from tests.e2e.conftest import EmulatorProcess

    Start = Callable[..., EmulatorProcess]


def _bookmarks(project: pathlib.Path) -> dict[str, t.Any]:
    """Meltano's saved state in ``project``: state id -> the bookmarks it holds."""
    ids = ok(meltano(project, "state", "list"), "meltano state list").split()
    saved = {}
    for state_id in ids:
        state = json.loads(ok(meltano(project, "state", "get", state_id), state_id))
        saved[state_id] = state.get("singer_state", {}).get("bookmarks")
    return saved


def test_recipe_scheduled_pipeline(project: pathlib.Path, emulators: Start) -> None:
    """Recipe 1, then its run again (tonight's run and tomorrow's, which is the scheduled job
    itself): every valid number once, the second run resumes from the saved state and writes
    nothing; the schedule is listed.

    The saved state is one state id (`meltano state list`) whose bookmark the second run
    starts from: the source sees its phone numbers asked from the latest `updatedAt` the
    first run read, a bookmark only Meltano's saved state can have given it."""
    source = emulators("outreach", "--records", "100", "--parents", "50", "--seed", "11",
                       "--token", "e2e-source-token")
    destination = emulators("outreach", "--records", "0", "--parents", "50", "--seed", "11",
                            "--token", "e2e-destination-token")
    env = {"CRMPHONES_SOURCE_PORT": source.port, "CRMPHONES_DESTINATION_PORT": destination.port,
           "CRMPHONES_SOURCE_TOKEN": "e2e-source-token",
           "CRMPHONES_DESTINATION_TOKEN": "e2e-destination-token"}
    commands = recipe("1. A scheduled pipeline")
    outputs = [shell(project, command, env) for command in commands]
    for command, result in zip(commands, outputs, strict=True):
        ok(result, command)
        assert "e2e-destination-token" not in result.stderr + result.stdout
    assert any("nightly-outreach-sync" in r.stdout and "@daily" in r.stdout for r in outputs)

    written = outreach_phones(destination)
    assert written, "the destination received phone numbers"
    assert len(written) == len(set(written)), "no phone twice"
    assert set(written) == valid_outreach_phones(source), "every valid number on its prospect"
    (state_id,) = ok(meltano(project, "state", "list"), "meltano state list").split()

    writes = destination.writes()
    asked_before = len(source.requests())
    (tomorrow,) = [command for command in commands if command.startswith("meltano run ")]
    ok(shell(project, tomorrow, env), tomorrow)
    assert destination.writes() == writes, "the next run writes nothing new"
    reads = [parse_qs(r["query"]) for r in source.requests()[asked_before:]
             if r["method"] == "GET" and r["path"].endswith("/phoneNumbers")]
    latest = max(p["attributes"]["updatedAt"] for p in source.state()["phoneNumbers"])
    assert reads, "the next run read the source"
    assert reads[0].get("filter[updatedAt]") == [f"{latest}..inf"], (state_id, reads[0])


def test_recipe_warehouse_backfill(project: pathlib.Path, emulators: Start) -> None:
    """Recipe 2: phone numbers and prospects into `output/warehouse.duckdb` through
    target-duckdb, every row landed with its raw record; the recipe's query shows them."""
    source = emulators("outreach", "--records", "150", "--parents", "60", "--seed", "14",
                       "--token", "e2e-backfill-token")
    env = {"CRMPHONES_SOURCE_PORT": source.port, "CRMPHONES_SOURCE_TOKEN": "e2e-backfill-token"}
    *load, query = recipe("2. A warehouse backfill")
    for command in load:
        ok(shell(project, command, env), command)
    shown = ok(shell(project, query, env), query)

    held = source.state()
    valid = {e164 for (_, e164, _) in valid_outreach_phones(source)}
    assert all(name in shown for name in ("parent_id", "e164", "phone_type")), shown
    numbers_shown = set(re.findall(r"\+\d{8,15}", shown))
    assert numbers_shown, shown
    assert numbers_shown <= valid
    with duckdb.connect(str(project / "output" / "warehouse.duckdb"), read_only=True) as con:
        phones = con.execute("SELECT id, number, e164, parent_id, raw FROM crm.phone_numbers"
                             ).fetchall()
        prospects = con.execute("SELECT count(*) FROM crm.prospects").fetchone()
    assert sorted(int(row[0]) for row in phones) == [p["id"] for p in held["phoneNumbers"]]
    assert prospects == (len(held["prospects"]),)
    numbers = {str(p["id"]): p["attributes"]["number"] for p in held["phoneNumbers"]}
    assert all(numbers[row[0]] == row[1] for row in phones), "numbers kept as stored"
    raw = json.loads(phones[0][4]) if isinstance(phones[0][4], str) else phones[0][4]
    assert raw["type"] == "phoneNumber"


_OUTREACH_TO_ACTIVIX_TYPES = {"mobile": "mobile", "work": "work", "home": "home", "voip": "mobile",
                              "other": "home", None: "home"}


def test_recipe_migration_between_crms(project: pathlib.Path, emulators: Start) -> None:
    """Recipe 3: the parent map set with `meltano config set`, the preview (a dry run: nothing
    sent, a plan to read, no bookmark), then the migration under the same state id, at
    Activix's own 200/minute limit, every record accounted for; again: nothing to write.

    That the preview moved no bookmark is shown by the migration itself: it runs under the
    preview's state id and reads incrementally from its bookmark, and it receives every
    record the source holds (a bookmark saved by the preview would have left it only the
    latest ones), rather than by asking `meltano state list` between the two."""
    source = emulators("outreach", "--records", "60", "--parents", "30", "--seed", "11",
                       "--token", "e2e-outreach-token")
    activix = emulators("activix", "--records", "0", "--parents", "30", "--seed", "11",
                        "--token", "e2e-activix-key")
    lead_for = {str(i): str(31 - i) for i in range(1, 30)}  # prospect 30 has no lead
    (project / "prospect_to_lead.csv").write_text(
        "source_parent_id,target_parent_id\n"
        + "".join(f"{p},{lead}\n" for p, lead in lead_for.items()))
    env = {"CRMPHONES_SOURCE_PORT": source.port, "CRMPHONES_SOURCE_TOKEN": "e2e-outreach-token",
           "CRMPHONES_ACTIVIX_PORT": activix.port, "CRMPHONES_ACTIVIX_TOKEN": "e2e-activix-key"}
    set_map, preview, show_plan, migrate = recipe("3. A migration between CRMs")

    ok(shell(project, set_map, env), set_map)
    ok(shell(project, preview, env), preview)
    assert activix.writes() == [], "the preview sends nothing"
    shown = ok(shell(project, show_plan, env), show_plan)
    assert "planned (dry run: nothing was sent)" in shown
    assert "rejects only the CRM can give are not in this plan: a lead id" in shown
    (plan_csv,) = (project / ".crmphones" / "reports").glob("*.csv")
    planned = [line for line in plan_csv.read_text().splitlines() if ",created," in line]
    assert planned

    result = shell(project, migrate, env)
    ok(result, migrate)
    assert "e2e-activix-key" not in result.stderr + result.stdout
    (bookmarks,) = _bookmarks(project).values()  # one state id, the preview's and the run's
    assert bookmarks["phone_numbers"]

    held = source.state()["phoneNumbers"]
    candidates: dict[tuple[str, str, str | None], str] = {}
    for phone in held:
        attributes = phone["attributes"]
        read = valid_e164(attributes["number"], attributes["countryCode"], attributes["extension"])
        prospect = str(phone["relationships"]["prospect"]["data"]["id"])
        if read and prospect in lead_for:
            candidates[(lead_for[prospect], *read)] = _OUTREACH_TO_ACTIVIX_TYPES.get(
                attributes["phoneType"], "home")
    written = activix.state()["lead_phones"]
    assert written, "the leads received phone numbers"
    for phone in written:
        key = (str(phone["lead_id"]), phone["number"],
               str(phone["extension"]) if phone["extension"] is not None else None)
        assert key in candidates, f"{key} does not come from a mapped prospect"
    slots = [(p["lead_id"], p["type"]) for p in written]
    assert len(slots) == len(set(slots))

    with duckdb.connect(str(project / ".crmphones" / "activix.duckdb"), read_only=True) as ledger:
        real = "(SELECT run_id FROM runs WHERE NOT dry_run)"  # the preview is in the file too
        counts = ledger.execute("SELECT received, created, merged, rejected, filtered FROM runs "
                                f"WHERE run_id = {real}").fetchone()
        reasons = [r for (r,) in ledger.execute(
            f"SELECT reason FROM rejects WHERE run_id = {real}").fetchall()]
    assert counts is not None
    received, created, merged, rejected, filtered = counts
    assert received == len(held), "the preview moved no bookmark: the migration read everything"
    assert created == len(written) == len(planned), "the preview planned what was done"
    assert created + merged + rejected + filtered == received
    unplaced = [r for r in reasons if "one phone per type per lead" in r]
    assert len(written) + len(unplaced) == len(candidates)
    unmapped = [p for p in held if p["relationships"]["prospect"]["data"]["id"] == 30]
    assert sum("prospect 30 has no row in the parent map" in r for r in reasons) == len(unmapped)
    assert not [r for r in activix.requests() if r["status"] in (403, 429)]

    # The same migration again, reading everything: nothing left to write.
    writes = activix.writes()
    again = migrate.replace("meltano run", "meltano run --full-refresh", 1)
    ok(shell(project, again, env), again)
    assert activix.writes() == writes
