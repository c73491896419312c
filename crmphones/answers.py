"""One place turns an API's HTTP answers into outcomes; a dialect adds only its own words.

Every answer gets one verdict (``verdict``), whatever the API:

- **2xx**: ``DONE``; the body must be JSON, or the run stops (the API is not what we think).
- **the API's credential statuses** (401; 403 where the API means nothing else by it):
  ``CREDENTIAL``, an ``AuthError`` naming the setting to check, at once.
- **429, 502, 503, 504**, and **500 on a read or an idempotent write**: ``RETRY``, by the HTTP
  layer (``crmphones.http``), with its backoff and pacing.
- **500 on a non-idempotent write**: ``AMBIGUOUS``; the server may have acted.
- **the statuses by which an API refuses one item** (a write's 422...; a read's 404 where the
  caller accepts that the owner is gone): ``REFUSED``; the record is rejected with the API's
  own words and the run goes on.
- **a redirect** (301, 302...): ``FAILED``, one error naming the ``api_url`` setting: the
  API moved, or the URL is not the API's (credentials are never sent after a redirect).
- **anything else**: ``FAILED``, a ``FatalRequestError`` with the API's words: retrying
  will not fix it and every record would meet it.

A status that refuses one record for one API can refuse the credential for another, or even
for the same API by its words: Outreach's 403 is ``unauthorizedRequest`` (this record, by
its permission rules: a reject) or ``unauthorizedOauthScope`` (the token: the run stops). A
dialect's ``refuses_credential`` hook reads the status and decoded body of an answer the
table would make a refusal or a failure, and may make it ``CREDENTIAL``.

What a dialect brings (``Answers``, built by ``ApiClient`` from the dialect's
``build_client``): how to read the API's own words from its decoded error body
(``error_words``; they are given as ``HTTP <status>: <words>``, the prefix by which rejects
are remembered across runs), the statuses by which its writes refuse one record
(``refusal_statuses``), which statuses mean a credential, and which of the other answers
refuse the credential by their words (``refuses_credential``).
Statuses a dialect answers in its own way (Activix's 403 ``Duplicate phone.``, its 404 on an
update) are refusals here; the dialect looks at ``Reply.status`` first.

Messages carry the method and the path, never the query (keys ride there) nor headers, and
the API's words pass through ``redact``: an API may echo what it was sent.
"""

from __future__ import annotations

import enum
import functools
import re
import threading
import typing as t
import urllib.parse
from dataclasses import dataclass

from crmphones.errors import AuthError, FatalRequestError, TransientError

if t.TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator

    import httpx

__all__ = ["DEFAULT_REFUSALS", "RETRY_STATUSES", "Answers", "CredentialCheck", "ErrorWords",
           "Reply", "Secrets", "Verdict", "never", "no_words", "redact", "verdict"]

#: Statuses retried with backoff, whatever the method.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Statuses by which a write refuses one record, unless the dialect says otherwise: a bad
#: value (400, 422) or an owner that is not there (404).
DEFAULT_REFUSALS = frozenset({400, 404, 422})

_PERCENT = re.compile("%[0-9A-F]{2}")

#: A dialect's hook: the API's own words in a decoded error body (None when the body is not
#: JSON), or None when it holds none.
ErrorWords = t.Callable[[t.Any], "str | None"]
#: A dialect's hook: whether an answer (its status and decoded body, None when not JSON)
#: that is no credential status by the table refuses the credential all the same.
CredentialCheck = t.Callable[[int, t.Any], bool]


class Verdict(enum.Enum):
    """What an answer means for the run."""

    DONE = "done"
    CREDENTIAL = "credential"
    RETRY = "retry"
    AMBIGUOUS = "ambiguous"
    REFUSED = "refused"
    FAILED = "failed"


def verdict(status: int, *, auth_statuses: Collection[int] = (401, 403),
            refusals: Collection[int] = (), idempotent: bool = True) -> Verdict:
    """The verdict on one status (see the module doc for the table).

    >>> [verdict(s, refusals={422}).value for s in (201, 401, 503, 422, 409)]
    ['done', 'credential', 'retry', 'refused', 'failed']
    >>> verdict(500, idempotent=False).value
    'ambiguous'
    """
    if 200 <= status < 300:
        return Verdict.DONE
    if status in auth_statuses:
        return Verdict.CREDENTIAL
    if status in RETRY_STATUSES or (status == 500 and idempotent):
        return Verdict.RETRY
    if status == 500:
        return Verdict.AMBIGUOUS
    if status in refusals:
        return Verdict.REFUSED
    return Verdict.FAILED


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value in ``text`` with ``***``, as sent or URL-encoded.

    Every text this package makes from an API's answer or an HTTP failure passes here (the
    HTTP layer holds the secrets), so logs, the ledger, the reports and the one-line error
    all get it redacted. An API quoting its request line quotes the query as sent, encoded.

    >>> redact("token abc123 refused", ["abc123"])
    'token *** refused'
    >>> redact("GET /orgs?api_key=ab%2Bc%2Fd+e", ["ab+c/d e"])
    'GET /orgs?api_key=***'
    """
    for secret in secrets:
        for form in _forms(secret):
            text = text.replace(form, "***")
    return text


class Secrets:
    """The values a client must never show, growing as a run learns new ones (an OAuth access
    token minted mid-run): redaction reads it as it is at the time.

    >>> secrets = Secrets(["abc", ""])
    >>> secrets.add("xyz")
    >>> redact("abc then xyz", secrets)
    '*** then ***'
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        """Start with ``values`` (empty ones are left out)."""
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()
        for value in values:
            self.add(value)

    def add(self, value: str) -> None:
        """One more value to hide from now on."""
        with self._lock:
            if value and value not in self._values:
                self._values = (*self._values, value)

    def __iter__(self) -> Iterator[str]:
        """The values known now."""
        return iter(self._values)


@functools.lru_cache(maxsize=64)
def _forms(secret: str) -> tuple[str, ...]:
    """A secret as sent and as each usual URL encoding writes it (``%2B`` or ``%2b``, a space
    as ``+`` or ``%20``, ``/`` kept or encoded), longest first, so no form leaves part of
    another."""
    if not secret:
        return ()
    encoded = {quote(secret, safe=safe) for quote in (urllib.parse.quote,
                                                      urllib.parse.quote_plus)
               for safe in ("", "/")}
    encoded |= {_PERCENT.sub(lambda m: m.group().lower(), form) for form in encoded}
    return tuple(sorted({secret, *encoded}, key=len, reverse=True))


def no_words(body: t.Any) -> str | None:
    """The hook of an API whose error bodies say nothing we can read."""
    del body
    return None


def never(status: int, body: t.Any) -> bool:
    """The hook of an API whose credential statuses say it all."""
    del status, body
    return False


@dataclass(frozen=True, slots=True)
class Reply:
    """A write's answer: done (with its decoded body) or refused (with the API's words)."""

    status: int
    #: The decoded JSON body of a 2xx.
    body: t.Any = None
    #: The API's words when it refused the record, ``HTTP <status>: ...``; None when done.
    refused: str | None = None
    #: ``METHOD /path`` of the request, for messages.
    where: str = ""


@dataclass(frozen=True, slots=True)
class Answers:
    """How one API's answers become outcomes: the shared table plus the API's hooks."""

    #: Name used in messages (``Outreach``).
    api_name: str
    #: What to check when a credential is refused, e.g. "the `access_token` setting".
    auth_hint: str
    #: The API's own words from a decoded error body (the dialect's hook).
    error_words: ErrorWords = no_words
    #: Statuses by which a write refuses one record.
    refusal_statuses: frozenset[int] = DEFAULT_REFUSALS
    #: Statuses that mean a credential problem.
    auth_statuses: tuple[int, ...] = (401, 403)
    #: Values that must never appear in a message.
    secrets: Iterable[str] = ()
    #: The base URL's path (``/api/v2``), left out of messages.
    base_path: str = ""
    #: Whether an answer refuses the credential by its words (the dialect's hook).
    refuses_credential: CredentialCheck = never

    def document(self, response: httpx.Response, *, absent_ok: bool = False) -> t.Any:
        """A read's decoded JSON body; None for a 404 when ``absent_ok`` (the owner is gone).

        Raises:
            AuthError: on a credential status.
            TransientError: on a status to retry (only when the HTTP layer did not).
            FatalRequestError: on any other status, or a body that is not JSON.
        """
        judged = self._verdict(response, refusals={404} if absent_ok else ())
        if judged is Verdict.REFUSED:
            return None
        if judged is Verdict.DONE:
            return self._decoded(response)
        return self._raise(response, judged)

    def reply(self, response: httpx.Response) -> Reply:
        """A write's outcome: done with its body, or refused with the API's words.

        Raises:
            AuthError: on a credential status.
            TransientError: on a status to retry (only when the HTTP layer did not).
            FatalRequestError: on any other status, or a 2xx body that is not JSON.
        """
        judged = self._verdict(response, refusals=self.refusal_statuses)
        where = self.where(response)
        if judged is Verdict.DONE:
            return Reply(response.status_code, self._decoded(response), where=where)
        if judged is Verdict.REFUSED:
            return Reply(response.status_code, refused=self.words(response), where=where)
        return self._raise(response, judged)

    def credential_error(self, status: int, where: str, detail: str | None = None) -> AuthError:
        """The error that stops the run on a refused credential, naming the setting."""
        because = f" ({self._redact(detail)})" if detail else ""
        msg = (f"{self.api_name} refused the request {where} with {status}{because}: "
               f"check {self.auth_hint}.")
        return AuthError(msg)

    def words(self, response: httpx.Response) -> str:
        """``HTTP <status>: <the API's own words>``, redacted; ``HTTP <status>`` without any."""
        words = self.error_words(_body_or_none(response))
        status = f"HTTP {response.status_code}"
        return self._redact(f"{status}: {words}" if words else status)

    def where(self, response: httpx.Response) -> str:
        """``METHOD /path`` of the request answered, relative to the base URL."""
        request = response.request
        path = request.url.path
        if self.base_path and path.startswith(self.base_path + "/"):
            path = path[len(self.base_path):]
        return f"{request.method} {path}"

    def _verdict(self, response: httpx.Response, *, refusals: Collection[int]) -> Verdict:
        judged = verdict(response.status_code, auth_statuses=self.auth_statuses,
                         refusals=refusals, idempotent=response.request.method != "POST")
        if judged in (Verdict.REFUSED, Verdict.FAILED) and self.refuses_credential(
                response.status_code, _body_or_none(response)):
            return Verdict.CREDENTIAL
        return judged

    def _decoded(self, response: httpx.Response) -> t.Any:
        try:
            return response.json()
        except ValueError:
            msg = (f"{self.api_name} answered {response.status_code} to {self.where(response)} "
                   "with a body that is not JSON")
            raise FatalRequestError(msg, response.status_code) from None

    def _raise(self, response: httpx.Response, judged: Verdict) -> t.NoReturn:
        status, where = response.status_code, self.where(response)
        if judged is Verdict.CREDENTIAL:
            words = self.error_words(_body_or_none(response))
            raise self.credential_error(status, where, words)
        if 300 <= status < 400:
            location = httpx_url(response.headers.get("Location", ""))
            moved = f" (to {location})" if location else ""
            msg = (f"{self.api_name} answered {status} to {where}: the API moved{moved}; check "
                   "the `api_url` setting")
            raise FatalRequestError(self._redact(msg), status)
        msg = f"{self.api_name} answered {status} to {where}: {self.words(response)}"
        if judged in (Verdict.RETRY, Verdict.AMBIGUOUS):
            raise TransientError(msg)
        raise FatalRequestError(msg, status, _body_or_none(response))

    def _redact(self, text: str) -> str:
        return redact(text, self.secrets)


def httpx_url(location: str) -> str:
    """A redirect's target as scheme, host and path: its query may carry a key.

    >>> httpx_url("https://api.example.com/v10/clients?api_key=k")
    'https://api.example.com/v10/clients'
    """
    parts = urllib.parse.urlsplit(location)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _body_or_none(response: httpx.Response) -> t.Any:
    """The decoded error body, kept on the error for a caller that classifies it."""
    try:
        return response.json()
    except ValueError:
        return None
