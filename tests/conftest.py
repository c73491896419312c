"""Shared fixtures: emulators served over loopback, a clean environment, directory markers."""

from __future__ import annotations

import os
import typing as t

import pytest

from crmphones_emulators import EmulatorServer, LoggedRequest
from crmphones_emulators.activix import ActivixApp
from crmphones_emulators.onedegree import OneDegreeApp
from crmphones_emulators.outreach import OutreachApp
from crmphones_emulators.ticketevolution import TicketEvolutionApp

if t.TYPE_CHECKING:
    import pathlib
    from collections.abc import Iterator

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


@pytest.fixture
def outreach_source() -> Iterator[EmulatorServer]:
    """An Outreach account with 300 messy phone numbers on 150 prospects."""
    with EmulatorServer(OutreachApp(records=300, parents=150, seed=7, token=SOURCE_TOKEN)) as server:
        yield server


@pytest.fixture
def outreach_destination() -> Iterator[EmulatorServer]:
    """An Outreach account with the same 150 prospects and no phone numbers yet."""
    with EmulatorServer(OutreachApp(records=0, parents=150, seed=7, token=DESTINATION_TOKEN)
                        ) as server:
        yield server


def in_flight_at_once(log: t.Iterable[LoggedRequest]) -> int:
    """The most requests the emulator held at one time, from its request log: concurrency
    seen by the server (one request arrived before another was answered), not inferred from
    how long a run took."""
    events = sorted([(r.at, 1) for r in log] + [(r.done, -1) for r in log],
                    key=lambda e: (e[0], e[1]))  # an answer leaving ends before the next arrives
    most = running = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def outreach_config(server: EmulatorServer, token: str, **extra: t.Any) -> dict[str, t.Any]:
    """Plugin settings pointing at an emulated Outreach account."""
    return {"provider": "outreach", "api_url": f"{server.url}/api/v2", "access_token": token,
            **extra}


@pytest.fixture
def staging_path(tmp_path: pathlib.Path) -> str:
    """A fresh DuckDB staging file."""
    return str(tmp_path / "staging.duckdb")


@pytest.fixture
def activix_source() -> Iterator[EmulatorServer]:
    """An Activix account with 200 messy lead phones on 100 leads (quota out of the way)."""
    app = ActivixApp(records=200, parents=100, seed=5, token=SOURCE_TOKEN, rate_limit=100_000)
    with EmulatorServer(app) as server:
        yield server


@pytest.fixture
def activix_destination() -> Iterator[EmulatorServer]:
    """An Activix account with the same 100 leads and no phones yet."""
    app = ActivixApp(records=0, parents=100, seed=5, token=DESTINATION_TOKEN, rate_limit=100_000)
    with EmulatorServer(app) as server:
        yield server


def activix_config(server: EmulatorServer, token: str, **extra: t.Any) -> dict[str, t.Any]:
    """Plugin settings pointing at an emulated Activix account, pacing off unless asked."""
    return {"provider": "activix", "api_url": f"{server.url}/v2", "access_token": token,
            "max_requests_per_minute": 0, **extra}


@pytest.fixture
def te_source() -> Iterator[EmulatorServer]:
    """A Ticket Evolution account with 200 messy phone numbers on 100 clients."""
    app = TicketEvolutionApp(records=200, parents=100, seed=8, token=SOURCE_TOKEN,
                             secret=SOURCE_SECRET, rate_limit=100_000)
    with EmulatorServer(app) as server:
        yield server


@pytest.fixture
def te_destination() -> Iterator[EmulatorServer]:
    """A Ticket Evolution account with the same 100 clients and no phone numbers yet."""
    app = TicketEvolutionApp(records=0, parents=100, seed=8, token=DESTINATION_TOKEN,
                             secret=DESTINATION_SECRET, rate_limit=100_000)
    with EmulatorServer(app) as server:
        yield server


def te_config(server: EmulatorServer, token: str, secret: str, **extra: t.Any) -> dict[str, t.Any]:
    """Plugin settings pointing at an emulated Ticket Evolution account."""
    return {"provider": "ticketevolution", "api_url": f"{server.url}/v9", "api_token": token,
            "api_secret": secret, **extra}


@pytest.fixture
def od_source() -> Iterator[EmulatorServer]:
    """A One Degree account with 200 phones on 40 organizations and their locations and
    opportunities."""
    app = OneDegreeApp(records=200, parents=40, seed=9, api_key=SOURCE_TOKEN, api_secret=SOURCE_SECRET)
    with EmulatorServer(app) as server:
        yield server


@pytest.fixture
def od_destination() -> Iterator[EmulatorServer]:
    """A One Degree account with the same owners and no phones yet."""
    app = OneDegreeApp(records=0, parents=40, seed=9, api_key=DESTINATION_TOKEN,
                       api_secret=DESTINATION_SECRET)
    with EmulatorServer(app) as server:
        yield server


def od_config(server: EmulatorServer, key: str, secret: str, **extra: t.Any) -> dict[str, t.Any]:
    """Plugin settings pointing at an emulated One Degree account."""
    return {"provider": "onedegree", "api_url": f"{server.url}/v1", "api_key": key,
            "api_secret": secret, **extra}
