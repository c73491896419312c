"""Paginators: tiny loops with a loop guard, one per paging style the four APIs use."""

from __future__ import annotations

import queue
import threading
import typing as t
import urllib.parse

from crmphones.errors import FatalRequestError

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["follow_next_links", "rebase"]

GetPage = t.Callable[[str, t.Any], dict[str, t.Any]]

_END = object()  # the walk reached a page without a next link


def follow_next_links(
    get_page: Callable[[str, t.Any], dict[str, t.Any]],
    path: str,
    params: t.Any,
    *,
    ahead: bool = True,
) -> Iterator[dict[str, t.Any]]:
    """Yield ``data`` items across pages linked by ``links.next`` (JSON:API cursors).

    Expects pages like ``{"data": [...], "links": {"next": "https://...page[after]=X"}}``;
    the last page has no ``next``. The next link already carries every parameter.

    A cursor collection can only be walked one page after another, so a background thread
    walks it and asks for each next page as soon as the previous one arrives, while the
    caller consumes the pages already in (at most two ahead of it). The walk then costs
    about one round trip per page, neither a round trip plus the caller's work, nor the hop
    through the caller's thread to send the next request. Items, their order and errors are
    those of a plain loop; a caller that stops early leaves at most two pages fetched for
    nothing. ``ahead=False`` is that plain loop, for a caller that already runs its walks
    several at a time (mostly of one page each: a thread apiece would only cost).

    Raises:
        FatalRequestError: when a next link repeats (a server bug that would loop forever).
    """
    if not ahead:
        for page in _pages(get_page, path, params):
            yield from page.get("data") or []
        return
    pages: queue.Queue[t.Any] = queue.Queue(maxsize=1)
    stopped = threading.Event()

    def hand_over(item: t.Any) -> bool:
        """Queue an item for the caller; False once the caller has stopped."""
        while not stopped.is_set():
            try:
                pages.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def walk() -> None:
        try:
            for page in _pages(get_page, path, params):
                if not hand_over(page):
                    return
        except BaseException as exc:  # raised again on the caller's thread
            hand_over(exc)
            return
        hand_over(_END)

    threading.Thread(target=walk, name="crmphones-next-page", daemon=True).start()
    try:
        while (item := pages.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield from item.get("data") or []
    finally:
        stopped.set()


def rebase(link: str, base_url: str) -> str:
    """A next-page link on the configured base URL's scheme, host and port; its path and
    query kept.

    Credentials ride on every request, so a link never decides where they go: a server's
    link to ``http://`` (Activix's documented example) or to another host is followed on the
    configured origin, never in clear nor elsewhere.

    >>> rebase("http://api.crm.activix.ca/v2/leads?page=2", "https://api.crm.activix.ca/v2")
    'https://api.crm.activix.ca/v2/leads?page=2'
    >>> rebase("https://evil.example:8443/v2/leads?page=2", "https://api.crm.activix.ca/v2")
    'https://api.crm.activix.ca/v2/leads?page=2'
    """
    parts, base = urllib.parse.urlsplit(link), urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))


def _pages(get_page: GetPage, path: str, params: t.Any) -> Iterator[dict[str, t.Any]]:
    """Each page, asked for once the one before has arrived; a repeated next link ends the
    walk with an error (a server bug that would loop forever)."""
    seen: set[str] = set()
    url, query = path, params
    while True:
        page = get_page(url, query)
        yield page
        next_url = (page.get("links") or {}).get("next")
        if not next_url:
            return
        if next_url in seen:
            msg = "Loop detected in pagination: the API repeated a next link"
            raise FatalRequestError(msg)
        seen.add(next_url)
        url, query = next_url, None
