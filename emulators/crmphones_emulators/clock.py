"""The emulators' clock: what their rate windows count in, so tests can run them in simulated time.

The emulators never import the client, so this is their own; any object with these methods
will do (a test may hand one fake clock to the client and the emulator alike).
"""

from __future__ import annotations

import threading
import time
import typing as t


class Clock(t.Protocol):
    """Monotonic seconds for windows, epoch seconds for the reset times sent to clients."""

    def now(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real time."""

    def now(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class ManualClock:
    """Simulated time: it moves only when told to (``advance``) or when someone sleeps.

    A sleep moves time at once to the sleeper's wake-up, counted from the time that thread
    last read (it computed its sleep from it): threads asleep together move time to the latest
    of their wake-ups, never to the sum of their sleeps.
    """

    def __init__(self, start: float = 1_000.0, epoch: float = 1_767_225_600.0) -> None:
        self._now = start
        self._offset = epoch - start
        self._lock = threading.Lock()
        self._seen: dict[int, float] = {}

    def now(self) -> float:
        with self._lock:
            self._seen[threading.get_ident()] = self._now
            return self._now

    def time(self) -> float:
        with self._lock:
            return self._now + self._offset

    def sleep(self, seconds: float) -> None:
        with self._lock:
            since = self._seen.pop(threading.get_ident(), self._now)
            self._now = max(self._now, since + max(0.0, seconds))

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


SYSTEM_CLOCK = SystemClock()
