"""Paginators: tiny loops with a loop guard, one per paging style the four APIs use."""

from __future__ import annotations

import typing as t

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

    Raises:
        FatalRequestError: when a next link repeats (a server bug that would loop forever).
    """
    seen: set[str] = set()
    url, query = path, params
    while True:
        page = get_page(url, query)
        yield from page.get("data") or []
        next_url = (page.get("links") or {}).get("next")
        if not next_url:
            return
        if next_url in seen:
            msg = "Loop detected in pagination: the API repeated a next link"
            raise FatalRequestError(msg)
        seen.add(next_url)
        url, query = next_url, None
