"""Per-parent reads run max_concurrency at a time and give exactly the records and state of
one at a time (One Degree and Ticket Evolution, whose indexes here embed no phones)."""

from __future__ import annotations

import re
import typing as t

import pytest

from crmphones_emulators import EmulatorServer, Faults
from crmphones_emulators.onedegree import OneDegreeApp
from crmphones_emulators.ticketevolution import TicketEvolutionApp
from tests.conftest import SOURCE_SECRET, SOURCE_TOKEN, in_flight_at_once, od_config, te_config
from tests.tap.conftest import TapRun, run_tap

if t.TYPE_CHECKING:
    from collections.abc import Iterator

LATENCY_MS = 10


@pytest.fixture
def od_bare_index() -> Iterator[EmulatorServer]:
    """40 organizations whose index items lack phones and locations (a GET each is needed)."""
    app = OneDegreeApp(records=200, parents=40, seed=9, api_key=SOURCE_TOKEN,
                       api_secret=SOURCE_SECRET, index_embeds_phones=False)
    with EmulatorServer(app, faults=Faults(latency_ms=LATENCY_MS)) as server:
        yield server


@pytest.fixture
def te_bare_index() -> Iterator[EmulatorServer]:
    """100 clients whose index items lack phone_numbers (a list each is needed)."""
    app = TicketEvolutionApp(records=200, parents=100, seed=8, token=SOURCE_TOKEN,
                             secret=SOURCE_SECRET, rate_limit=100_000,
                             index_embeds_phones=False)
    with EmulatorServer(app, faults=Faults(latency_ms=LATENCY_MS)) as server:
        yield server


def _logged(server: EmulatorServer, config: dict[str, t.Any]) -> tuple[TapRun, int, list[str]]:
    """The run, the most requests the server held at once, and the paths it was asked."""
    server.requests.clear()
    run = run_tap(config)
    return run, in_flight_at_once(server.requests), [r.path for r in server.requests]


def test_onedegree_organizations_and_opportunities_read_concurrently_same_output(
    od_bare_index: EmulatorServer,
) -> None:
    config = od_config(od_bare_index, SOURCE_TOKEN, SOURCE_SECRET)
    one, one_at_once, one_paths = _logged(od_bare_index, {**config, "max_concurrency": 1})
    eight, eight_at_once, eight_paths = _logged(od_bare_index, {**config, "max_concurrency": 8})

    assert eight.records == one.records  # every stream, in the same order
    assert eight.state == one.state
    held = od_bare_index.app.snapshot()
    assert sorted(int(r["id"]) for stream in one.records.values() for r in stream) == sorted(
        p["id"] for p in held["phones"])
    shows = [p for p in one_paths if re.fullmatch(r"/v1/organizations/\d+", p)]
    assert len(shows) == 3 * len(held["organizations"]), "each phone stream asks every organization"
    assert sorted(eight_paths) == sorted(one_paths), "the same requests, only overlapped"
    assert one_at_once == 1
    # max_concurrency at once, and the next index page that may be fetched ahead beside them
    assert 2 < eight_at_once <= 8 + 1, "the reads overlapped"


def test_ticketevolution_client_lists_read_concurrently_same_output(
    te_bare_index: EmulatorServer,
) -> None:
    config = te_config(te_bare_index, SOURCE_TOKEN, SOURCE_SECRET)
    one, one_at_once, one_paths = _logged(te_bare_index, {**config, "max_concurrency": 1})
    eight, eight_at_once, eight_paths = _logged(te_bare_index, {**config, "max_concurrency": 8})

    assert eight.records == one.records
    assert eight.state == one.state
    assert one.state["bookmarks"]["client_phone_numbers"]["replication_key_value"]
    held = te_bare_index.app.snapshot()
    assert sorted(int(r["id"]) for r in one.records["client_phone_numbers"]) == [
        p["id"] for p in held["phone_numbers"]]
    lists = [p for p in one_paths if p.endswith("/phone_numbers")]
    assert len(lists) == len(held["clients"]), "one list per client"
    assert sorted(eight_paths) == sorted(one_paths)
    assert one_at_once == 1
    # max_concurrency at once, and the next index page that may be fetched ahead beside them
    assert 2 < eight_at_once <= 8 + 1, "the reads overlapped"
