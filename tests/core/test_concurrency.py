"""ordered_map: input order, a bounded window, failures as a sequential loop would have them."""

from __future__ import annotations

import random
import threading
import time
import typing as t

import pytest

from crmphones.concurrency import ordered_map

if t.TYPE_CHECKING:
    from collections.abc import Iterator


class Probe:
    """Counts what ordered_map takes from its input and how many calls run at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.taken = 0
        self.running = 0
        self.most_running = 0
        self.started: list[int] = []

    def items(self, count: int) -> Iterator[int]:
        for item in range(count):
            with self.lock:
                self.taken += 1
            yield item

    def call(self, item: int, seconds: float = 0.01) -> int:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.started.append(item)
        try:
            time.sleep(seconds)
            return item * item
        finally:
            with self.lock:
                self.running -= 1


def test_results_come_in_input_order_whatever_finishes_first() -> None:
    rng = random.Random(3)
    delays = [rng.uniform(0, 0.02) for _ in range(60)]

    def slow_square(item: int) -> int:
        time.sleep(delays[item])
        return item * item

    assert list(ordered_map(slow_square, range(60), 8)) == [i * i for i in range(60)]


def test_runs_calls_at_once_up_to_workers_and_no_more() -> None:
    probe = Probe()
    results = list(ordered_map(lambda i: probe.call(i, 0.02), probe.items(32), 8))
    assert results == [i * i for i in range(32)]
    assert probe.most_running == 8, "calls overlapped, eight at most"


def test_one_worker_is_a_plain_loop_on_the_callers_thread() -> None:
    probe = Probe()
    threads: set[int] = set()

    def call(item: int) -> int:
        threads.add(threading.get_ident())
        return probe.call(item, 0)

    results = ordered_map(call, probe.items(5), 1)
    assert next(results) == 0
    assert probe.taken == 1, "lazy: one item taken per result"
    assert list(results) == [1, 4, 9, 16]
    assert threads == {threading.get_ident()}


def test_the_window_bounds_what_is_taken_ahead_of_the_caller() -> None:
    probe = Probe()
    results = ordered_map(lambda i: probe.call(i, 0), probe.items(1000), 4, window=6)
    for count in range(1, 50):
        next(results)
        time.sleep(0.002)  # a slow caller: finished calls must not pile up without bound
        assert probe.taken - count <= 6 - 1
    results.close()
    assert probe.taken < 60


def test_default_window_is_twice_the_workers() -> None:
    probe = Probe()
    results = ordered_map(lambda i: probe.call(i, 0), probe.items(1000), 3)
    next(results)
    time.sleep(0.05)
    assert probe.taken == 6
    results.close()


def test_results_before_a_failure_are_yielded_then_it_is_raised() -> None:
    def call(item: int) -> int:
        if item == 5:
            msg = "item 5 failed"
            raise ValueError(msg)
        time.sleep(0.01)
        return item

    got: list[int] = []
    with pytest.raises(ValueError, match="item 5 failed"):
        got.extend(ordered_map(call, range(100), 4))
    assert got == [0, 1, 2, 3, 4]


def test_a_failure_stops_taking_items_and_raises_without_waiting_for_later_calls() -> None:
    """Item 1 fails while item 0 is still running: item 0 is yielded, then the error comes
    at once (not after the slow calls queued behind it), and nothing more is taken or started."""
    probe = Probe()
    release = threading.Event()  # the calls after item 1 run until the test lets them end
    finished: list[int] = []

    def call(item: int) -> int:
        if item == 1:
            msg = "item 1 failed"
            raise RuntimeError(msg)
        if item == 0:
            time.sleep(0.05)  # still running when item 1 fails
        else:
            release.wait(30)
        finished.append(item)
        return probe.call(item, 0)

    got: list[int] = []
    try:
        with pytest.raises(RuntimeError, match="item 1 failed"):
            got.extend(ordered_map(call, probe.items(1000), 4))
        assert finished == [0], "raised while the later calls were still running"
    finally:
        release.set()
    assert got == [0]
    assert probe.taken == 8, "the first window only: no item taken after the failure"
    assert max(probe.started) <= 4, "the calls queued after the failure were cancelled"


def test_an_error_of_the_input_comes_after_the_results_taken_before_it() -> None:
    def items() -> Iterator[int]:
        yield from range(3)
        msg = "the index page failed"
        raise ConnectionError(msg)

    got: list[int] = []
    with pytest.raises(ConnectionError, match="index page failed"):
        got.extend(ordered_map(lambda i: time.sleep(0.02) or i, items(), 8))
    assert got == [0, 1, 2]


def test_stopping_early_starts_nothing_more() -> None:
    probe = Probe()
    results = ordered_map(lambda i: probe.call(i, 0.02), probe.items(1000), 4)
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    results.close()
    taken = probe.taken
    time.sleep(0.1)
    assert probe.taken == taken <= 3 + 8
    assert len(probe.started) <= taken
