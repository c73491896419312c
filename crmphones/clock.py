"""The client's clock: what the rate governor and the retry waits count in.

Injected (``ApiClient(clock=...)``, else `DEFAULT_CLOCK`) so tests run throttling windows and
backoff in simulated time: a `FakeClock` sleep moves time on at once instead of waiting.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Iterator


class Clock(t.Protocol):
    """Monotonic seconds for pacing, epoch seconds for servers' reset times, and waiting."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (to read a server's reset time against)."""
        ...

    def sleep(self, seconds: float, interrupt: threading.Event | None = None) -> bool:
        """Wait ``seconds``; return True when ``interrupt`` was set (the wait ends early)."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def sleep(self, seconds: float, interrupt: threading.Event | None = None) -> bool:
        """Wait, or until ``interrupt`` is set."""
        if interrupt is not None:
            return interrupt.wait(max(0.0, seconds))
        time.sleep(max(0.0, seconds))
        return False


_TICK = 1e-6


class FakeClock:
    """Simulated time for tests: it moves only when sleepers let it (or ``advance``).

    A thread that is no `participant` moves time at once to its wake-up, counted from the
    time it last read (it computed its sleep from it). Participants (threads that send
    requests together) are simulated faithfully: time stands still while any of them works,
    and when all of them sleep it moves to the earliest wake-up and wakes that one, so each
    request is sent at the very time its sleep ended, as it would be in real time. The same
    object can drive an emulator, whose windows then pass as the client waits.

    Each reading moves time on by a microsecond, as a real monotonic clock moves between two
    readings: what happened one after the other never shares a time (the governor tells a
    request sent before a lesson from one sent after it by their times).

    >>> clock = FakeClock()
    >>> start = clock.now()
    >>> clock.sleep(60.0)
    False
    >>> round(clock.now() - start, 3)
    60.0
    """

    def __init__(self, start: float = 1_000.0, epoch: float = 1_767_225_600.0) -> None:
        """Start at monotonic ``start``, which is ``epoch`` in wall time."""
        self._now = start
        self._offset = epoch - start
        self._cond = threading.Condition()
        self._seen: dict[int, float] = {}
        self._members: set[int] = set()
        self._asleep: list[tuple[float, int]] = []  # (wake-up, ticket) heap of participants
        self._tickets = itertools.count()
        #: Every sleep asked for, in order (what a test can assert on instead of wall time).
        self.sleeps: list[float] = []

    def now(self) -> float:
        """Simulated monotonic seconds."""
        with self._cond:
            self._now += _TICK
            self._seen[threading.get_ident()] = self._now
            return self._now

    def time(self) -> float:
        """Simulated epoch seconds."""
        with self._cond:
            return self._now + self._offset

    def sleep(self, seconds: float, interrupt: threading.Event | None = None) -> bool:
        """Move time to this thread's wake-up (for a participant: once it is the earliest
        and every other participant sleeps too)."""
        thread = threading.get_ident()
        with self._cond:
            seconds = max(0.0, seconds)
            self.sleeps.append(seconds)
            wake = self._seen.pop(thread, self._now) + seconds
            if thread not in self._members or wake <= self._now:
                self._now = max(self._now, wake)
            else:
                entry = (wake, next(self._tickets))
                heapq.heappush(self._asleep, entry)
                self._move_when_idle()
                while entry in self._asleep:
                    self._cond.wait()
        return interrupt is not None and interrupt.is_set()

    @contextlib.contextmanager
    def participant(self) -> Iterator[None]:
        """Within this block the calling thread is one of those time waits for."""
        thread = threading.get_ident()
        with self._cond:
            self._members.add(thread)
        try:
            yield
        finally:
            with self._cond:
                self._members.discard(thread)
                self._move_when_idle()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        with self._cond:
            self._now += seconds

    def _move_when_idle(self) -> None:
        if self._asleep and len(self._asleep) >= len(self._members):
            wake, _ = heapq.heappop(self._asleep)
            self._now = max(self._now, wake)
            self._cond.notify_all()


SYSTEM_CLOCK = SystemClock()
#: The clock of every `ApiClient` built without one. Tests that run a plugin in-process (its
#: clients built deep inside a dialect) swap it for a `FakeClock` with ``monkeypatch``.
DEFAULT_CLOCK: Clock = SYSTEM_CLOCK
