"""Shared fixtures: emulators served over loopback, a clean environment, directory markers."""

from __future__ import annotations

import heapq
import os
import typing as t

import pytest

from crmphones_emulators import EmulatorServer, Faults
from crmphones_emulators.activix import ActivixApp
from crmphones_emulators.onedegree import OneDegreeApp
from crmphones_emulators.outreach import OutreachApp
from crmphones_emulators.ticketevolution import TicketEvolutionApp

if t.TYPE_CHECKING:
    import pathlib
    from collections.abc import Iterable, Iterator

    from crmphones_emulators.server import DialectApp, LoggedRequest

SOURCE_TOKEN = "source-token-s3cr3t"
DESTINATION_TOKEN = "destination-token-s3cr3t"
SOURCE_SECRET = "source-signing-secret-s3cr3t"
DESTINATION_SECRET = "destination-signing-secret-s3cr3t"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by directory, so `-m "not e2e"` gives the quick loop."""
    for item in items:
        if f"{os.sep}e2e{os.sep}" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxies and plugin settings from the developer's shell must not leak into tests."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name.startswith(("TAP_CRMPHONES", "TARGET_CRMPHONES")):
            monkeypatch.delenv(name, raising=False)


# The accounts tests read and write, each served once per session (per xdist worker): a test
# gets its account back as seeded, with its options as built, no faults and an empty log.
_ACCOUNTS: dict[str, t.Callable[[], DialectApp]] = {
    # 300 messy phone numbers on 150 prospects; the destination has the same prospects.
    "outreach_source": lambda: OutreachApp(records=300, parents=150, seed=7, token=SOURCE_TOKEN),
    "outreach_destination": lambda: OutreachApp(records=0, parents=150, seed=7,
                                                token=DESTINATION_TOKEN),
    # 200 messy lead phones on 100 leads (quota out of the way), and the same leads, no phones.
    "activix_source": lambda: ActivixApp(records=200, parents=100, seed=5, token=SOURCE_TOKEN,
                                         rate_limit=100_000),
    "activix_destination": lambda: ActivixApp(records=0, parents=100, seed=5,
                                              token=DESTINATION_TOKEN, rate_limit=100_000),
    # 200 messy phone numbers on 100 clients, and the same clients with none.
    "te_source": lambda: TicketEvolutionApp(records=200, parents=100, seed=8, token=SOURCE_TOKEN,
                                            secret=SOURCE_SECRET, rate_limit=100_000),
    "te_destination": lambda: TicketEvolutionApp(records=0, parents=100, seed=8,
                                                 token=DESTINATION_TOKEN,
                                                 secret=DESTINATION_SECRET, rate_limit=100_000),
    # 200 phones on 40 organizations and their locations and opportunities; the same owners.
    "od_source": lambda: OneDegreeApp(records=200, parents=40, seed=9, api_key=SOURCE_TOKEN,
                                      api_secret=SOURCE_SECRET),
    "od_destination": lambda: OneDegreeApp(records=0, parents=40, seed=9, api_key=DESTINATION_TOKEN,
                                           api_secret=DESTINATION_SECRET),
}


@pytest.fixture(scope="session")
def _served() -> Iterator[dict[str, EmulatorServer]]:
    """Every account's server, started on first use."""
    servers: dict[str, EmulatorServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


def _fresh(served: dict[str, EmulatorServer], name: str) -> EmulatorServer:
    if name not in served:
        served[name] = EmulatorServer(_ACCOUNTS[name]()).start()
    server = served[name]
    server.app.reset()
    server.faults = Faults()
    server.requests.clear()
    return server


@pytest.fixture
def outreach_source(_served: dict[str, EmulatorServer]) -> EmulatorServer:
    """An Outreach account with 300 messy phone numbers on 150 prospects."""
    return _fresh(_served, "outreach_source")


@pytest.fixture
def outreach_destination(_served: dict[str, EmulatorServer]) -> EmulatorServer:
    """An Outreach account with the same 150 prospects and no phone numbers yet."""
    return _fresh(_served, "outreach_destination")


@pytest.fixture
def activix_source(_served: dict[str, EmulatorServer]) -> EmulatorServer:
    """An Activix account with 200 messy lead phones on 100 leads (quota out of the way)."""
    return _fresh(_served, "activix_source")


@pytest.fixture
def activix_destination(_served: dict[str, EmulatorServer]) -> EmulatorServer:
    """An Activix account with the same 100 leads and no phones yet."""
    return _fresh(_served, "activix_destination")


@pytest.fixture
def te_source(_served: dict[str, EmulatorServer]) -> EmulatorServer:
    """A Ticket Evolution account with 200 messy phone numbers on 100 clients."""
    return _fresh(_served, "te_source")


@pytest.fixture
def te_destination(_served: dict[str, EmulatorServer]) -> EmulatorServer:
    """A Ticket Evolution account with the same 100 clients and no phone numbers yet."""
    return _fresh(_served, "te_destination")


@pytest.fixture
def od_source(_served: dict[str, EmulatorServer]) -> EmulatorServer:
    """A One Degree account with 200 phones on 40 organizations and their locations and
    opportunities."""
    return _fresh(_served, "od_source")


@pytest.fixture
def od_destination(_served: dict[str, EmulatorServer]) -> EmulatorServer:
    """A One Degree account with the same owners and no phones yet."""
    return _fresh(_served, "od_destination")


def in_flight_at_once(log: Iterable[LoggedRequest]) -> int:
    """The most requests the emulator held at one time, from its request log: concurrency
    seen by the server (one request arrived before another was answered), not inferred from
    how long a run took."""
    most = 0
    answering: list[float] = []  # when each request in flight was answered (a heap)
    for request in sorted(log, key=lambda r: r.at):
        while answering and answering[0] <= request.at:  # answered before this one arrived
            heapq.heappop(answering)
        heapq.heappush(answering, request.done)
        most = max(most, len(answering))  # this one and those still in flight
    return most


def outreach_config(server: EmulatorServer, token: str, **extra: t.Any) -> dict[str, t.Any]:
    """Plugin settings pointing at an emulated Outreach account, pacing off unless asked."""
    return {"provider": "outreach", "api_url": f"{server.url}/api/v2", "access_token": token,
            "max_requests_per_minute": 0, **extra}


@pytest.fixture
def staging_path(tmp_path: pathlib.Path) -> str:
    """A fresh DuckDB staging file."""
    return str(tmp_path / "staging.duckdb")


def activix_config(server: EmulatorServer, token: str, **extra: t.Any) -> dict[str, t.Any]:
    """Plugin settings pointing at an emulated Activix account, pacing off unless asked."""
    return {"provider": "activix", "api_url": f"{server.url}/v2", "access_token": token,
            "max_requests_per_minute": 0, **extra}


def te_config(server: EmulatorServer, token: str, secret: str, **extra: t.Any) -> dict[str, t.Any]:
    """Plugin settings pointing at an emulated Ticket Evolution account."""
    return {"provider": "ticketevolution", "api_url": f"{server.url}/v9", "api_token": token,
            "api_secret": secret, **extra}


def od_config(server: EmulatorServer, key: str, secret: str, **extra: t.Any) -> dict[str, t.Any]:
    """Plugin settings pointing at an emulated One Degree account."""
    return {"provider": "onedegree", "api_url": f"{server.url}/v1", "api_key": key,
            "api_secret": secret, **extra}
