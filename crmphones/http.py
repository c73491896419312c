"""The one HTTP layer every dialect uses: httpx, bounded jittered retry, throttling, redaction.

What is retried and what is not is decided here and nowhere else:

- 429, 502/503/504, dropped connections and timeouts: retried with jittered exponential
  backoff, honouring ``Retry-After`` (seconds, HTTP date or ISO time) and ``X-RateLimit-Reset``.
- 500: retried for reads; for a non-idempotent write (a POST create) a 500 or a lost response
  raises ``AmbiguousWriteError``, because the server may have acted: the caller checks the
  destination before sending again.
- 401/403: ``AuthError`` at once, naming the setting to check; no retry storm.
- Anything else is returned to the dialect, which knows what a 404 or 422 means in its API.

Error texts carry the method and the path only: query strings can hold keys
(One Degree's ``api_key``) and headers hold tokens and signatures.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
import typing as t
from dataclasses import dataclass

import httpx
import pendulum
import pendulum.parsing.exceptions

from crmphones.errors import AuthError, TransientError

__all__ = ["AmbiguousWriteError", "ApiClient", "RetryPolicy", "redact"]

logger = logging.getLogger("crmphones.http")
# httpx logs every request URL at INFO, and URLs can hold keys (One Degree's api_key).
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

_RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Failures that happen before the request reaches the server: always safe to resend.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class AmbiguousWriteError(TransientError):
    """A write whose outcome is unknown (lost response, 500): check before resending."""


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


def redact(text: str, secrets: t.Iterable[str]) -> str:
    """Replace every secret value in ``text`` with ``***``.

    >>> redact("token abc123 refused", ["abc123"])
    'token *** refused'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


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
    ) -> None:
        """Build the client.

        Args:
            base_url: The API root, e.g. ``https://api.outreach.io/api/v2``.
            api_name: Name used in messages (``Outreach``).
            auth_hint: What to check on 401/403, e.g. "the `access_token` setting".
            auth: An httpx auth flow (bearer, HMAC signing...).
            headers: Headers sent on every request.
            params: Query parameters sent on every request (One Degree's ``api_key``).
            secrets: Values that must never appear in a message.
            timeout: Seconds for connect, read and write.
            retry: The retry policy.
            max_requests_per_second: Client-side pacing, for APIs with a documented limit.
            auth_statuses: Statuses that mean a credential problem (Activix also answers
                403 for a duplicate phone, so it only lists 401).
        """
        self.auth_statuses = auth_statuses
        self.api_name = api_name
        self.auth_hint = auth_hint
        self.base_url_text = base_url.rstrip("/")  # for messages; holds no secret
        self.retry = retry or RetryPolicy()
        self._secrets = tuple(s for s in secrets if s)
        self._min_interval = 1.0 / max_requests_per_second if max_requests_per_second else 0.0
        self._pace_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._next_slot = 0.0
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
            self._pace()
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
                if status in self.auth_statuses:
                    msg = (
                        f"{self.api_name} refused the request {where} with {status}: "
                        f"check {self.auth_hint}."
                    )
                    raise AuthError(msg)
                if status == 500 and not idempotent:
                    msg = f"{self.api_name} {where}: 500 on a write, outcome unknown"
                    raise AmbiguousWriteError(msg)
                if status not in _RETRY_STATUSES and status != 500:
                    self._respect_quota(response)
                    return response
                failure = f"HTTP {status}"
                delay = self._server_delay(response)
                if delay is None:
                    delay = self.retry.backoff(attempt)
            if attempt == self.retry.max_attempts:
                break
            delay = min(delay, self.retry.max_delay)
            logger.warning(
                "%s %s: %s, retry %d/%d in %.2fs", self.api_name, where, failure,
                attempt, self.retry.max_attempts - 1, delay,
            )
            self._sleep(delay)
        msg = f"{self.api_name} {where}: gave up after {self.retry.max_attempts} attempts ({failure})"
        if failure in ("ConnectError", "ConnectTimeout"):
            msg += f": nothing answers at {self.base_url_text}; check the `api_url` setting"
        raise TransientError(redact(msg, self._secrets))

    def _count(self, key: str) -> None:
        with self._stats_lock:  # requests run on several threads
            self.calls[key] = self.calls.get(key, 0) + 1

    def _sleep(self, seconds: float) -> None:
        with self._stats_lock:
            self.waited_seconds += seconds
        time.sleep(seconds)

    def _pace(self) -> None:
        """Space requests evenly when the API documents a per-second budget."""
        if not self._min_interval:
            return
        with self._pace_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._min_interval
        if slot > now:
            self._sleep(slot - now)

    def _respect_quota(self, response: httpx.Response) -> None:
        """When the quota is spent, wait for its reset instead of earning a 429."""
        remaining = response.headers.get("X-RateLimit-Remaining")
        reset = response.headers.get("X-RateLimit-Reset")
        if remaining == "0" and reset and reset.isdigit():
            wait = int(reset) - time.time()
            if 0 < wait <= self.retry.max_delay:
                logger.info("%s quota spent; waiting %.1fs for its reset", self.api_name, wait)
                self._sleep(wait)

    @staticmethod
    def _server_delay(response: httpx.Response) -> float | None:
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
            return max(0.0, when - time.time())
        reset = response.headers.get("X-RateLimit-Reset")
        if response.status_code == 429 and reset and reset.isdigit():
            return max(0.0, int(reset) - time.time())
        return None
