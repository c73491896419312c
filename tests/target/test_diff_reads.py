"""The reads a diff needs come from pages of parents when that is cheaper, and still plan right.

One Degree reads the organizations index filtered to the batch's ids, Ticket Evolution the
clients index (both embed the phones), instead of one request per parent; owners that are
gone, and One Degree's locations and opportunities (ancestors), still diff correctly. Outreach
lists 250 prospects' phones a request, several requests at a time.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import typing as t

import pytest

from crmphones.dialects.outreach import OWNERS_PER_LISTING
from crmphones_emulators import EmulatorServer, Faults
from crmphones_emulators.onedegree import OneDegreeApp
from crmphones_emulators.outreach import OutreachApp
from crmphones_emulators.ticketevolution import TicketEvolutionApp
from tests.conftest import (
    DESTINATION_SECRET,
    DESTINATION_TOKEN,
    SOURCE_SECRET,
    SOURCE_TOKEN,
    od_config,
    outreach_config,
    te_config,
)
from tests.tap.conftest import run_tap
from tests.target.conftest import SCHEMA, TargetRunner, last_run_counts, ledger, record

if t.TYPE_CHECKING:
    import pathlib
    from collections.abc import Iterator


def _phone_records(source: EmulatorServer, config: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """The source's valid phones, one per owner and number (no merges to account for)."""
    run = run_tap(config)
    seen, out = set(), []
    for stream in sorted(run.records):
        for phone in run.records[stream]:
            key = (phone["parent_type"], phone["parent_id"], phone["e164"], phone["extension"])
            if phone["is_valid"] and key not in seen:
                seen.add(key)
                out.append(phone)
    return out


def _changed(phones: list[dict[str, t.Any]], retype: t.Callable[[dict[str, t.Any]], None]
             ) -> tuple[list[dict[str, t.Any]], int, int]:
    """Every seventh phone retyped, and a new number beside every fifth: (input, new, retyped)."""
    out, new, retyped = [], 0, 0
    for index, phone in enumerate(phones):
        phone = copy.deepcopy(phone)
        if index % 7 == 3:
            retype(phone)
            retyped += 1
        out.append(phone)
        if index % 5 == 1:
            extra = {**copy.deepcopy(phone), "id": None, "number": f"+1 212 555 {1000 + index}",
                     "extension": None, "is_primary": False}
            for field in ("e164", "region", "is_valid", "raw"):
                extra.pop(field, None)
            out.append(extra)
            new += 1
    return out, new, retyped


def _lines(phones: list[dict[str, t.Any]], *extra: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    return [SCHEMA, *(record(**p) for p in phones), *extra]


def _gets(server: EmulatorServer) -> list[tuple[str, str]]:
    return [(r.path, r.query) for r in server.requests if r.method == "GET"]


# -- One Degree ---------------------------------------------------------------------------------


@pytest.fixture
def od_pair() -> Iterator[tuple[EmulatorServer, EmulatorServer]]:
    """A source with 100 phones on 40 organizations (each kind of owner among them), and a
    destination with the same owners. Loading the source's phones is each test's first run:
    100 reach every owner kind and 33 organizations, one page of the filtered index."""
    source = OneDegreeApp(records=100, parents=40, seed=9, api_key=SOURCE_TOKEN,
                          api_secret=SOURCE_SECRET)
    destination = OneDegreeApp(records=0, parents=40, seed=9, api_key=DESTINATION_TOKEN,
                               api_secret=DESTINATION_SECRET)
    with EmulatorServer(source) as src, EmulatorServer(destination) as dst:
        yield src, dst


def _od_loaded(od_pair: tuple[EmulatorServer, EmulatorServer], runner: TargetRunner,
               staging_path: str) -> tuple[list[dict[str, t.Any]], dict[str, t.Any]]:
    """The destination loaded with the source's phones; the request log cleared."""
    source, destination = od_pair
    phones = _phone_records(source, od_config(source, SOURCE_TOKEN, SOURCE_SECRET))
    config = od_config(destination, DESTINATION_TOKEN, DESTINATION_SECRET,
                       staging_path=staging_path)
    runner.run(config, _lines(phones))
    assert last_run_counts(staging_path)["created"] == len(phones)
    destination.requests.clear()
    return phones, config


def _od_retype(phone: dict[str, t.Any]) -> None:
    phone["phone_type"] = "fax" if phone["phone_type"] != "fax" else "mobile"
    phone["label"] = None


def test_onedegree_diff_reads_the_filtered_index_not_each_organization(
    od_pair: tuple[EmulatorServer, EmulatorServer], target_runner: TargetRunner,
    staging_path: str,
) -> None:
    _, destination = od_pair
    phones, config = _od_loaded(od_pair, target_runner, staging_path)
    assert {p["parent_type"] for p in phones} == {"organization", "location", "opportunity"}
    changed, new, retyped = _changed(phones, _od_retype)
    gone = record(parent_type="organization", parent_id="999", number="+1 212 555 0190")
    target_runner.run(config, _lines(changed, gone))

    counts = last_run_counts(staging_path)
    assert (counts["created"], counts["updated"], counts["rejected"]) == (new, retyped, 1)
    assert counts["unchanged"] == len(phones) - retyped
    (reason,) = [r for (r,) in ledger(staging_path, "SELECT reason FROM rejects")]
    assert "Organization not found" in reason

    gets = _gets(destination)
    listings = [q for p, q in gets if p == "/v1/organizations"]
    # 34 ids (33 organizations and 999) on one page of 100; 999 is not found, so the next
    # (empty) page is asked too (a short page may only be the server's own cap).
    assert len(listings) == 2
    assert all("ids=" in q for q in listings)
    assert ["page=1" in listings[0], "page=2" in listings[1]] == [True, True]
    shows = [p for p, _ in gets if re.fullmatch(r"/v1/organizations/\d+", p)]
    assert shows == ["/v1/organizations/999"], "only the organization the index lacks"
    with_opportunities = {p["ancestors"]["organization"] for p in phones
                          if p["parent_type"] == "opportunity" or "opportunity" in p["ancestors"]}
    opportunity_pages = {p for p, _ in gets if p.endswith("/opportunities")}
    assert opportunity_pages == {f"/v1/organizations/{o}/opportunities" for o in with_opportunities}
    assert len(gets) == 3 + sum(1 for p, _ in gets if p.endswith("/opportunities"))

    held = {(p["phoneable_type"], str(p["phoneable_id"]), p["digits"])
            for p in destination.app.snapshot()["phones"]}
    kinds = {"organization": "Organization", "location": "Location", "opportunity": "Opportunity"}
    for phone in changed:
        if phone.get("id") is None:  # the new numbers, each on its own owner
            digits = "+1212555" + phone["number"].rsplit(" ", 1)[1]
            assert (kinds[phone["parent_type"]], phone["parent_id"], digits) in held


def test_onedegree_index_without_embedded_phones_falls_back_to_each_organization(
    od_pair: tuple[EmulatorServer, EmulatorServer], target_runner: TargetRunner,
    staging_path: str,
) -> None:
    _, destination = od_pair
    phones, config = _od_loaded(od_pair, target_runner, staging_path)
    destination.app.configure({"index_embeds_phones": False})
    changed, new, retyped = _changed(phones, _od_retype)
    target_runner.run(config, _lines(changed))

    counts = last_run_counts(staging_path)
    assert (counts["created"], counts["updated"], counts["rejected"]) == (new, retyped, 0)
    gets = _gets(destination)
    organizations = {p["ancestors"].get("organization", p["parent_id"]) for p in phones}
    assert sum(1 for p, _ in gets if p == "/v1/organizations") == 1
    shows = sorted(p for p, _ in gets if re.fullmatch(r"/v1/organizations/\d+", p))
    assert shows == sorted(f"/v1/organizations/{o}" for o in organizations)


def test_onedegree_one_organization_is_one_get(
    od_pair: tuple[EmulatorServer, EmulatorServer], target_runner: TargetRunner,
    staging_path: str,
) -> None:
    _, destination = od_pair
    phones, config = _od_loaded(od_pair, target_runner, staging_path)
    mine = [p for p in phones if p["parent_type"] == "organization"][:1]
    target_runner.run(config, _lines(mine))
    assert last_run_counts(staging_path)["unchanged"] == 1
    assert _gets(destination) == [(f"/v1/organizations/{mine[0]['parent_id']}",
                                   f"api_key={DESTINATION_TOKEN}")]


# -- Ticket Evolution -----------------------------------------------------------------------------


@pytest.fixture
def te_pair() -> Iterator[tuple[EmulatorServer, EmulatorServer]]:
    """A source with 200 phones on 100 clients, and a destination with the same clients."""
    source = TicketEvolutionApp(records=200, parents=100, seed=8, token=SOURCE_TOKEN,
                                secret=SOURCE_SECRET, rate_limit=100_000)
    destination = TicketEvolutionApp(records=0, parents=100, seed=8, token=DESTINATION_TOKEN,
                                     secret=DESTINATION_SECRET, rate_limit=100_000)
    with EmulatorServer(source) as src, EmulatorServer(destination) as dst:
        yield src, dst


def _te_retype(phone: dict[str, t.Any]) -> None:
    phone["label"] = "Changed"


def test_ticketevolution_diff_reads_the_clients_index_when_cheaper(
    te_pair: tuple[EmulatorServer, EmulatorServer], target_runner: TargetRunner,
    staging_path: str,
) -> None:
    source, destination = te_pair
    phones = _phone_records(source, te_config(source, SOURCE_TOKEN, SOURCE_SECRET))
    config = te_config(destination, DESTINATION_TOKEN, DESTINATION_SECRET,
                       staging_path=staging_path)
    target_runner.run(config, _lines(phones))
    destination.requests.clear()

    changed, new, retyped = _changed(phones, _te_retype)
    gone = record(parent_type="client", parent_id="999", number="+1 212 555 0191")
    target_runner.run(config, _lines(changed, gone))

    counts = last_run_counts(staging_path)
    assert (counts["created"], counts["updated"], counts["rejected"]) == (new, retyped, 1)
    assert counts["unchanged"] == len(phones) - retyped
    gets = [p for p, _ in _gets(destination)]
    assert len({p["parent_id"] for p in changed}) > 50
    assert gets == ["/v9/clients", "/v9/clients/999"], \
        "one index page for every client, and the show of the one it lacks"
    puts = [json.loads(r.body or "{}") for r in destination.requests if r.method == "PUT"]
    assert [put["label"] for put in puts] == ["Changed"] * retyped


def test_ticketevolution_few_clients_of_a_large_account_are_read_one_list_each(
    target_runner: TargetRunner, staging_path: str,
) -> None:
    """600 clients are six index pages: four clients cost the first page, then four shows
    (each embeds the client's phones and names its primary)."""
    app = TicketEvolutionApp(records=0, parents=600, seed=8, token=DESTINATION_TOKEN,
                             secret=DESTINATION_SECRET, rate_limit=100_000)
    with EmulatorServer(app) as destination:
        config = te_config(destination, DESTINATION_TOKEN, DESTINATION_SECRET,
                           staging_path=staging_path)
        target_runner.run(config, [SCHEMA, *(record(parent_type="client", parent_id=str(c),
                                                    number=f"+1 212 555 {1000 + c}")
                                             for c in (3, 40, 77, 598))])
        assert last_run_counts(staging_path)["created"] == 4
        gets = [p for p, _ in _gets(destination)]
    assert gets[0] == "/v9/clients"
    assert sorted(gets[1:]) == sorted(f"/v9/clients/{c}" for c in (3, 40, 77, 598))


# -- Outreach -----------------------------------------------------------------------------------


def test_outreach_listings_of_a_batch_run_concurrently(target_runner: TargetRunner,
                                                       tmp_path: pathlib.Path) -> None:
    """A batch's owners are listed ``OWNERS_PER_LISTING`` prospects a request,
    ``max_concurrency`` requests at a time (one at a time, each waits out the latency before
    the next), with the same plan."""
    latency = 0.05
    parents = 5 * OWNERS_PER_LISTING
    lines = [SCHEMA, *(record(parent_id=str(p), number=f"+1 202 555 {p:04d}")
                       for p in range(1, parents + 1))]
    plans, gaps = {}, {}
    for concurrency in (1, 4):
        app = OutreachApp(records=0, parents=parents, seed=2, token=DESTINATION_TOKEN)
        with EmulatorServer(app, faults=Faults(latency_ms=latency * 1000)) as server:
            staging = str(tmp_path / f"ledger-{concurrency}.duckdb")
            target_runner.run(outreach_config(server, DESTINATION_TOKEN, staging_path=staging,
                                              dry_run=True, max_concurrency=concurrency), lines)
            listed = sorted(r.at for r in server.requests if r.path.endswith("/phoneNumbers"))
        assert len(listed) == 5
        gaps[concurrency] = [b - a for a, b in itertools.pairwise(listed)]
        plans[concurrency] = ledger(staging, "SELECT seq, outcome FROM outcomes ORDER BY seq")
    assert plans[4] == plans[1] and {o for _, o in plans[1]} == {"created"}
    assert min(gaps[1]) >= latency * 0.9
    assert sum(gap < latency / 2 for gap in gaps[4]) >= 3


def _listings(server: EmulatorServer) -> int:
    return sum(1 for p, _ in _gets(server) if p.endswith("/phoneNumbers"))


def test_outreach_reads_each_owner_once_a_run_however_its_records_are_batched(
    target_runner: TargetRunner, staging_path: str,
) -> None:
    """300 prospects, each named in two batches of 300. The first batch adds a number to
    every third prospect; the second sends every number again. The run de-duplicates over
    both batches and reads each prospect once (two listings of up to 250): nothing is created
    twice, and the second batch's copies are merged."""
    parents = 300
    held = [record(parent_id=str(p), number=f"+1 202 555 {p:04d}") for p in range(1, parents + 1)]
    new = {p: f"+1 212 555 {p:04d}" for p in range(3, parents + 1, 3)}
    app = OutreachApp(records=0, parents=parents, seed=2, token=DESTINATION_TOKEN)
    with EmulatorServer(app) as server:
        config = outreach_config(server, DESTINATION_TOKEN, staging_path=staging_path,
                                 batch_size_rows=parents)
        target_runner.run(config, [SCHEMA, *held])
        server.requests.clear()
        first = [record(parent_id=str(p), number=new.get(p, f"+1 202 555 {p:04d}"))
                 for p in range(1, parents + 1)]
        second = [record(parent_id=str(p), number=new[p]) for p in new]
        second += [record(parent_id=str(p), number=f"+1 202 555 {p:04d}")
                   for p in range(1, parents + 1) if p not in new]
        target_runner.run(config, [SCHEMA, *first, *second])
        counts = last_run_counts(staging_path)
        assert (counts["created"], counts["unchanged"], counts["merged"]) == (
            len(new), parents - len(new), parents)
        numbers = [(p["relationships"]["prospect"]["data"]["id"], p["attributes"]["number"])
                   for p in server.app.snapshot()["phoneNumbers"]]
        assert len(numbers) == parents + len(new) == len(set(numbers))
        assert _listings(server) == -(-parents // OWNERS_PER_LISTING)
