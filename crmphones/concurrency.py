"""Ordered fan-out: run one call per item on a few threads, hand results back in input order.

Reads that fetch one child collection per parent (One Degree's opportunities, Ticket
Evolution's phone lists, a per-owner GET in a diff) are latency-bound: the threads overlap
the round trips while the caller still sees exactly the sequence a plain loop would give,
so records, and the state the tap derives from them, do not depend on ``max_concurrency``.
Pacing stays in ``ApiClient``, which is thread-safe and spaces requests itself.
"""

from __future__ import annotations

import collections
import typing as t
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = ["ordered_map"]

T = t.TypeVar("T")
R = t.TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, *,
                window: int | None = None) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in input order, computing up to ``workers`` at once.

    At most ``window`` items (default ``2 * workers``) are taken from ``items`` and not yet
    yielded at any time, so a lazy input (an index being paged) is read only a little ahead
    and finished results wait for a slow earlier one in bounded memory.

    Failures behave as in a sequential loop, only sooner: results before the failing item
    are still yielded, then its exception is raised. As soon as any call fails, no further
    item is taken and the calls queued after it are cancelled; a call already running after
    it cannot be interrupted and is left to finish in the background, unwaited. An exception
    raised by ``items`` itself comes after the results of the items taken before it.

    Args:
        fn: The call, made on a worker thread; it must be thread-safe.
        items: Its inputs, consumed lazily on the caller's thread.
        workers: Calls in flight at once; 1 (or less) means a plain sequential loop.
        window: Items in flight or waiting to be yielded (at least ``workers``).

    Yields:
        Each item's result, in the order of ``items``.
    """
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    limit = max(workers, window or 2 * workers)
    source = iter(items)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crmphones-fanout")
    pending: collections.deque[Future[R]] = collections.deque()
    source_error: BaseException | None = None
    feeding = True
    try:
        while True:
            while feeding and len(pending) < limit:
                try:
                    item = next(source)
                except StopIteration:
                    feeding = False
                except Exception as exc:  # raised after the results of earlier items
                    source_error, feeding = exc, False
                else:
                    pending.append(pool.submit(fn, item))
            if not pending:
                if source_error is not None:
                    raise source_error
                return
            head = pending[0]
            while not head.done():
                if _cut_after_failure(pending):
                    feeding = False
                wait([f for f in pending if not f.done()], return_when=FIRST_COMPLETED)
            if _cut_after_failure(pending):
                feeding = False
            pending.popleft()
            yield head.result()
    finally:
        # Closed early (the caller stopped, or a failure): start nothing more, wait for nothing.
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


def _cut_after_failure(pending: collections.deque[Future[t.Any]]) -> bool:
    """Cancel and drop every call queued after the first failed one; True if one failed.

    The calls before it still run: a sequential loop would have yielded their results.
    """
    for index, future in enumerate(pending):
        if future.done() and not future.cancelled() and future.exception() is not None:
            while len(pending) > index + 1:
                pending.pop().cancel()
            return True
    return False
