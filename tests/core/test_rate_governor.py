"""The rate governor against real emulators over loopback: a quota of R requests a second,
latency L, more workers than R x L needs. After the first second no 429 comes and the
achieved rate is at least 90% of R; when the server lowers R mid-run the client follows."""

from __future__ import annotations

import threading
import time
import typing as t

from crmphones.dialects import get_dialect
from crmphones.http import ApiClient, RateGovernor
from crmphones_emulators import EmulatorServer, Faults
from crmphones_emulators.outreach import OutreachApp
from crmphones_emulators.ticketevolution import TicketEvolutionApp

if t.TYPE_CHECKING:
    from crmphones_emulators.server import LoggedRequest

TOKEN = "governor-token"
SECRET = "governor-secret"
WORKERS = 16
LATENCY_MS = 50


def _hammer(client: ApiClient, path: str, seconds: float,
            midway: t.Callable[[], None] | None = None, at: float = 0.0) -> None:
    """WORKERS threads sending `path` back to back for `seconds` (`midway` runs at `at`)."""
    stop = time.monotonic() + seconds

    def work() -> None:
        while time.monotonic() < stop:
            client.request("GET", path)

    threads = [threading.Thread(target=work) for _ in range(WORKERS)]
    if midway is not None:
        threads.append(threading.Thread(target=lambda: (time.sleep(at), midway())))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _rate(log: list[LoggedRequest], start: float, end: float) -> float:
    """Requests the server let through per second in [start, end)."""
    return sum(1 for r in log if start <= r.at < end and r.status < 300) / (end - start)


def _resumed(log: list[LoggedRequest], statuses: tuple[int, ...] = (429,)) -> float:
    """When the first pause ended: the first success after the opening burst's refusals
    (Retry-After is in whole seconds, so the pause overshoots the window a little)."""
    first = min(r.at for r in log if r.status in statuses)
    burst_end = max(r.at for r in log if r.status in statuses and r.at < first + 0.5)
    return min(r.at for r in log if r.at > burst_end + 0.5 and r.status < 300)


def _throttled(log: list[LoggedRequest], start: float, end: float = float("inf"),
               statuses: tuple[int, ...] = (429,)) -> int:
    return sum(1 for r in log if start <= r.at < end and r.status in statuses)


def test_saturates_the_budget_then_follows_a_lowered_limit() -> None:
    rate, lowered, lower_at, seconds = 40, 20, 6.0, 12.0
    app = OutreachApp(records=10, parents=5, token=TOKEN, rate_limit=rate, rate_window=1.0)
    with EmulatorServer(app, faults=Faults(latency_ms=LATENCY_MS)) as server:
        client = ApiClient(f"{server.url}/api/v2", api_name="Outreach", auth_hint="the token",
                           headers={"Authorization": f"Bearer {TOKEN}"})
        started = time.time()
        _hammer(client, "prospects/1", seconds,
                midway=lambda: app.configure({"rate_limit": lowered}), at=lower_at)
        log = list(server.requests)
    t0 = min(r.at for r in log)
    change = started + lower_at
    # Without a governor 16 workers at 50 ms offer 320 a second: the first second is refused
    # in a burst, and every thread pauses for the Retry-After it was given...
    first = min(r.at for r in log if r.status == 429)
    assert first < t0 + 1
    quiet = [r for r in log if first + 0.25 <= r.at < first + 0.95]
    assert quiet == [], f"{len(quiet)} requests arrived during the pause"
    # ...then no 429 before the limit changes, and at least 90% of the budget is used.
    assert _throttled(log, t0 + 1, change) == 0
    achieved = _rate(log, _resumed(log), change)
    assert achieved >= 0.9 * rate, f"{achieved:.1f}/s of {rate}/s"
    assert achieved <= rate
    # The limit halves: a lesson or two (each a burst of the requests in flight), then quiet.
    assert 0 < _throttled(log, change) <= 2 * WORKERS
    assert _throttled(log, change + 3) == 0
    adapted = _rate(log, change + 2, started + seconds)
    assert adapted >= 0.9 * lowered, f"{adapted:.1f}/s of {lowered}/s after the change"
    assert client.governor.rate is not None and client.governor.rate <= lowered
    assert client.calls["429"] == _throttled(log, 0)  # every refusal was retried, none lost
    assert client.waited_seconds > seconds  # pauses and pacing are counted (per thread)
    print(f"R={rate}/s: {achieved:.1f}/s; lowered to {lowered}/s: {adapted:.1f}/s, "
          f"{_throttled(log, change)} refusals after the change")


def test_ticket_evolution_throttling_503_with_retry_after_teaches_the_rate_too() -> None:
    """Ticket Evolution answers 503 + Retry-After when throttled (and sends no quota headers):
    the rate is learnt from what the server let through in the trailing second, and learnt
    again when the server lowers it."""
    rate, lowered, lower_at, seconds = 30, 15, 5.0, 11.0
    app = TicketEvolutionApp(records=10, parents=5, token=TOKEN, secret=SECRET,
                             rate_limit=rate, rate_window=1.0)
    with EmulatorServer(app, faults=Faults(latency_ms=LATENCY_MS)) as server:
        dialect = get_dialect("ticketevolution")({
            "provider": "ticketevolution", "api_url": f"{server.url}/v9", "api_token": TOKEN,
            "api_secret": SECRET, "max_requests_per_minute": 0})
        started = time.time()
        try:
            _hammer(dialect.client, "clients/1", seconds,
                    midway=lambda: app.configure({"rate_limit": lowered}), at=lower_at)
        finally:
            dialect.close()
        log = list(server.requests)
    t0, change = min(r.at for r in log), started + lower_at
    assert 0 < _throttled(log, t0, t0 + 1, (503,))
    assert _throttled(log, t0 + 1, change, (503,)) == 0
    achieved = _rate(log, _resumed(log, (503,)), change)
    assert 0.9 * rate <= achieved <= rate, f"{achieved:.1f}/s of {rate}/s"
    # Without a quota header the first lesson after the change still counts the old window's
    # answers, so it takes a second lesson (and pause): settled three seconds after the change.
    assert 0 < _throttled(log, change, statuses=(503,)) <= 2 * WORKERS
    assert _throttled(log, change + 3, statuses=(503,)) == 0
    adapted = _rate(log, change + 3, started + seconds)
    assert 0.9 * lowered <= adapted <= lowered, f"{adapted:.1f}/s of {lowered}/s after the change"


def test_a_lesson_counts_the_answers_still_in_flight_at_the_first_refusal() -> None:
    """A burst of 32 sends against an allowance of 30: the first refusal arrives before some
    answers of its window, and one success was sent just after it (threads do not keep send
    order). Once the pause is over the lesson is recounted up to the burst's last refusal."""
    governor = RateGovernor(None, time.sleep)
    sent = [governor.acquire() for _ in range(32)]  # ungoverned: granted at once, in order
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
