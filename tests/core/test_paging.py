"""follow_next_links: the next page is fetched while the caller works on the current one."""

from __future__ import annotations

import threading
import time
import typing as t

import pytest

from crmphones.errors import FatalRequestError
from crmphones.paging import follow_next_links
from crmphones.settings import dialect_for
from crmphones_emulators import EmulatorServer, Faults
from crmphones_emulators.outreach import OutreachApp
from tests.conftest import SOURCE_TOKEN, outreach_config

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from crmphones.dialects.outreach import Outreach

LATENCY = 0.05
PAGES, PAGE_SIZE = 10, 5


@pytest.fixture
def slow_outreach() -> Iterator[EmulatorServer]:
    """Fifty phone numbers, ten cursor pages of five, 50 ms a request."""
    app = OutreachApp(records=PAGES * PAGE_SIZE, parents=20, seed=2, token=SOURCE_TOKEN)
    with EmulatorServer(app, faults=Faults(latency_ms=LATENCY * 1000)) as server:
        yield server


def _walk(dialect: Outreach, per_item: float) -> tuple[list[str], list[float]]:
    """The ids walked, and when the caller was done with each (the server log's clock)."""
    params = {"page[size]": str(PAGE_SIZE), "sort": "updatedAt", "count": "false"}
    ids, done = [], []
    for resource in follow_next_links(dialect._get_page, "phoneNumbers", params):
        ids.append(str(resource["id"]))
        time.sleep(per_item)  # the caller's own work on each record
        done.append(time.time())
    return ids, done


def test_the_walk_overlaps_the_callers_work_and_keeps_every_item_in_order(
    slow_outreach: EmulatorServer,
) -> None:
    """A caller spending a round trip's time on each page: the request for the next page
    reaches the server while the caller still works on the current one (a plain loop would
    ask only once it is done)."""
    dialect = t.cast("Outreach", dialect_for(outreach_config(slow_outreach, SOURCE_TOKEN)))
    try:
        ids, done = _walk(dialect, per_item=LATENCY / PAGE_SIZE)
    finally:
        dialect.close()
    held = sorted(slow_outreach.app.snapshot()["phoneNumbers"],
                  key=lambda r: (r["attributes"]["updatedAt"], int(r["id"])))
    assert ids == [str(r["id"]) for r in held]
    log = slow_outreach.requests
    assert len(log) == PAGES
    # Page n+1 was asked for before the caller was done with page n's last item.
    ahead = [n for n in range(1, PAGES) if log[n].at < done[n * PAGE_SIZE - 1]]
    assert len(ahead) >= PAGES - 2, f"pages {ahead} of 1..{PAGES - 1} were fetched ahead"


@pytest.mark.parametrize("ahead", [True, False])
def test_a_repeated_next_link_still_stops_the_walk_after_its_page(ahead: bool) -> None:
    """The loop guard holds, with the fetch ahead or without: the items before the repeat,
    then an error."""
    pages = {
        "first": {"data": [1, 2], "links": {"next": "https://api/second"}},
        "https://api/second": {"data": [3], "links": {"next": "https://api/third"}},
        "https://api/third": {"data": [4], "links": {"next": "https://api/second"}},
    }
    asked: list[str] = []

    def get_page(url: str, _params: t.Any) -> dict[str, t.Any]:
        asked.append(url)
        return pages[url]

    got: list[int] = []
    with pytest.raises(FatalRequestError, match="Loop detected"):
        got.extend(follow_next_links(get_page, "first", None, ahead=ahead))
    assert got == [1, 2, 3, 4]
    assert asked == ["first", "https://api/second", "https://api/third"], "no page fetched twice"


def test_a_caller_that_stops_early_leaves_at_most_two_pages_fetched_and_no_thread() -> None:
    """The walk runs ahead of the caller by two pages at most, and ends when the caller does."""
    asked: list[int] = []

    def get_page(url: str, _params: t.Any) -> dict[str, t.Any]:
        n = int(url.rsplit("/", 1)[-1])
        asked.append(n)
        return {"data": [n], "links": {"next": f"https://api/{n + 1}"}}  # never ends

    walk = follow_next_links(get_page, "https://api/1", None)
    assert next(walk) == 1
    time.sleep(0.2)  # time enough to run ahead as far as it may
    assert asked == [1, 2, 3]
    walk.close()
    deadline = time.monotonic() + 2
    while any(th.name == "crmphones-next-page" for th in threading.enumerate()):
        assert time.monotonic() < deadline, "the walking thread outlived its caller"
        time.sleep(0.02)
    assert asked == [1, 2, 3]


def test_the_plain_walk_asks_for_a_page_only_when_the_caller_needs_it() -> None:
    """``ahead=False`` (walks already run several at a time): no thread of its own, and each
    next page is fetched on the caller's thread once the one before is used up."""
    asked: list[tuple[int, str]] = []

    def get_page(url: str, _params: t.Any) -> dict[str, t.Any]:
        n = int(url.rsplit("/", 1)[-1])
        asked.append((n, threading.current_thread().name))
        return {"data": [n], "links": {"next": f"https://api/{n + 1}"}}  # never ends

    walk = follow_next_links(get_page, "https://api/1", None, ahead=False)
    assert next(walk) == 1
    time.sleep(0.1)
    assert asked == [(1, threading.current_thread().name)]
    assert next(walk) == 2
    walk.close()
    assert [n for n, _ in asked] == [1, 2]
    assert {name for _, name in asked} == {threading.current_thread().name}
