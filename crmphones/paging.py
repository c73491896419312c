"""Paginators: tiny loops with a loop guard, one per paging style the four APIs use."""

from __future__ import annotations

import queue
import threading
import typing as t

from crmphones.errors import FatalRequestError

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["follow_next_links"]

GetPage = t.Callable[[str, t.Any], dict[str, t.Any]]

_END = object()  # the walk reached a page without a next link


def follow_next_links(
    get_page: Callable[[str, t.Any], dict[str, t.Any]],
    path: str,
    params: t.Any,
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
    nothing.

    Raises:
        FatalRequestError: when a next link repeats (a server bug that would loop forever).
    """
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
        seen: set[str] = set()
        url, query = path, params
        try:
            while True:
                page = get_page(url, query)
                next_url = (page.get("links") or {}).get("next")
                if not hand_over(page) or not next_url:
                    break
                if next_url in seen:
                    msg = "Loop detected in pagination: the API repeated a next link"
                    raise FatalRequestError(msg)
                seen.add(next_url)
                url, query = next_url, None
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
