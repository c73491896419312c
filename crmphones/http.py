"""The one HTTP layer every dialect uses: httpx, bounded jittered retry, throttling, redaction.

What each status means is decided in one table, ``crmphones.answers.verdict``; this client
acts on it:

- 429, 502/503/504, dropped connections and timeouts: retried with jittered exponential
  backoff, honouring ``Retry-After`` (seconds, HTTP date or ISO time) and ``X-RateLimit-Reset``.
- 500: retried for reads; for a non-idempotent write (a POST create) a 500 or a lost response
  raises ``AmbiguousWriteError``, because the server may have acted: the caller checks the
  destination before sending again.
- 401/403 (the dialect's ``auth_statuses``): ``AuthError`` at once, naming the setting to
  check; no retry storm.
- Anything else is returned. ``get_json`` and ``send_json`` hand it to the client's
  ``Answers`` (``crmphones.answers``): a document, a record refused with the API's own words
  (the dialect's ``error_words`` and ``refusal_statuses``), or a stop.

Error texts carry the method and the path only: query strings can hold keys
(One Degree's ``api_key``) and headers hold tokens and signatures.

Rate governor (``RateGovernor``: one per client, shared by all its threads):

- **Ceiling.** ``max_requests_per_second`` spaces requests evenly; nothing goes faster.
- **Signals.** A 429; a 503 with ``Retry-After`` in seconds (Ticket Evolution's throttle; with
  a date it is maintenance: a pause, no lesson); ``X-RateLimit-Remaining: 0`` with a reset
  more than two seconds away, or any reset while no rate is learnt yet (closer resets of a
  paced client are a one-second window plus whole-second rounding: pacing fits them, and
  waiting for the rounded reset would waste the window).
- **Pause.** Every thread waits until the server's ``Retry-After`` (else
  ``X-RateLimit-Reset``, else our backoff) has passed, capped at ``max_delay``; send slots
  reserved before the signal are void, so no thread fires into a closed window.
- **Learn.** The rate becomes ``_HEADROOM`` (0.95) times the least of: the responses let
  through in the trailing second (longer below a few a second), ``X-RateLimit-Limit`` (a
  window is a second or longer), the current rate, and, when the reset is two or more
  seconds away, the responses let through since the last reset waited for over the time
  from then to the coming reset (a long window's rate; too rough at whole-second
  resolution for one-second windows). The trailing second is counted by send time and
  counted again when the pause ends, up to the burst's last refusal: answers still in flight
  at the first refusal are then in. Even spacing at that rate fits a fixed or sliding window
  of the allowance: no further 429.
- **Lower again.** A signal for a request sent after the last lesson teaches again, so the
  rate only goes down within a run (to ``_MIN_RATE`` at least); signals for requests already
  in flight at a lesson only extend the pause (one lesson per burst).
- **Bounded.** A throttled attempt counts against ``max_attempts``: nothing loops on 429s.
  Pauses and pacing add to ``waited_seconds`` per thread (eight paused threads, eight times).
"""

from __future__ import annotations

import collections
import email.utils
import json
import logging
import math
import random
import threading
import typing as t
from dataclasses import dataclass

import httpx
import pendulum
import pendulum.parsing.exceptions

from crmphones import clock as clock_module
from crmphones.answers import (
    DEFAULT_REFUSALS,
    Answers,
    Reply,
    Secrets,
    Verdict,
    no_words,
    redact,
    verdict,
)
from crmphones.clock import SYSTEM_CLOCK
from crmphones.errors import FatalRequestError, TransientError

if t.TYPE_CHECKING:
    from collections.abc import Collection

    from crmphones.answers import ErrorWords
    from crmphones.clock import Clock

__all__ = ["Abortable", "AbortedError", "AmbiguousWriteError", "ApiClient", "RateGovernor", "RetryPolicy",
           "redact"]

logger = logging.getLogger("crmphones.http")
# httpx logs every request URL at INFO, and URLs can hold keys (One Degree's api_key).
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

# Failures that happen before the request reaches the server: always safe to resend.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_HEADROOM = 0.95  # of the rate the server showed: pacing jitter must not fill the window
_MIN_RATE = 0.05  # requests a second: the governor slows down, it never stops for good


class AmbiguousWriteError(TransientError):
    """A write whose outcome is unknown (lost response, 500): check before resending."""


class AbortedError(FatalRequestError):
    """The run is stopping (``ApiClient.abort``): no further request is sent."""


@t.runtime_checkable
class Abortable(t.Protocol):
    """An auth flow that can wait, and stops waiting when the run stops."""

    def abort(self) -> None:
        """Stop waiting: the run is stopping."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try before giving up on one request."""

    #: Attempts in all, the first included.
    max_attempts: int = 6
    #: First backoff in seconds; doubles each attempt, with full jitter.
    base_delay: float = 0.25
    #: Longest single wait, including a server's Retry-After.
    max_delay: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the given (1-based) attempt."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class RateGovernor:
    """When the next request may start, for every thread of one client (see the module doc)."""

    def __init__(self, max_requests_per_second: float | None,
                 sleep: t.Callable[[float], None], clock: Clock = SYSTEM_CLOCK) -> None:
        """Start ungoverned below the ceiling.

        Args:
            max_requests_per_second: The configured ceiling (None: none).
            sleep: How to wait (the client's, which counts and can be aborted).
            clock: What slots and pauses are counted in (the one ``sleep`` waits in).
        """
        self._ceiling = 1.0 / max_requests_per_second if max_requests_per_second else 0.0
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        #: The learnt sustainable rate in requests a second; None until a throttle signal.
        self.rate: float | None = None
        #: Throttle signals seen, and how many of them taught a rate.
        self.signals = 0
        self.lessons = 0
        self._next_slot = 0.0
        self._pause_until = 0.0
        self._generation = 0  # bumped by every pause: slots reserved before it are void
        self._learnt_at = -math.inf  # a signal for a request sent before this teaches nothing
        # Send times of the requests let through lately (appended as answers come back).
        self._recent: collections.deque[float] = collections.deque()
        # The last lesson, to recount when its pause ends: (the latest send time among its
        # burst of refusals, trailing span, least of the other candidates).
        self._recount: tuple[float, float, float] | None = None
        self._span_start: float | None = None  # the last reset waited for, else the first send
        self._span_count = 0  # let through since then

    def acquire(self) -> float:
        """Wait for this thread's send slot; return the moment it was granted (monotonic)."""
        while True:
            with self._lock:
                now = self._clock.now()
                slot = max(now, self._next_slot, self._pause_until)
                interval = max(self._ceiling, 1.0 / self.rate if self.rate else 0.0)
                self._next_slot = slot + interval
                generation = self._generation
            if slot > now:
                self._sleep(slot - now)
            with self._lock:
                # A pause declared while we slept voids the slot: take one after the pause.
                if generation == self._generation:
                    granted = self._clock.now()
                    if self._recount is not None and granted >= self._pause_until:
                        self._settle_lesson(*self._recount)
                    if self._span_start is None:
                        self._span_start = granted
                    return granted

    def let_through(self, sent_at: float) -> None:
        """The server answered the request granted at ``sent_at`` without throttling."""
        with self._lock:
            self._recent.append(sent_at)
            self._trim(sent_at)
            if self._span_start is not None and sent_at >= self._span_start:
                self._span_count += 1

    def throttle(self, sent_at: float, delay: float, *, learn: bool, server_delay: bool,
                 limit: int | None) -> None:
        """A throttle signal: pause every thread for ``delay`` seconds and maybe learn.

        Args:
            sent_at: When the throttled request was granted its slot.
            delay: Seconds to pause (the server's, else our backoff), already capped.
            learn: Whether the signal says something about the rate (not maintenance).
            server_delay: Whether ``delay`` is the server's word (it dates the reset).
            limit: ``X-RateLimit-Limit``, when sent.
        """
        with self._lock:
            now = self._clock.now()
            self.signals += 1
            if learn and sent_at >= self._learnt_at:
                self._learn(now, sent_at, delay if server_delay else None, limit)
            elif learn and self._recount is not None and sent_at > self._recount[0]:
                # A refusal of the lesson's burst sent later: requests let through before
                # it were in the same window, even those sent after the first refusal.
                self._recount = (sent_at, *self._recount[1:])
            self._pause_until = max(self._pause_until, now + delay)
            self._next_slot = self._pause_until
            self._generation += 1
            # The server's window starts afresh when the pause ends.
            self._span_start, self._span_count = self._pause_until, 0

    def _learn(self, now: float, sent_at: float, delay: float | None, limit: int | None
               ) -> None:
        horizon = self._horizon()
        others = [limit] if limit else []
        if delay is not None and delay >= 2 and self._span_start is not None and self._span_count:
            # Whole-second resets: the coming reset is half a second early on average.
            others.append(self._span_count / max(1e-3, now - self._span_start + delay - 0.5))
        if self.rate is not None:
            others.append(self.rate)  # still throttled at this rate: go lower
        self._learnt_at = now
        trailing = self._let_through_before(sent_at, horizon)
        if not trailing and not others:
            return  # nothing let through lately: no lesson, only the pause
        self._recount = (sent_at, horizon, min(others, default=math.inf)) if trailing else None
        candidates = [*others, trailing / horizon] if trailing else others
        self.rate = max(_MIN_RATE, _HEADROOM * min(candidates))
        self.lessons += 1
        logger.info("throttled: pacing at %.2f requests a second from now", self.rate)

    def _settle_lesson(self, sent_at: float, horizon: float, others: float) -> None:
        """Recount the last lesson's trailing span once its pause is over.

        When the first refusal of a burst arrives, requests sent about when it was are still
        in flight, and threads and sockets do not keep send order to the millisecond. By the
        end of the pause their answers are in: the span up to the burst's last refusal holds
        what the server let through in that window. The current rate still bounds the result.
        """
        self._recount = None
        trailing = self._let_through_before(sent_at, horizon)
        settled = max(_MIN_RATE, _HEADROOM * min(others, trailing / horizon))
        if self.rate is not None and settled > self.rate:
            self.rate = settled
            logger.info("throttled: pacing at %.2f requests a second from now (answers "
                        "in flight at the signal counted)", self.rate)

    def _let_through_before(self, sent_at: float, horizon: float) -> int:
        """Requests let through that were sent in the ``horizon`` seconds up to ``sent_at``."""
        return sum(1 for s in self._recent if sent_at - horizon < s <= sent_at)

    def _horizon(self) -> float:
        """The trailing span counted: a second, or long enough to hold a few paced requests."""
        return max(1.0, 4.0 / self.rate) if self.rate else 1.0

    def _trim(self, now: float) -> None:
        # Kept back to a lesson still to be recounted; answers arrive a little out of send
        # order, so a few older times may linger behind a newer one (counts filter by time).
        start, horizon = self._recount[:2] if self._recount else (now, self._horizon())
        cutoff = min(now, start) - horizon
        while self._recent and self._recent[0] <= cutoff:
            self._recent.popleft()


class ApiClient:
    """An httpx client bound to one API account, shared by reads and writes."""

    def __init__(
        self,
        base_url: str,
        *,
        api_name: str,
        auth_hint: str,
        auth: httpx.Auth | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        secrets: t.Iterable[str] = (),
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_requests_per_second: float | None = None,
        auth_statuses: tuple[int, ...] = (401, 403),
        error_words: ErrorWords = no_words,
        refusal_statuses: Collection[int] = DEFAULT_REFUSALS,
        clock: Clock | None = None,
    ) -> None:
        """Build the client.

        Args:
            base_url: The API root, e.g. ``https://api.outreach.io/api/v2``.
            api_name: Name used in messages (``Outreach``).
            auth_hint: What to check on 401/403, e.g. "the `access_token` setting".
            auth: An httpx auth flow (bearer, HMAC signing...).
            headers: Headers sent on every request.
            params: Query parameters sent on every request (One Degree's ``api_key``).
            secrets: Values that must never appear in a message (a `Secrets` is kept as
                given, so values added to it later are hidden too: a refreshed token).
            timeout: Seconds for connect, read and write.
            retry: The retry policy.
            max_requests_per_second: Client-side pacing, for APIs with a documented limit.
            auth_statuses: Statuses that mean a credential problem (Activix also answers
                403 for a duplicate phone, so it only lists 401).
            error_words: The API's own words from a decoded error body, or None.
            refusal_statuses: Statuses by which a write refuses one record (a reject).
            clock: What pacing, pauses and retry backoff wait in (default
                `crmphones.clock.DEFAULT_CLOCK`; a fake one in tests).
        """
        self.clock = clock if clock is not None else clock_module.DEFAULT_CLOCK
        self.auth_statuses = auth_statuses
        self.api_name = api_name
        self.auth_hint = auth_hint
        self.base_url_text = base_url.rstrip("/")  # for messages; holds no secret
        self.retry = retry or RetryPolicy()
        self._secrets = secrets if isinstance(secrets, Secrets) else Secrets(secrets)
        #: Turns the answers this client returns into documents, replies and errors.
        self.answers = Answers(api_name, auth_hint, error_words, frozenset(refusal_statuses),
                               auth_statuses, self._secrets, httpx.URL(base_url).path.rstrip("/"))
        self._stats_lock = threading.Lock()
        self._aborted = threading.Event()
        #: Paces every thread: the configured ceiling, then whatever throttling teaches.
        self.governor = RateGovernor(max_requests_per_second, self._sleep, self.clock)
        self._auth = auth
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            auth=auth,
            headers={"User-Agent": "crmphones/0.1", **(headers or {})},
            params=params,
            timeout=timeout,
        )
        #: Counts of responses by status (and "error" for transport failures).
        self.calls: dict[str, int] = {}
        #: Seconds spent sleeping on rate limits and backoff.
        self.waited_seconds = 0.0

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def abort(self) -> None:
        """The run is stopping: waits end now, and no request is sent from here on.

        An auth flow that can wait (OAuth's one mint a minute) is told too.
        """
        self._aborted.set()
        if isinstance(self._auth, Abortable):
            self._auth.abort()

    def __enter__(self) -> ApiClient:
        """Use as a context manager."""
        return self

    def __exit__(self, *_: object) -> None:
        """Close on exit."""
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: t.Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send one request, retrying what is safe to retry.

        Args:
            method: HTTP method.
            path: Path relative to the base URL, or an absolute URL (a ``links.next``).
            params: Query parameters (a dict or a list of pairs, to repeat keys).
            content: The exact body bytes (serialized once by the dialect, so a
                signature covers what is sent).
            headers: Extra headers for this request.
            idempotent: Whether resending cannot act twice; defaults to True except POST.

        Returns:
            The response, for any status the caller must interpret (2xx, 404, 422...).

        Raises:
            AuthError: on 401 or 403.
            AmbiguousWriteError: when a non-idempotent write may or may not have happened.
            TransientError: when retries are exhausted.
        """
        if idempotent is None:
            idempotent = method.upper() != "POST"
        where = f"{method.upper()} /{path.split('?')[0].lstrip('/')}"
        if path.startswith("http"):
            where = f"{method.upper()} {httpx.URL(path).path}"
        for attempt in range(1, self.retry.max_attempts + 1):
            if self._aborted.is_set():
                msg = f"{self.api_name} {where}: not sent, the run is stopping"
                raise AbortedError(msg)
            sent_at = self._pace()
            throttled = False
            try:
                response = self._client.request(
                    method, path.lstrip("/") if not path.startswith("http") else path,
                    params=params, content=content, headers=headers,
                )
            except httpx.TransportError as exc:
                self._count("error")
                if not idempotent and not isinstance(exc, _NOT_SENT):
                    msg = f"{self.api_name} {where}: response lost ({type(exc).__name__})"
                    raise AmbiguousWriteError(msg) from None
                failure = f"{type(exc).__name__}"
                delay = self.retry.backoff(attempt)
            else:
                self._count(str(response.status_code))
                status = response.status_code
                judged = verdict(status, auth_statuses=self.auth_statuses, idempotent=idempotent)
                if judged is Verdict.CREDENTIAL:
                    raise self.answers.credential_error(status, where)
                if judged is Verdict.AMBIGUOUS:
                    msg = f"{self.api_name} {where}: 500 on a write, outcome unknown"
                    raise AmbiguousWriteError(msg)
                if judged is not Verdict.RETRY:
                    self.governor.let_through(sent_at)
                    self._respect_quota(response, sent_at)
                    return response
                failure = f"HTTP {status}"
                server_delay = self._server_delay(response)
                delay = self.retry.backoff(attempt) if server_delay is None else server_delay
                delay = min(delay, self.retry.max_delay)
                kind = self._throttle_kind(response)
                if kind:  # every thread pauses, not only this one
                    throttled = True
                    self.governor.throttle(sent_at, delay, learn=kind == "learn",
                                           server_delay=server_delay is not None,
                                           limit=_int_header(response, "X-RateLimit-Limit"))
            if attempt == self.retry.max_attempts:
                break
            delay = min(delay, self.retry.max_delay)
            logger.warning(
                "%s %s: %s, retry %d/%d in %.2fs", self.api_name, where, failure,
                attempt, self.retry.max_attempts - 1, delay,
            )
            if not throttled:  # a throttle's pause is waited out in the next _pace
                self._sleep(delay)
        msg = f"{self.api_name} {where}: gave up after {self.retry.max_attempts} attempts ({failure})"
        if failure in ("ConnectError", "ConnectTimeout"):
            msg += f": nothing answers at {self.base_url_text}; check the `api_url` setting"
        raise TransientError(redact(msg, self._secrets))

    def get_json(self, path: str, params: t.Any = None, *, absent_ok: bool = False) -> t.Any:
        """GET a JSON document; None for a 404 when ``absent_ok`` (an owner that is gone).

        Raises:
            AuthError, TransientError: as ``request``.
            FatalRequestError: on any other error status, or a body that is not JSON.
        """
        return self.answers.document(self.request("GET", path, params=params),
                                     absent_ok=absent_ok)

    def send_json(self, method: str, path: str, body: t.Any, *,
                  media_type: str = "application/json") -> Reply:
        """Send a JSON body; the answer is done (with its body) or the record is refused.

        The body is serialized once, compactly: a signing auth covers exactly these bytes.

        Raises:
            AuthError, AmbiguousWriteError, TransientError: as ``request``.
            FatalRequestError: on a status that is neither done nor a refusal of the record.
        """
        content = json.dumps(body, separators=(",", ":")).encode()
        response = self.request(method, path, content=content,
                                headers={"Content-Type": media_type})
        return self.answers.reply(response)

    def _count(self, key: str) -> None:
        with self._stats_lock:  # requests run on several threads
            self.calls[key] = self.calls.get(key, 0) + 1

    def _sleep(self, seconds: float) -> None:
        with self._stats_lock:
            self.waited_seconds += seconds
        if self.clock.sleep(seconds, self._aborted):
            msg = f"{self.api_name}: stopped waiting, the run is stopping"
            raise AbortedError(msg)

    def _pace(self) -> float:
        """Wait for this request's slot (ceiling, learnt rate, pauses); return its time."""
        return self.governor.acquire()

    def _respect_quota(self, response: httpx.Response, sent_at: float) -> None:
        """When the quota is spent, pause for its reset instead of earning a 429."""
        remaining = response.headers.get("X-RateLimit-Remaining")
        reset = response.headers.get("X-RateLimit-Reset")
        if remaining != "0" or not reset or not reset.isdigit():
            return
        wait = int(reset) - self.clock.time()
        if not 0 < wait <= self.retry.max_delay:
            return
        if self.governor.rate is not None and wait <= 2.0:
            return  # a one-second window (whole-second resets add up to one): pacing fits it
        logger.info("%s quota spent; waiting %.1fs for its reset", self.api_name, wait)
        self.governor.throttle(sent_at, wait, learn=True, server_delay=True,
                               limit=_int_header(response, "X-RateLimit-Limit"))

    @staticmethod
    def _throttle_kind(response: httpx.Response) -> str | None:
        """``learn`` for a rate refusal, ``pause`` for maintenance, None for other failures."""
        if response.status_code == 429:
            return "learn"
        retry_after = response.headers.get("Retry-After", "").strip()
        if response.status_code != 503 or not retry_after:
            return None
        try:
            float(retry_after)
        except ValueError:
            return "pause"  # a date: scheduled maintenance, nothing to learn about the rate
        return "learn"

    def _server_delay(self, response: httpx.Response) -> float | None:
        """Seconds the server asked us to wait, from Retry-After or X-RateLimit-Reset."""
        value = response.headers.get("Retry-After")
        if value:
            value = value.strip()
            try:
                return max(0.0, float(value))
            except ValueError:
                pass
            try:  # an HTTP date, or an ISO time (Outreach maintenance)
                when = email.utils.parsedate_to_datetime(value).timestamp()
            except (TypeError, ValueError):
                try:
                    when = pendulum.parse(value).timestamp()  # type: ignore[union-attr]
                except (ValueError, TypeError, pendulum.parsing.exceptions.ParserError):
                    return None  # unreadable: fall back to our own backoff
            return max(0.0, when - self.clock.time())
        reset = response.headers.get("X-RateLimit-Reset")
        if response.status_code == 429 and reset and reset.isdigit():
            return max(0.0, int(reset) - self.clock.time())
        return None


def _int_header(response: httpx.Response, name: str) -> int | None:
    """A positive integer header, or None."""
    value = response.headers.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None
