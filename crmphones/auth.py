"""Auth flows for httpx: request signing (the signature covers the exact bytes sent) and
Outreach's OAuth 2 refresh.

OAuth (``OAuthBearer``), from outreach.md §2 and its 2026-12-07 update:

- **When.** A token is minted before the first request (unless an ``access_token`` is
  configured: it is used until refused), again shortly before ``expires_in`` runs out, and
  once when a request is answered 401; the request is then sent again with the new token, and
  a second 401 reaches ``ApiClient``, which stops the run naming the settings.
- **One at a time.** Threads share one token; a thread that finds the token stale or refused
  mints under a lock while the others wait, then they all use the new one. A 401 for a token
  already replaced is answered by resending with the current one, without a mint.
- **One a minute.** Outreach answers a second mint within 60 s with 429: token requests are
  at least ``MINT_INTERVAL`` apart, whatever they were answered (a lost answer may have minted).
  A stale token that has not yet expired is used meanwhile.
- **Rotation.** A refresh token in the answer replaces the one sent: it is kept in
  ``token_cache_path`` (mode 0600, written to a temporary file and renamed over the old one)
  and preferred over the configured one on the next run, unless the configured one changed
  since (a user pasted a new one: theirs is the newer intent).
- **Where.** The refresh token and client secret go in a form ``POST`` to ``oauth_token_url``
  only (https, or loopback http: ``crmphones.settings``), never redirected; every token is
  added to the client's ``Secrets`` before it is used, so no message shows it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import logging
import math
import os
import pathlib
import tempfile
import threading
import typing as t
from dataclasses import dataclass

import httpx

from crmphones import clock as clock_module
from crmphones.answers import Secrets, redact
from crmphones.errors import AuthError, ConfigError, TransientError
from crmphones.http import AbortedError, RetryPolicy, tls_context

if t.TYPE_CHECKING:
    from collections.abc import Generator

    from crmphones.clock import Clock

__all__ = ["MINT_INTERVAL", "OUTREACH_TOKEN_URL", "OAuthBearer", "OAuthSettings",
           "OneDegreeSigner", "TicketEvolutionSigner", "TokenCache", "one_degree_signature",
           "ticket_evolution_signature"]

logger = logging.getLogger("crmphones.auth")

#: Outreach's token endpoint (outreach.md §2).
OUTREACH_TOKEN_URL = "https://api.outreach.io/oauth/token"
#: Least seconds between two token requests: Outreach answers a second mint a minute 429.
MINT_INTERVAL = 60.0
#: A token is refreshed this long before it expires (at most a tenth of its life), so a
#: request sent just before then does not meet its expiry on the way.
REFRESH_MARGIN = 60.0
_TOKEN_ATTEMPTS = 6  # token requests in a row that fail before the run stops

_SIGNED_METHODS = frozenset({"POST", "PUT", "DELETE"})


def one_degree_signature(secret: str, body: bytes, date: str) -> str:
    """One Degree's chained signature (onedegree.md §2, current revision).

    >>> one_degree_signature("s", b"{}", "2017-11-05T20:54:51Z")[:12]
    'd18ee7bbf19b'
    """
    first = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    second = hmac.new(first.encode(), date.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(second.encode()).hexdigest()


class OneDegreeSigner(httpx.Auth):
    """Adds ``1deg-Date`` and ``1deg-Signature`` to writes; reads need only the api_key."""

    requires_request_body = True

    def __init__(self, secret: str) -> None:
        """Keep the secret; it never leaves this object."""
        self._secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign with a fresh date on every attempt, so a retry is never stale."""
        if request.method in _SIGNED_METHODS:
            date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            request.headers["1deg-Date"] = date
            request.headers["1deg-Signature"] = one_degree_signature(
                self._secret, request.content, date)
        yield request


def ticket_evolution_signature(secret: str, method: str, url: httpx.URL, body: bytes) -> str:
    """Base64 HMAC-SHA256 of ``METHOD host/path?query-or-body`` (ticketevolution.md §2).

    GET signs the query sorted by key; POST and PUT sign the body bytes after ``?``.

    >>> url = httpx.URL("https://api.ticketevolution.com/v9/clients?page=2&per_page=1")
    >>> ticket_evolution_signature("s", "GET", url, b"")[:10]
    'IqwHE7dlw+'
    """
    if method in ("POST", "PUT", "PATCH") and body:
        tail = body.decode()
    else:
        # Sorted by key, as encoded on the wire (the query is sent in this same order).
        pairs = [p for p in url.query.decode().split("&") if p]
        tail = "&".join(sorted(pairs, key=lambda pair: pair.split("=", 1)[0]))
    # The host is signed without its port (§2), whatever port we connect to.
    message = f"{method} {url.host}{url.path}?{tail}"
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class TicketEvolutionSigner(httpx.Auth):
    """Adds ``X-Token`` and ``X-Signature`` to every request."""

    requires_request_body = True

    def __init__(self, token: str, secret: str) -> None:
        """Keep the credentials; they never leave this object."""
        self._token = token
        self._secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the request exactly as it will be sent."""
        request.headers["X-Token"] = self._token
        request.headers["X-Signature"] = ticket_evolution_signature(
            self._secret, request.method, request.url, request.content)
        yield request


@dataclass(frozen=True, slots=True)
class OAuthSettings:
    """What a refresh needs: the app's credentials, the user's refresh token, and where."""

    client_id: str
    client_secret: str
    refresh_token: str
    token_url: str = OUTREACH_TOKEN_URL
    #: The file that keeps a rotated refresh token for the next run (None: kept in memory).
    cache_path: str | None = None


class TokenCache:
    """The newest refresh token on disk, with a digest of the configured one it descends from.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "token.json"
    >>> TokenCache(path, "r0").save("r1")
    >>> TokenCache(path, "r0").load(), TokenCache(path, "pasted").load()
    ('r1', None)
    >>> oct(path.stat().st_mode & 0o777)
    '0o600'
    """

    def __init__(self, path: str | os.PathLike[str] | None, configured: str) -> None:
        """Bind to ``path`` (None: no file) and the configured refresh token.

        Raises:
            ConfigError: when the file cannot be written where ``token_cache_path`` says.
        """
        self.path = pathlib.Path(path).expanduser() if path else None
        self._origin = hashlib.sha256(configured.encode()).hexdigest()
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                msg = f"setting `token_cache_path`: cannot create its folder ({exc.strerror})"
                raise ConfigError(msg) from None
            if not os.access(self.path.parent, os.W_OK):
                msg = "setting `token_cache_path`: its folder is not writable"
                raise ConfigError(msg)

    def load(self) -> str | None:
        """The cached refresh token, when it descends from the configured one."""
        if self.path is None or not self.path.exists():
            return None
        try:
            kept = json.loads(self.path.read_text())
        except (OSError, ValueError):
            logger.warning("token_cache_path %s is unreadable: using the configured "
                           "refresh_token", self.path)
            return None
        token = kept.get("refresh_token") if isinstance(kept, dict) else None
        if not isinstance(token, str) or not token:
            return None
        if kept.get("configured_sha256") != self._origin:
            logger.info("the `refresh_token` setting changed since %s was written: using the "
                        "setting", self.path)
            return None
        return token

    def save(self, token: str) -> None:
        """Keep ``token`` for the next run: readable by the user alone, replaced atomically."""
        if self.path is None:
            return
        body = json.dumps({"refresh_token": token, "configured_sha256": self._origin})
        # mkstemp creates the file 0600 whatever the umask; the rename is atomic, so a crash
        # leaves the old token or the new one, never half of one.
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(handle, "w") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            pathlib.Path(temporary).unlink(missing_ok=True)
            raise


class OAuthBearer(httpx.Auth):
    """Outreach's OAuth 2 bearer token, refreshed as the module doc says."""

    def __init__(self, settings: OAuthSettings, *, access_token: str | None = None,
                 secrets: Secrets | None = None, clock: Clock | None = None,
                 api_name: str = "Outreach", timeout: float = 30.0) -> None:
        """Read the cached refresh token; mint nothing yet.

        Args:
            settings: Client credentials, refresh token, token URL and cache file.
            access_token: A token to use until it is refused (its life is unknown).
            secrets: Where every credential and minted token is added (the client's).
            clock: What expiry and the mint interval count in (default
                `crmphones.clock.DEFAULT_CLOCK`).
            api_name: Name used in messages.
            timeout: Seconds for the token request's connect, read and write.
        """
        self._settings = settings
        self._clock = clock if clock is not None else clock_module.DEFAULT_CLOCK
        self._api_name = api_name
        #: Every credential this flow holds or has minted.
        self.secrets = secrets if secrets is not None else Secrets()
        for value in (settings.client_secret, settings.refresh_token, access_token or ""):
            self.secrets.add(value)
        self._cache = TokenCache(settings.cache_path, settings.refresh_token)
        cached = self._cache.load()
        self._from_cache = cached is not None
        self._refresh_token = cached or settings.refresh_token
        self.secrets.add(self._refresh_token)
        self._access = access_token or None
        self._refresh_at = self._expires_at = math.inf  # a configured token: until refused
        self._not_before = -math.inf  # no token request before this (monotonic)
        self._failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Its own client: no base URL, no auth, no redirects; nothing else is sent with it.
        self._http = httpx.Client(timeout=timeout, headers={"User-Agent": "crmphones/0.1"},
                                  verify=tls_context())
        #: Tokens minted this run, and seconds waited for the mint interval.
        self.refreshes = 0
        self.waited_seconds = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send with the current token; on a 401 send once more with a refreshed one."""
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self.token(refused=token)}"
            yield request

    def token(self, refused: str | None = None) -> str:
        """The access token to send: the current one unless stale or ``refused``, else a
        new one (minted by this thread, or by the thread that got there first).

        Raises:
            AuthError: the token endpoint refused the refresh token or the client.
            TransientError: the token endpoint failed ``_TOKEN_ATTEMPTS`` times in a row.
            AbortedError: the run is stopping.
        """
        while True:
            with self._lock:
                now = self._clock.now()
                if self._access is not None and self._access != refused and (
                        now < self._refresh_at or now < min(self._expires_at, self._not_before)):
                    return self._access
                wait = self._not_before - now
                if wait <= 0:
                    wait = self._mint(now)
                    if wait <= 0:
                        continue
            # Waited outside the lock: a thread holding it never sleeps, so simulated time
            # (which moves when every thread sleeps) cannot stall.
            self._wait(wait)

    def abort(self) -> None:
        """The run is stopping: a wait for the mint interval ends now."""
        self._stop.set()

    def close(self) -> None:
        """Close the token endpoint's connections."""
        self._http.close()

    def _wait(self, seconds: float) -> None:
        with self._lock:
            self.waited_seconds += seconds
        if self._clock.sleep(seconds, self._stop):
            msg = f"{self._api_name}: stopped waiting for a token, the run is stopping"
            raise AbortedError(msg)

    def _mint(self, now: float) -> float:
        """One token request; 0 when a token was minted, else seconds to the next try."""
        self._not_before = now + MINT_INTERVAL
        form = {"client_id": self._settings.client_id,
                "client_secret": self._settings.client_secret,
                "grant_type": "refresh_token", "refresh_token": self._refresh_token}
        try:
            response = self._http.post(self._settings.token_url, data=form)
        except httpx.TransportError as exc:
            if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                # Nothing reached the server, so nothing was minted: no minute to wait.
                self._not_before = now + RetryPolicy().backoff(self._failures + 1)
            return self._failed(type(exc).__name__)
        if response.status_code == 200:
            return self._keep(response, now)
        code = _oauth_error(response)
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = response.headers.get("Retry-After", "").strip()
            if retry_after.isdigit():
                self._not_before = max(self._not_before, now + int(retry_after))
            return self._failed(f"HTTP {response.status_code}")
        if code == "invalid_grant":
            where = ("the refresh token kept in `token_cache_path`" if self._from_cache
                     else "the `refresh_token` setting")
            msg = (f"{self._api_name} refused {where} ({response.status_code} invalid_grant: "
                   "expired, revoked or already used): authorize again and set a new "
                   "`refresh_token` (README: Outreach: OAuth).")
            raise AuthError(msg)
        msg = (f"{self._api_name}'s token endpoint answered {response.status_code} "
               f"{redact(code or '', self.secrets)}".rstrip() +
               ": check the `client_id`, `client_secret` and `oauth_token_url` settings.")
        raise AuthError(msg)

    def _failed(self, failure: str) -> float:
        self._failures += 1
        if self._failures >= _TOKEN_ATTEMPTS:
            msg = (f"{self._api_name}: gave up refreshing the access token after "
                   f"{self._failures} attempts ({failure}); check the `oauth_token_url` setting")
            raise TransientError(msg)
        wait = self._not_before - self._clock.now()
        logger.warning("%s token refresh failed (%s); next try in %.0fs", self._api_name,
                       failure, wait)
        return max(wait, 1e-6)

    def _keep(self, response: httpx.Response, sent: float) -> float:
        """Take the minted token (its life counted from the request's sending)."""
        try:
            body = response.json()
            access = body["access_token"]
            lifetime = float(body.get("expires_in") or math.inf)
        except (ValueError, TypeError, KeyError, AttributeError):
            access = None
        if not isinstance(access, str) or not access:
            msg = (f"{self._api_name}'s token endpoint answered 200 without an access token: "
                   "check the `oauth_token_url` setting.")
            raise AuthError(msg)
        self.secrets.add(access)
        self._access, self._failures = access, 0
        self._expires_at = sent + lifetime
        self._refresh_at = self._expires_at - min(REFRESH_MARGIN, lifetime / 10)
        self.refreshes += 1
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token:
            self.secrets.add(rotated)
            self._refresh_token, self._from_cache = rotated, self._cache.path is not None
            try:
                self._cache.save(rotated)
            except OSError as exc:
                logger.error("could not keep the new refresh token in token_cache_path (%s): "
                             "the next run may need a new `refresh_token`", exc.strerror)
            if self._cache.path is None:
                logger.warning("%s rotated the refresh token: set `token_cache_path` to keep "
                               "it, or the next run's `refresh_token` may be refused",
                               self._api_name)
        logger.info("%s access token refreshed (%d this run; it lives %.0fs)", self._api_name,
                    self.refreshes, lifetime)
        return 0.0


def _oauth_error(response: httpx.Response) -> str | None:
    """The RFC 6749 §5.2 ``error`` code of a token endpoint's refusal, if it gives one."""
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None
