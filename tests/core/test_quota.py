"""Hour-long quotas are pauses, not failures (issue 23, item 2; Ticket Evolution's throttle,
item 5), against real emulators over loopback in simulated time: the client and the emulator
share one `FakeClock`, so an hour's window passes as soon as every thread waits for it. One
real-time run (marked `slow`) checks a window of a few seconds against the real clock."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import typing as t

import pytest

from crmphones.auth import TicketEvolutionSigner
from crmphones.clock import FakeClock, SystemClock
from crmphones.errors import TransientError
from crmphones.http import ApiClient, RetryPolicy
from crmphones_emulators import EmulatorServer
from crmphones_emulators.onedegree import OneDegreeApp
from crmphones_emulators.outreach import OutreachApp
from crmphones_emulators.ticketevolution import TicketEvolutionApp

if t.TYPE_CHECKING:
    from crmphones.clock import Clock

TOKEN = "quota-token"
SECRET = "quota-secret"
HOUR = 3600.0


def _outreach_client(server: EmulatorServer, clock: Clock, **kw: t.Any) -> ApiClient:
    return ApiClient(f"{server.url}/api/v2", api_name="Outreach", auth_hint="the token",
                     headers={"Authorization": f"Bearer {TOKEN}"}, clock=clock, **kw)


def _send(client: ApiClient, path: str, requests: int, workers: int, clock: FakeClock | None
          ) -> list[int]:
    """`requests` GETs of `path` over `workers` threads; the statuses they ended with."""
    statuses: list[int] = []
    lock = threading.Lock()
    left = iter(range(requests))

    def work() -> None:
        with clock.participant() if clock else contextlib.nullcontext():
            while True:
                with lock:
                    if next(left, None) is None:
                        return
                status = client.request("GET", path).status_code
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_an_hourly_quota_is_waited_out_by_every_thread_and_counted_once(
        caplog: pytest.LogCaptureFixture) -> None:
    """300 requests an hour, 700 to send on 8 threads: the burst spends the quota, every
    thread pauses for the reset an hour away (the headers hold two limits, `300, 5000`: the
    first wins), then the client paces at 99% of the hour's rate: no 429 after the first
    window, all 700 succeed within 1.05 times the floor the quota sets, and the run reports
    the pauses' wall time, not eight threads' sum."""
    clock = FakeClock()
    app = OutreachApp(records=4, parents=2, token=TOKEN, rate_limit=300, rate_window=HOUR,
                      second_limit=5000, clock=clock)
    caplog.set_level(logging.WARNING, logger="crmphones.http")
    with EmulatorServer(app) as server, _outreach_client(server, clock,
                                                           notice_seconds=600) as client:
        begun = clock.now()
        statuses = _send(client, "prospects/1", 700, 8, clock)
        elapsed = clock.now() - begun
        log = list(server.requests)
    assert statuses == [200] * 700
    floor = 700 / 300 * HOUR
    assert 2 * HOUR <= elapsed <= 1.05 * floor
    assert 0 < sum(1 for r in log if r.status == 429) <= 8  # at most the requests in flight
    assert not [r for r in log if r.status == 429 and r.at - log[0].at > 60]
    assert HOUR - 5 <= client.waited_seconds <= elapsed  # wall time, once
    lines = [r.getMessage() for r in caplog.records if "paused" in r.getMessage()]
    assert lines and "until 2026-01-01 01:00" in lines[0] and "UTC" in lines[0]
    # Told at the start and every notice_seconds (600) while the hour lasts.
    assert len(lines) >= 6


def test_a_429_an_hour_away_spends_no_attempt() -> None:
    """One Degree's quota answers 429 with a Retry-After of up to an hour and no quota
    headers: each thread meets it, pauses for it, and its request still succeeds though the
    hour outlasts any backoff and its attempts (6) are fewer than the throttles met."""
    clock = FakeClock()
    app = OneDegreeApp(records=2, parents=1, api_key=TOKEN, rate_limit=10, rate_window=HOUR,
                       clock=clock)
    with EmulatorServer(app) as server:
        client = ApiClient(f"{server.url}/v1", api_name="One Degree", auth_hint="the key",
                           params={"api_key": TOKEN}, clock=clock,
                           retry=RetryPolicy(max_attempts=2))
        with client:
            statuses = _send(client, "organizations", 45, 4, clock)
        log = list(server.requests)
    assert statuses == [200] * 45
    assert sum(1 for r in log if r.status == 429) >= 4
    assert client.governor.pauses >= 4
    assert 3 * HOUR <= client.waited_seconds  # its pauses, paced in between


def test_max_wait_seconds_gives_up_instead_of_waiting() -> None:
    """With `max_wait_seconds` set under the server's wait, the request gives up at once
    naming the setting; nothing is paused."""
    clock = FakeClock()
    app = OutreachApp(records=2, parents=1, token=TOKEN, rate_limit=1, rate_window=HOUR,
                      clock=clock)
    with EmulatorServer(app) as server, _outreach_client(
            server, clock, retry=RetryPolicy(max_wait=600)) as client:
        client.request("GET", "prospects/1")  # the quota's one request
        with pytest.raises(TransientError, match=r"longer than the `max_wait_seconds` setting"):
            client.request("GET", "prospects/1")
        assert client.waited_seconds == 0
        assert client.governor.pauses == 0


def test_outreach_pacing_follows_the_hourly_limit_its_headers_show() -> None:
    """Paced by default (the dialect's 165 a minute), a client that knows the window is an
    hour learns the limit from X-RateLimit-Limit (3,600 here: one a second) and paces at 99%
    of it: 30 requests take 30 seconds of the clock, with no 429."""
    clock = FakeClock()
    app = OutreachApp(records=2, parents=1, token=TOKEN, rate_limit=3600, rate_window=HOUR,
                      clock=clock)
    with EmulatorServer(app) as server, _outreach_client(
            server, clock, max_requests_per_second=165 / 60, quota_window=HOUR,
            pace_is_default=True) as client:
        client.request("GET", "prospects/1")
        begun = clock.now()
        for _ in range(30):
            client.request("GET", "prospects/1")
        elapsed = clock.now() - begun
    assert 30 / 0.99 - 1.5 <= elapsed <= 30 / 0.99 + 1.5
    assert "429" not in client.calls


def test_ticket_evolution_503_without_retry_after_pauses_until_the_window_passes() -> None:
    """Ticket Evolution's throttle is a 503 with no time named (60 requests a minute here):
    every thread pauses, a second at first and doubling, until the window has passed; no
    request is given up though each meets more throttles than it has attempts."""
    clock = FakeClock()
    app = TicketEvolutionApp(records=4, parents=2, token=TOKEN, secret=SECRET, rate_limit=60,
                             rate_window=60.0, throttle_retry_after=False, clock=clock)
    with EmulatorServer(app) as server:
        client = ApiClient(f"{server.url}/v9", api_name="Ticket Evolution", auth_hint="the token",
                           auth=TicketEvolutionSigner(TOKEN, SECRET), auth_statuses=(401,),
                           throttle_pause=60.0, clock=clock, retry=RetryPolicy(max_attempts=3))
        with client:
            begun = clock.now()
            statuses = _send(client, "clients/1", 200, 8, clock)
            elapsed = clock.now() - begun
        log = list(server.requests)
    assert statuses == [200] * 200
    assert sum(1 for r in log if r.status == 503) > 0
    # Four windows of 60 are the floor for 200 requests; the doubling pauses overshoot each
    # window's end by less than the window.
    assert 180 <= elapsed <= 4 * 120


@pytest.mark.slow
def test_a_quota_window_of_seconds_in_real_time() -> None:
    """The same pause against the real clock: 20 requests per 2-second window, 50 to send on
    8 threads: all succeed, in about the three windows the quota allows."""
    app = OutreachApp(records=2, parents=1, token=TOKEN, rate_limit=20, rate_window=2.0)
    with EmulatorServer(app) as server, _outreach_client(server, SystemClock()) as client:
        begun = time.monotonic()
        statuses = _send(client, "prospects/1", 50, 8, None)
        elapsed = time.monotonic() - begun
    assert statuses == [200] * 50
    assert 3.5 <= elapsed <= 7.0
    assert client.governor.pauses >= 1
