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
  ``X-RateLimit-Reset``, else our backoff, else the dialect's ``throttle_pause``: Ticket
  Evolution's 503 names no time: a second, doubling while the 503s go on) has passed,
  however far away: an hourly quota is a pause of
  up to an hour, not a failure. ``RetryPolicy.max_wait`` (the ``max_wait_seconds`` setting)
  makes a request give up instead when the server asks for longer. Send slots reserved
  before the signal are void, so no thread fires into a closed window. A line says what the
  run waits for and until when (UTC) as the pause starts, and again every
  ``notice_seconds`` while it lasts.
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
- **Bounded.** A throttle whose wait the server named spends none of the request's
  ``max_attempts``: the wait is the server's, not a failure. A request still gives up after
  ``_MAX_THROTTLES`` of them in a row. A throttle that names no time spends none while its
  doubling pause is still growing to ``throttle_pause`` (Ticket Evolution's window); past
  that the same 503 is retried as any failure (an outage must end), and a throttle whose
  wait our backoff guessed counts as an attempt: nothing loops on 429s.
- **Counted once.** ``paused_seconds`` (and ``ApiClient.waited_seconds``) is the wall time
  the run spent paused, the union of the pauses: eight threads waiting out one pause wait
  it once.
- **Several limits.** A rate header with several comma-separated values (Outreach's
  ``X-RateLimit-Remaining: 9999, 19988``) is read as its most restrictive one.
"""

from __future__ import annotations

import collections
import datetime
import email.utils
import functools
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
    never,
    no_words,
    redact,
    verdict,
)
from crmphones.clock import SYSTEM_CLOCK
from crmphones.errors import FatalRequestError, TransientError
from crmphones.paging import rebase

if t.TYPE_CHECKING:
    import ssl
    from collections.abc import Collection

    from crmphones.answers import CredentialCheck, ErrorWords
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
#: Of a documented long window's limit (an hour's): even spacing at 99% of it never fills a
#: fixed or sliding hour, and the quota's own pause covers what other apps spend.
_QUOTA_SHARE = 0.99
_MIN_RATE = 0.05  # requests a second: the governor slows down, it never stops for good
#: Throttles in a row a request accepts before it gives up: a server answering nothing but
#: "wait" is down, not busy (an hourly quota costs a request one or two).
_MAX_THROTTLES = 30
_LONG_WINDOW = 60.0  # seconds to a reset from which the window is a quota's, not a burst's
_NOTICED_PAUSE = 2.0  # seconds: a shorter pause is pacing's business, not worth a line


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's TLS context, made once (httpx's default: its CA bundle, or SSL_CERT_FILE
    and SSL_CERT_DIR): loading the certificate store is most of what making a client costs,
    and one context is safe to share between clients and threads."""
    return httpx.create_ssl_context()


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
    #: Longest backoff of our own (a server's Retry-After is not capped by it).
    max_delay: float = 60.0
    #: Longest pause a server may ask for (``max_wait_seconds``); longer, the request gives
    #: up. None: wait as long as the server says.
    max_wait: float | None = None

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the given (1-based) attempt."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class RateGovernor:
    """When the next request may start, for every thread of one client (see the module doc)."""

    def __init__(self, max_requests_per_second: float | None,
                 sleep: t.Callable[[float], None], clock: Clock = SYSTEM_CLOCK, *,
                 api_name: str = "the API", notice_seconds: float = 60.0) -> None:
        """Start ungoverned below the ceiling.

        Args:
            max_requests_per_second: The configured ceiling (None: none).
            sleep: How to wait (the client's, which can be aborted).
            clock: What slots and pauses are counted in (the one ``sleep`` waits in).
            api_name: Name used in the pause lines.
            notice_seconds: Least seconds between two lines about one pause.
        """
        self._ceiling = 1.0 / max_requests_per_second if max_requests_per_second else 0.0
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self.api_name = api_name
        self.notice_seconds = notice_seconds
        #: Wall time the run spent paused (the union of the pauses), and pauses begun.
        self.paused_seconds = 0.0
        self.pauses = 0
        self._why = ""  # what the current pause waits for, for its lines
        self._noticed = -math.inf  # when a line last told of the current pause
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
                self._wait(now, slot)
            with self._lock:
                # A pause declared while we slept voids the slot: take one after the pause.
                if generation == self._generation:
                    granted = self._clock.now()
                    if self._recount is not None and granted >= self._pause_until:
                        self._settle_lesson(*self._recount)
                    if self._span_start is None:
                        self._span_start = granted
                    return granted

    def set_ceiling(self, max_requests_per_second: float) -> None:
        """Pace at this rate from now on (a limit read in the server's headers)."""
        with self._lock:
            self._ceiling = 1.0 / max_requests_per_second

    def _wait(self, now: float, until: float) -> None:
        """Sleep until ``until``; while it is a pause, tell what the run waits for, at the
        pause's start and every ``notice_seconds`` (one thread tells for all)."""
        while now < until:
            step = until - now
            with self._lock:
                pausing = self._pause_until > now
                if (pausing and self._pause_until - now >= _NOTICED_PAUSE
                        and now - self._noticed >= self.notice_seconds):
                    self._noticed = now
                    self._notice(now)
            if pausing:
                step = min(step, self.notice_seconds)
            self._sleep(step)
            now = self._clock.now()

    def _notice(self, now: float) -> None:
        left = self._pause_until - now
        resume = datetime.datetime.fromtimestamp(self._clock.time() + left, datetime.timezone.utc)
        logger.warning("%s: paused, waiting for %s until %s UTC (%s left); every request "
                       "waits, none is given up", self.api_name, self._why,
                       resume.strftime("%Y-%m-%d %H:%M:%S"), _duration(left))

    def let_through(self, sent_at: float) -> None:
        """The server answered the request granted at ``sent_at`` without throttling."""
        with self._lock:
            self._recent.append(sent_at)
            self._trim(sent_at)
            if self._span_start is not None and sent_at >= self._span_start:
                self._span_count += 1

    def throttle(self, sent_at: float, delay: float, *, learn: bool, server_delay: bool,
                 limit: int | None, why: str = "its rate limit") -> None:
        """A throttle signal: pause every thread for ``delay`` seconds and maybe learn.

        Args:
            sent_at: When the throttled request was granted its slot.
            delay: Seconds to pause (the server's, else our backoff).
            learn: Whether the signal says something about the rate (not maintenance).
            server_delay: Whether ``delay`` is the server's word (it dates the reset).
            limit: ``X-RateLimit-Limit``, when sent.
            why: What the pause waits for, for its lines.
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
            until = now + delay
            if until > self._pause_until:
                if self._pause_until <= now:  # a new pause, not a longer one
                    self.pauses += 1
                    self._noticed = -math.inf
                self.paused_seconds += until - max(self._pause_until, now)
                self._why = why
            self._pause_until = max(self._pause_until, until)
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
        # A long window (an hour's quota) is not filled by pacing jitter: 99% of it.
        headroom = _QUOTA_SHARE if delay is not None and delay >= _LONG_WINDOW else _HEADROOM
        self.rate = max(_MIN_RATE, headroom * min(candidates))
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
        refuses_credential: CredentialCheck = never,
        throttle_pause: float | None = None,
        quota_window: float | None = None,
        pace_is_default: bool = False,
        notice_seconds: float = 60.0,
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
            refuses_credential: Whether a refusal's status and body refuse the credential
                rather than the record (Outreach's 403 ``unauthorizedOauthScope``).
            throttle_pause: When a 503 without ``Retry-After`` is the API's throttle (Ticket
                Evolution), the longest pause, which lets its rate window pass (pauses start
                at a second and double while the throttles go on); None: a 503 without
                ``Retry-After`` is an outage, retried with backoff.
            quota_window: The documented length of the window ``X-RateLimit-Limit`` counts
                (Outreach: an hour): a limit read there paces the client under it. None: not
                known, the limit only teaches on a throttle.
            pace_is_default: Whether ``max_requests_per_second`` is the dialect's default (a
                limit read in the headers then replaces it) rather than the user's setting.
            notice_seconds: Least seconds between two lines about one pause.
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
                               auth_statuses, self._secrets, httpx.URL(base_url).path.rstrip("/"),
                               refuses_credential)
        self.throttle_pause = throttle_pause
        # A request's throttles that name no time are free while their doubling pause can
        # still be growing to the window; past that the same 503 is as likely an outage of
        # this request (others get through meanwhile), so each spends an attempt.
        self._free_unnamed = math.ceil(math.log2(max(throttle_pause or 1.0, 1.0))) + 1
        self.quota_window = quota_window
        self.pace_is_default = pace_is_default
        self._unnamed_throttles = 0  # 503 throttles in a row without a request let through
        self._doubled_at = -math.inf  # when that streak last grew
        self._paced_by_limit: int | None = None  # the X-RateLimit-Limit pacing follows
        self._stats_lock = threading.Lock()
        self._aborted = threading.Event()
        #: Paces every thread: the configured ceiling, then whatever throttling teaches.
        self.governor = RateGovernor(max_requests_per_second, self._sleep, self.clock,
                                     api_name=api_name, notice_seconds=notice_seconds)
        self._auth = auth
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            auth=auth,
            headers={"User-Agent": "crmphones/0.1", **(headers or {})},
            params=params,
            timeout=timeout,
            verify=tls_context(),
        )
        #: Counts of responses by status (and "error" for transport failures).
        self.calls: dict[str, int] = {}

    @property
    def waited_seconds(self) -> float:
        """Wall time the run spent paused on rate limits (overlapping pauses count once)."""
        return self.governor.paused_seconds

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
        attempt = throttles = unnamed = 0
        while attempt < self.retry.max_attempts:
            attempt += 1
            if self._aborted.is_set():
                msg = f"{self.api_name} {where}: not sent, the run is stopping"
                raise AbortedError(msg)
            sent_at = self._pace()
            throttled = False
            try:
                response = self._client.request(
                    method, path.lstrip("/") if not path.startswith("http") else self._rebase(path),
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
                    self._unnamed_throttles = 0
                    self.governor.let_through(sent_at)
                    self._respect_quota(response, sent_at)
                    return response
                failure = f"HTTP {status}"
                server_delay = self._server_delay(response)
                kind = self._throttle_kind(response)
                window = None
                if kind and server_delay is None and status == 503 and \
                        unnamed < self._free_unnamed:
                    unnamed += 1
                    window = self._window_pause(sent_at)  # the throttle names no time
                delay = server_delay if server_delay is not None else window
                if delay is None:
                    delay = min(self.retry.backoff(attempt), self.retry.max_delay)
                if kind:  # every thread pauses, not only this one
                    throttled = True
                    self._within_max_wait(where, failure, delay)
                    self.governor.throttle(sent_at, delay, learn=kind == "learn",
                                           server_delay=server_delay is not None,
                                           limit=_int_header(response, "X-RateLimit-Limit"),
                                           why=self._why(response, failure))
                    throttles += 1
                    if (server_delay is not None or window is not None) and \
                            throttles < _MAX_THROTTLES:
                        attempt -= 1  # a wait for the window, not a failure: no attempt spent
                        logger.info("%s %s: %s, waits %.2fs with every thread (throttle %d)",
                                    self.api_name, where, failure, delay, throttles)
                        continue
            if attempt == self.retry.max_attempts:
                break
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
        if self.clock.sleep(seconds, self._aborted):
            msg = f"{self.api_name}: stopped waiting, the run is stopping"
            raise AbortedError(msg)

    def _pace(self) -> float:
        """Wait for this request's slot (ceiling, learnt rate, pauses); return its time."""
        return self.governor.acquire()

    def _respect_quota(self, response: httpx.Response, sent_at: float) -> None:
        """Pace under a documented window's limit; when the quota is spent, pause for its
        reset instead of earning a 429."""
        limit = _int_header(response, "X-RateLimit-Limit")
        if limit and self.quota_window and self.pace_is_default and limit != self._paced_by_limit:
            self._paced_by_limit = limit  # the user's own pacing, if set, is theirs to keep
            self.governor.set_ceiling(_QUOTA_SHARE * limit / self.quota_window)
        remaining = _int_header(response, "X-RateLimit-Remaining", positive=False)
        reset = _int_header(response, "X-RateLimit-Reset")
        if remaining != 0 or reset is None:
            return
        wait = reset - self.clock.time()
        if wait <= 0:
            return
        if self.governor.rate is not None and wait <= 2.0:
            return  # a one-second window (whole-second resets add up to one): pacing fits it
        if self.retry.max_wait is not None and wait > self.retry.max_wait:
            return  # this answer is good; the next request's 429 gives up
        self.governor.throttle(sent_at, wait, learn=True, server_delay=True, limit=limit,
                               why="its quota to reset (X-RateLimit-Remaining: 0)")

    def _window_pause(self, sent_at: float) -> float:
        """The pause for a throttle that names no time: a second, doubling for each one in a
        row, up to ``throttle_pause`` (the API's window): a window passes in a few steps, and
        a lone 503 of an outage (the same answer) costs a second, not a window. Refusals of
        requests sent before the last doubling are its burst: they do not double it again."""
        with self._stats_lock:
            if sent_at >= self._doubled_at or not self._unnamed_throttles:
                self._unnamed_throttles += 1
                self._doubled_at = self.clock.now()
            streak = self._unnamed_throttles
        return min(self.throttle_pause or 0.0, 2.0 ** min(streak - 1, 30))

    def _within_max_wait(self, where: str, failure: str, wait: float) -> None:
        """Give up when the server asks for a longer pause than ``max_wait_seconds``."""
        most = self.retry.max_wait
        if most is not None and wait > most:
            msg = (f"{self.api_name} {where}: {failure}, the server asks to wait "
                   f"{_duration(wait)}, longer than the `max_wait_seconds` setting "
                   f"({_duration(most)}): given up")
            raise TransientError(msg)

    @staticmethod
    def _why(response: httpx.Response, failure: str) -> str:
        """What a throttle's pause waits for, in words."""
        if response.status_code == 429:
            return f"its rate limit ({failure})"
        if response.headers.get("Retry-After"):
            return f"the service to come back ({failure} with Retry-After)"
        return f"its rate window to pass ({failure}, the API's throttle)"

    def _rebase(self, link: str) -> str:
        """An absolute link (a next page) on the configured base URL's origin."""
        rebased = rebase(link, self.base_url_text)
        if rebased != link:
            logger.warning("%s: a link pointed to another origin (%s); followed on %s", self.api_name,
                           httpx.URL(link).copy_with(path="/", query=None, fragment=None),
                           httpx.URL(self.base_url_text).copy_with(path="/", query=None))
        return rebased

    def _throttle_kind(self, response: httpx.Response) -> str | None:
        """``learn`` for a rate refusal, ``pause`` for maintenance, None for other failures."""
        if response.status_code == 429:
            return "learn"
        retry_after = response.headers.get("Retry-After", "").strip()
        if response.status_code != 503:
            return None
        if not retry_after:
            return "learn" if self.throttle_pause is not None else None
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


def _int_header(response: httpx.Response, name: str, *, positive: bool = True) -> int | None:
    """An integer header (positive unless told), its least value when it holds several
    (``9999, 19988``: two limits, the most restrictive wins); None when absent or unreadable."""
    values = [v.strip() for v in response.headers.get(name, "").split(",")]
    if not all(v.isdigit() for v in values):
        return None
    least = min(int(v) for v in values)
    return None if positive and least <= 0 else least


def _duration(seconds: float) -> str:
    """``59m 58s`` for a person reading a pause line.

    >>> _duration(3598.2), _duration(42.0), _duration(7322)
    ('59m 59s', '42s', '2h 02m 02s')
    """
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
