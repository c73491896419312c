"""The rate governor against real emulators over loopback, in simulated time: the client and
the emulator share one `FakeClock`, so a quota of R requests a second is a window of the
clock's seconds and every pause or pacing wait passes at once. More workers than the quota
needs: after the first second no refusal comes and the achieved rate is at least 90% of R;
when the server lowers R mid-run the client follows. One real-time run (marked `slow`)
checks the same against the real clock and a real latency."""

from __future__ import annotations

import threading
import time
import typing as t

import pytest

from crmphones.auth import TicketEvolutionSigner
from crmphones.clock import FakeClock
from crmphones.http import ApiClient, RateGovernor
from crmphones_emulators import EmulatorServer, Faults
from crmphones_emulators.outreach import OutreachApp
from crmphones_emulators.ticketevolution import TicketEvolutionApp

if t.TYPE_CHECKING:
    from crmphones_emulators.server import LoggedRequest

TOKEN = "governor-token"
SECRET = "governor-secret"
WORKERS = 16


def _hammer(client: ApiClient, path: str, seconds: float, clock: FakeClock,
            change: t.Callable[[], None], at: float) -> float:
    """WORKERS threads sending `path` back to back for `seconds` of the clock; `change` runs
    once the clock reaches `at` seconds in. Returns the start (the clock's epoch seconds)."""
    started, begun = clock.time(), clock.now()
    changed = threading.Event()
    lock = threading.Lock()

    def work() -> None:
        with clock.participant():
            while clock.now() < begun + seconds:
                with lock:
                    if not changed.is_set() and clock.now() >= begun + at:
                        change()
                        changed.set()
                client.request("GET", path)

    threads = [threading.Thread(target=work) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return started


def _rate(log: list[LoggedRequest], start: float, end: float) -> float:
    """Requests the server let through per second in [start, end)."""
    return sum(1 for r in log if start <= r.at < end and r.status < 300) / (end - start)


def _resumed(log: list[LoggedRequest], statuses: tuple[int, ...] = (429,), burst: float = 0.01
             ) -> float:
    """When the first pause ended: the first success after the opening burst's refusals
    (one instant in simulated time; in real time the answers in flight trail it a while)."""
    first = min(r.at for r in log if r.status in statuses)
    burst_end = max(r.at for r in log if r.status in statuses and r.at < first + burst)
    return min(r.at for r in log if r.at > burst_end + burst and r.status < 300)


def _throttled(log: list[LoggedRequest], start: float, end: float = float("inf"),
               statuses: tuple[int, ...] = (429,)) -> int:
    return sum(1 for r in log if start <= r.at < end and r.status in statuses)


def test_saturates_the_budget_then_follows_a_lowered_limit() -> None:
    rate, lowered, lower_at, seconds = 40, 20, 6.0, 12.0
    clock = FakeClock()
    app = OutreachApp(records=10, parents=5, token=TOKEN, rate_limit=rate, rate_window=1.0,
                      clock=clock)
    with EmulatorServer(app) as server:
        client = ApiClient(f"{server.url}/api/v2", api_name="Outreach", auth_hint="the token",
                           headers={"Authorization": f"Bearer {TOKEN}"}, clock=clock)
        with client:
            started = _hammer(client, "prospects/1", seconds, clock,
                              lambda: app.configure({"rate_limit": lowered}), lower_at)
        log = list(server.requests)
    t0, change = min(r.at for r in log), started + lower_at
    # Without a governor 16 workers offer far more than 40 a second: the first second is
    # refused in a burst, and every thread pauses for the Retry-After it was given...
    first = min(r.at for r in log if r.status == 429)
    assert first < t0 + 1
    quiet = [r for r in log if first + 0.01 < r.at < _resumed(log)]  # the burst is one instant
    assert quiet == [], f"{len(quiet)} requests arrived during the pause"
    # ...then no 429 before the limit changes, and at least 90% of the budget is used.
    assert _throttled(log, t0 + 1, change) == 0
    achieved = _rate(log, _resumed(log), change)
    # 0.85: in simulated time the threads still take turns as the OS schedules them.
    assert 0.85 * rate <= achieved <= rate, f"{achieved:.1f}/s of {rate}/s"
    # The limit halves: a lesson or two (each a burst of the requests in flight), then quiet.
    assert 0 < _throttled(log, change) <= 2 * WORKERS
    assert _throttled(log, change + 3) == 0
    adapted = _rate(log, change + 2, started + seconds)
    assert 0.9 * lowered <= adapted <= lowered, f"{adapted:.1f}/s of {lowered}/s after the change"
    assert client.governor.rate is not None and client.governor.rate <= lowered
    assert client.calls["429"] == _throttled(log, 0)  # every refusal was retried, none lost
    assert 0 < client.waited_seconds < seconds  # wall time paused, overlapping pauses once


def test_ticket_evolution_throttling_503_with_retry_after_teaches_the_rate_too() -> None:
    """Ticket Evolution answers 503 + Retry-After when throttled (and sends no quota headers):
    the rate is learnt from what the server let through in the trailing second, and learnt
    again when the server lowers it."""
    rate, lowered, lower_at, seconds = 30, 15, 5.0, 11.0
    clock = FakeClock()
    app = TicketEvolutionApp(records=10, parents=5, token=TOKEN, secret=SECRET,
                             rate_limit=rate, rate_window=1.0, clock=clock)
    with EmulatorServer(app) as server:
        client = ApiClient(f"{server.url}/v9", api_name="Ticket Evolution", auth_hint="the token",
                           auth=TicketEvolutionSigner(TOKEN, SECRET), auth_statuses=(401,),
                           clock=clock)
        with client:
            started = _hammer(client, "clients/1", seconds, clock,
                              lambda: app.configure({"rate_limit": lowered}), lower_at)
        log = list(server.requests)
    t0, change = min(r.at for r in log), started + lower_at
    assert 0 < _throttled(log, t0, t0 + 1, (503,))
    assert _throttled(log, t0 + 1, change, (503,)) == 0
    achieved = _rate(log, _resumed(log, (503,)), change)
    # 0.85: in simulated time the threads still take turns as the OS schedules them.
    assert 0.85 * rate <= achieved <= rate, f"{achieved:.1f}/s of {rate}/s"
    # Without a quota header the first lesson after the change still counts the old window's
    # answers, so it may take a second lesson (and pause): settled three seconds after it.
    assert 0 < _throttled(log, change, statuses=(503,)) <= 2 * WORKERS
    assert _throttled(log, change + 3, statuses=(503,)) == 0
    adapted = _rate(log, change + 3, started + seconds)
    assert 0.9 * lowered <= adapted <= lowered, f"{adapted:.1f}/s of {lowered}/s after the change"


@pytest.mark.slow
def test_in_real_time_with_latency_the_budget_is_used_without_refusals() -> None:
    """The one check against the real clock: threads, sockets and a 50 ms latency keep no
    simulated order, and the governor must hold the quota all the same."""
    rate, seconds, latency_ms = 40, 6.0, 50
    app = OutreachApp(records=10, parents=5, token=TOKEN, rate_limit=rate, rate_window=1.0)
    with EmulatorServer(app, faults=Faults(latency_ms=latency_ms)) as server:
        client = ApiClient(f"{server.url}/api/v2", api_name="Outreach", auth_hint="the token",
                           headers={"Authorization": f"Bearer {TOKEN}"})
        stop = time.monotonic() + seconds

        def work() -> None:
            while time.monotonic() < stop:
                client.request("GET", "prospects/1")

        with client:
            threads = [threading.Thread(target=work) for _ in range(WORKERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        log = list(server.requests)
    t0 = min(r.at for r in log)
    assert _throttled(log, t0 + 1.5) == 0
    achieved = _rate(log, _resumed(log, burst=0.5), t0 + seconds - 0.5)
    assert 0.9 * rate <= achieved <= rate, f"{achieved:.1f}/s of {rate}/s"


def test_a_lesson_counts_the_answers_still_in_flight_at_the_first_refusal() -> None:
    """A burst of 32 sends against an allowance of 30: the first refusal arrives before some
    answers of its window, and one success was sent just after it (threads do not keep send
    order). Once the pause is over the lesson is recounted up to the burst's last refusal."""
    clock = FakeClock()
    governor = RateGovernor(None, clock.sleep, clock)
    sent = []
    for _ in range(32):  # ungoverned: granted at once, in order, a little apart
        sent.append(governor.acquire())
        clock.advance(0.001)
    refused, let_through = {29, 31}, [n for n in range(32) if n not in {29, 31}]
    for n in let_through[:27]:
        governor.let_through(sent[n])
    governor.throttle(sent[29], 0.05, learn=True, server_delay=True, limit=None)
    assert governor.rate == 0.95 * 27  # what had answered when the refusal came
    for n in let_through[27:]:  # the answers in flight, one of them sent after sent[29]
        governor.let_through(sent[n])
    governor.throttle(sent[31], 0.05, learn=True, server_delay=True, limit=None)
    assert governor.lessons == 1 and governor.rate == 0.95 * 27  # same burst: no new lesson
    governor.acquire()  # waits out the pause
    assert governor.rate == 0.95 * len(let_through) == 0.95 * (32 - len(refused))
    assert clock.sleeps == [pytest.approx(0.05, abs=1e-3)]
