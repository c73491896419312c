"""target-crmphones writing clients' phone numbers to an emulated Ticket Evolution account."""

from __future__ import annotations

import json
import typing as t
from collections import Counter

import pytest

from tests.conftest import DESTINATION_SECRET, DESTINATION_TOKEN, SOURCE_SECRET, SOURCE_TOKEN, te_config
from tests.target.conftest import SCHEMA, TargetRunner, last_run_counts, ledger, record, tap_lines

if t.TYPE_CHECKING:
    import pathlib

    from crmphones_emulators import EmulatorServer


def _phones(server: EmulatorServer) -> list[dict[str, t.Any]]:
    return server.app.snapshot()["phone_numbers"]


def _writes(server: EmulatorServer) -> list[t.Any]:
    return [r for r in server.requests if r.method in ("POST", "PUT")]


def _config(server: EmulatorServer, staging_path: str, **extra: t.Any) -> dict[str, t.Any]:
    return te_config(server, DESTINATION_TOKEN, DESTINATION_SECRET, staging_path=staging_path,
                     **extra)


def test_tap_to_target_round_trip_one_post_per_client(
    te_source: EmulatorServer, te_destination: EmulatorServer, target_runner: TargetRunner,
    staging_path: str, tmp_path: pathlib.Path,
) -> None:
    """Each valid number lands once on its client, all of a client's numbers in one POST."""
    lines = tap_lines(te_config(te_source, SOURCE_TOKEN, SOURCE_SECRET), tmp_path)
    source = [json.loads(x)["record"] for x in lines if json.loads(x)["type"] == "RECORD"]
    target_runner.run(_config(te_destination, staging_path), lines)

    valid = [r for r in source if r["is_valid"]]
    written = _phones(te_destination)
    assert Counter(str(p["client_id"]) for p in written) == Counter(r["parent_id"] for r in valid)
    posts = [r for r in te_destination.requests if r.method == "POST"]
    assert len(posts) == len({r["parent_id"] for r in valid}), "one create request per client"
    counts = last_run_counts(staging_path)
    assert counts == {"received": len(source), "created": len(valid), "updated": 0,
                      "unchanged": 0, "merged": 0, "rejected": len(source) - len(valid)}

    # Every created outcome names the id the API gave that very number.
    by_id = {str(p["id"]): p for p in written}
    rows = ledger(staging_path, "SELECT o.destination_id, s.e164 FROM outcomes o JOIN staged s "
                                "USING (run_id, seq) WHERE o.outcome = 'created'")
    assert len(rows) == len(valid)
    for destination_id, e164 in rows:
        phone = by_id[destination_id]
        assert e164 == f"+{phone['country_code']}{phone['number']}"

    before = len(_writes(te_destination))
    target_runner.run(_config(te_destination, staging_path), lines)
    assert len(_writes(te_destination)) == before
    assert last_run_counts(staging_path)["unchanged"] == len(valid)


def test_mixed_batch_maps_ids_and_shortens_labels(
    te_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
) -> None:
    """Invalid numbers never reach the API; the valid ones of a client go in one POST and each
    outcome carries the id of its own number; a long label is cut to 20 characters."""
    target_runner.run(_config(te_destination, staging_path), [
        SCHEMA,
        record(parent_id="3", number="(212) 555-0160", label="Home"),
        record(parent_id="3", number="n/a"),
        record(parent_id="3", number="+44 20 7946 0958", label="London office switchboard"),
        record(parent_id="3", number="212.555.0161 x42", phone_type="mobile"),
        record(parent_id="3", number="12"),
        record(parent_id="4", number="+1 212 555 0162"),
    ])
    # Clients are written concurrently: one POST each, in no particular order.
    posts = {r.path: r for r in te_destination.requests if r.method == "POST"}
    assert len([r for r in te_destination.requests if r.method == "POST"]) == 2
    assert sorted(posts) == ["/v9/clients/3/phone_numbers", "/v9/clients/4/phone_numbers"]
    sent = json.loads(posts["/v9/clients/3/phone_numbers"].body or "{}")
    assert len(sent["phone_numbers"]) == 3
    held = {str(p["id"]): p for p in _phones(te_destination)}
    outcomes = dict(ledger(staging_path, "SELECT seq, destination_id FROM outcomes "
                                         "WHERE outcome = 'created'"))
    assert held[outcomes[1]]["number"] == "2125550160"
    assert held[outcomes[1]]["label"] == "Home"
    assert held[outcomes[3]]["number"] == "2079460958"
    assert held[outcomes[3]]["country_code"] == "44"
    assert held[outcomes[3]]["label"] == "London office switch"  # cut to 20 characters
    assert (held[outcomes[4]]["number"], held[outcomes[4]]["extension"]) == ("2125550161", "42")
    assert held[outcomes[4]]["label"] == "mobile"
    assert set(dict(ledger(staging_path, "SELECT seq, reason FROM rejects"))) == {2, 5}


def test_label_change_is_one_put_of_a_bare_object(
    te_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
) -> None:
    """A known number with another label: PUT of `{"label": ...}` only; no DELETE ever."""
    config = _config(te_destination, staging_path)
    target_runner.run(config, [SCHEMA, record(parent_id="6", number="+12125550170", label="Home")])
    target_runner.run(config, [SCHEMA, record(parent_id="6", number="212-555-0170", label="Work")])
    puts = [r for r in te_destination.requests if r.method == "PUT"]
    assert len(puts) == 1
    assert json.loads(puts[0].body or "{}") == {"label": "Work"}
    (phone,) = _phones(te_destination)
    assert phone["label"] == "Work"
    assert not [r for r in te_destination.requests if r.method == "DELETE"]


def test_wrong_secret_stops_at_once(
    te_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
) -> None:
    config = te_config(te_destination, DESTINATION_TOKEN, "wrong-secret", staging_path=staging_path)
    result = target_runner.run(config, [SCHEMA, record(parent_id="6", number="+12125550170")],
                               check=False)
    assert result.returncode == 1
    assert "api_secret" in result.stderr
    assert "Traceback" not in result.stderr
    assert "wrong-secret" not in result.stderr + result.stdout
    assert len(te_destination.requests) == 1


def test_string_ids_and_plus_country_codes(target_runner: TargetRunner, staging_path: str) -> None:
    """The API's quirks behind flags: ids as strings (integers in create answers) and country
    codes kept as "+1": the plan still matches held phones, so a rerun writes nothing."""
    from crmphones_emulators import EmulatorServer
    from crmphones_emulators.ticketevolution import TicketEvolutionApp

    app = TicketEvolutionApp(records=0, parents=5, seed=2, token=DESTINATION_TOKEN,
                             secret=DESTINATION_SECRET, rate_limit=100_000, mixed_ids=True,
                             normalize_country_code=False)
    with EmulatorServer(app) as server:
        messages = [SCHEMA, record(parent_id="2", number="212-555-0171", label="Home"),
                    record(parent_id="2", number="+44 20 7946 0960", label="Office")]
        target_runner.run(_config(server, staging_path), messages)
        created = ledger(staging_path, "SELECT destination_id FROM outcomes WHERE outcome = 'created'")
        assert sorted(d for (d,) in created) == sorted(str(p["id"]) for p in app.snapshot()["phone_numbers"])
        assert {p["country_code"] for p in app.snapshot()["phone_numbers"]} == {"+1", "+44"}
        writes = [r for r in server.requests if r.method in ("POST", "PUT")]
        target_runner.run(_config(server, staging_path), messages)
        assert [r for r in server.requests if r.method in ("POST", "PUT")] == writes
        assert last_run_counts(staging_path)["unchanged"] == 2


@pytest.mark.parametrize("clears", [True, False])
def test_new_primary_writes_the_old_one_not_primary(
    te_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
    clears: bool,
) -> None:
    """The input makes another number the client's primary: it is written primary and the old
    primary explicitly not, so the client ends with one primary whether or not the server
    clears the old one itself; the rerun writes nothing."""
    te_destination.app.configure({"primary_clears_others": clears})
    config = _config(te_destination, staging_path)
    target_runner.run(config, [SCHEMA,
                               record(parent_id="6", number="+12125550171", is_primary=True),
                               record(parent_id="6", number="+12125550172", is_primary=False)])
    old, new = sorted(_phones(te_destination), key=lambda p: p["id"])
    before = len(_writes(te_destination))
    moved = [SCHEMA, record(parent_id="6", number="212-555-0173", is_primary=True)]
    dry = target_runner.run({**config, "dry_run": True}, moved)
    assert f"would update phone {old['id']} on client 6" in dry.stderr, "the plan shows it"
    assert len(_writes(te_destination)) == before
    target_runner.run(config, moved)
    primaries = {p["number"] for p in _phones(te_destination) if p["is_primary"]}
    assert primaries == {"2125550173"}
    sent = [(r.method, r.path, json.loads(r.body or "{}")) for r in _writes(te_destination)[before:]]
    assert sent[0] == ("PUT", f"/v9/clients/6/phone_numbers/{old['id']}", {"is_primary": False})
    assert [s[0] for s in sent] == ["PUT", "POST"]
    assert new["is_primary"] is False
    assert last_run_counts(staging_path) == {"received": 1, "created": 1, "updated": 0,
                                             "unchanged": 0, "merged": 0, "rejected": 0}
    writes = len(_writes(te_destination))
    target_runner.run(config, moved)
    assert len(_writes(te_destination)) == writes
