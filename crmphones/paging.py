"""Paginators: tiny loops with a loop guard, one per paging style the four APIs use."""

from __future__ import annotations

import typing as t
from concurrent.futures import ThreadPoolExecutor

from crmphones.errors import FatalRequestError

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["follow_next_links"]

GetPage = t.Callable[[str, t.Any], dict[str, t.Any]]


def follow_next_links(
    get_page: Callable[[str, t.Any], dict[str, t.Any]],
    path: str,
    params: t.Any,
) -> Iterator[dict[str, t.Any]]:
    """Yield ``data`` items across pages linked by ``links.next`` (JSON:API cursors).

    Expects pages like ``{"data": [...], "links": {"next": "https://...page[after]=X"}}``;
    the last page has no ``next``. The next link already carries every parameter.

    A cursor collection can only be walked one page after another, so the next page is
    fetched (on one background thread) while the caller consumes the current one: the walk
    then costs about one round trip per page, not a round trip plus the caller's work.
    Items, their order and errors are those of a plain loop; a caller that stops early
    leaves at most that one page fetched for nothing.

    Raises:
        FatalRequestError: when a next link repeats (a server bug that would loop forever).
    """
    seen: set[str] = set()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmphones-next-page")
    try:
        upcoming = pool.submit(get_page, path, params)
        while True:
            page = upcoming.result()
            next_url = (page.get("links") or {}).get("next")
            repeated = bool(next_url) and next_url in seen
            if next_url and not repeated:
                seen.add(next_url)
                upcoming = pool.submit(get_page, next_url, None)
            yield from page.get("data") or []
            if not next_url:
                return
            if repeated:
                msg = "Loop detected in pagination: the API repeated a next link"
                raise FatalRequestError(msg)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
