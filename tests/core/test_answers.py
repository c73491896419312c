"""One table turns HTTP answers into outcomes; each dialect only adds its words and refusals.

The table and each dialect's hooks are checked on constructed responses (no client, no
server); the paths through a dialect are checked against the emulators, over real HTTP.
"""

from __future__ import annotations

import json
import typing as t
import urllib.parse

import httpx
import pytest

from crmphones.answers import Answers, Verdict, verdict
from crmphones.dialects.activix import Activix
from crmphones.dialects.onedegree import OneDegree
from crmphones.dialects.outreach import Outreach
from crmphones.dialects.ticketevolution import TicketEvolution
from crmphones.errors import AuthError, FatalRequestError, TransientError
from crmphones.records import Owner, PhoneRecord
from crmphones_emulators import EmulatorServer
from crmphones_emulators.onedegree import OneDegreeApp
from crmphones_emulators.ticketevolution import TicketEvolutionApp
from tests.conftest import (
    DESTINATION_SECRET,
    DESTINATION_TOKEN,
    activix_config,
    od_config,
    outreach_config,
    te_config,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from crmphones.dialects.base import Dialect

SECRET = "answers-test-token-s3cr3t"
_CONFIGS: dict[str, tuple[type[Dialect], dict[str, t.Any]]] = {
    "outreach": (Outreach, {"api_url": "http://127.0.0.1:9/api/v2", "access_token": SECRET}),
    "activix": (Activix, {"api_url": "http://127.0.0.1:9/v2", "access_token": SECRET}),
    "onedegree": (OneDegree, {"api_url": "http://127.0.0.1:9/v1", "api_key": SECRET,
                              "api_secret": SECRET + "-signing"}),
    "ticketevolution": (TicketEvolution, {"api_url": "http://127.0.0.1:9/v9", "api_token": SECRET,
                                          "api_secret": SECRET + "-signing"}),
}


@pytest.fixture(scope="module")
def answers() -> Iterator[dict[str, Answers]]:
    """Each dialect's own ``Answers``, as its ``build_client`` wires it (nothing is sent)."""
    dialects = {name: cls(config) for name, (cls, config) in _CONFIGS.items()}
    yield {name: dialect.client.answers for name, dialect in dialects.items()}
    for dialect in dialects.values():
        dialect.close()


def _answer(status: int, body: t.Any = None, *, method: str = "POST", url: str,
            text: str | None = None) -> httpx.Response:
    content = text.encode() if text is not None else json.dumps(body).encode()
    return httpx.Response(status, content=content, request=httpx.Request(method, url))


@pytest.mark.parametrize(("status", "kwargs", "expected"), [
    (200, {}, Verdict.DONE),
    (201, {}, Verdict.DONE),
    (204, {}, Verdict.DONE),
    (401, {}, Verdict.CREDENTIAL),
    (403, {}, Verdict.CREDENTIAL),
    (403, {"auth_statuses": (401,)}, Verdict.FAILED),
    (403, {"auth_statuses": (401,), "refusals": {403}}, Verdict.REFUSED),
    (401, {"refusals": {401}}, Verdict.CREDENTIAL),  # a credential is never one record's fault
    (429, {"refusals": {429}}, Verdict.RETRY),
    (502, {}, Verdict.RETRY),
    (503, {}, Verdict.RETRY),
    (504, {}, Verdict.RETRY),
    (500, {}, Verdict.RETRY),
    (500, {"idempotent": False}, Verdict.AMBIGUOUS),
    (503, {"idempotent": False}, Verdict.RETRY),  # refused before acting: safe to resend
    (422, {"refusals": {422}}, Verdict.REFUSED),
    (422, {}, Verdict.FAILED),
    (404, {"refusals": {404}}, Verdict.REFUSED),
    (409, {"refusals": {400, 404, 422}}, Verdict.FAILED),
    (302, {}, Verdict.FAILED),
])
def test_verdict_table(status: int, kwargs: dict[str, t.Any], expected: Verdict) -> None:
    """The one table: what each status means for the run."""
    assert verdict(status, **kwargs) is expected


#: (dialect, status, body, the record's reject reason) for answers that reject one record.
REFUSALS = [
    ("outreach", 422, {"errors": [{"id": "validationError", "detail": "is invalid",
                                   "source": {"pointer": "/data/attributes/number"}}]},
     "HTTP 422: /data/attributes/number: is invalid"),
    ("outreach", 415, {"errors": [{"id": "unsupportedMediaType", "details": "Use JSON:API"}]},
     "HTTP 415: Use JSON:API"),
    ("outreach", 404, {"errors": [{"id": "resourceNotFound", "title": "Not found"}]},
     "HTTP 404: Not found"),
    ("activix", 422, {"message": "The given data was invalid.",
                      "errors": {"lead_id": ["The field lead_id is required."]}},
     "HTTP 422: The given data was invalid. (lead_id: The field lead_id is required.)"),
    ("activix", 403, {"message": "Duplicate phone."}, "HTTP 403: Duplicate phone."),
    ("activix", 404, {"message": "No query results for model LeadPhone."},
     "HTTP 404: No query results for model LeadPhone."),
    ("onedegree", 403, {"status": "error", "error": "Not allowed"}, "HTTP 403: Not allowed"),
    ("onedegree", 400, {"status": "error", "error": {"digits": "blank"}},
     'HTTP 400: {"digits": "blank"}'),
    ("onedegree", 404, None, "HTTP 404"),
    ("ticketevolution", 422, {"errors": {"label": ["is too long (maximum is 20 characters)"]}},
     "HTTP 422: label is too long (maximum is 20 characters)"),
    ("ticketevolution", 400, {"error": "Bad request"}, "HTTP 400: Bad request"),
]


@pytest.mark.parametrize(("dialect", "status", "body", "reason"), REFUSALS)
def test_refusals_reject_the_record_in_the_apis_words(
    answers: dict[str, Answers], dialect: str, status: int, body: t.Any, reason: str,
) -> None:
    """A refusal of one record is a reply, not an error; its reason starts ``HTTP 4xx``."""
    reply = answers[dialect].reply(_answer(status, body, url="http://127.0.0.1:9/x/phones"))
    assert (reply.status, reply.refused, reply.body) == (status, reason, None)


#: (dialect, status): answers that stop the run with FatalRequestError.
STOPS = [("outreach", 409), ("activix", 400), ("activix", 405), ("onedegree", 409),
         ("ticketevolution", 403), ("ticketevolution", 406)]


@pytest.mark.parametrize(("dialect", "status"), STOPS)
def test_other_statuses_stop_the_run_naming_method_and_path(
    answers: dict[str, Answers], dialect: str, status: int,
) -> None:
    """Neither done nor a refusal: retrying will not help and every record would meet it."""
    name = answers[dialect].api_name
    base = _CONFIGS[dialect][1]["api_url"]
    response = _answer(status, {"error": "nope", "message": "nope"}, method="PUT",
                       url=f"{base}/things/7?api_key={SECRET}")
    with pytest.raises(FatalRequestError) as caught:
        answers[dialect].reply(response)
    assert str(caught.value).startswith(f"{name} answered {status} to PUT /things/7: HTTP {status}")
    assert caught.value.status == status
    assert SECRET not in str(caught.value)  # the query is never quoted


@pytest.mark.parametrize("dialect", list(_CONFIGS))
@pytest.mark.parametrize("status", [301, 302])
def test_a_redirect_stops_the_run_naming_api_url(answers: dict[str, Answers], dialect: str,
                                                 status: int) -> None:
    """Ticket Evolution documents 301/302: the API moved; one error names ``api_url`` and the
    new place without its query (it may carry a key). Nothing is sent after a redirect."""
    base = _CONFIGS[dialect][1]["api_url"]
    response = httpx.Response(status, headers={"Location": f"https://moved.example/v10/c?api_key={SECRET}"},
                              request=httpx.Request("POST", f"{base}/c"))
    with pytest.raises(FatalRequestError) as caught:
        answers[dialect].reply(response)
    assert str(caught.value) == (f"{answers[dialect].api_name} answered {status} to POST /c: the "
                                 "API moved (to https://moved.example/v10/c); check the `api_url` "
                                 "setting")
    with pytest.raises(FatalRequestError, match="check the `api_url` setting"):
        answers[dialect].document(response)


def _outreach_403(error_id: str, method: str = "PATCH") -> httpx.Response:
    body = {"errors": [{"id": error_id, "title": "Forbidden", "detail": f"{error_id} detail"}]}
    return _answer(403, body, method=method, url="http://127.0.0.1:9/api/v2/phoneNumbers/7")


def test_outreach_403_for_one_record_is_a_reject_for_the_token_a_stop(
        answers: dict[str, Answers]) -> None:
    """``unauthorizedRequest``: this record, by Outreach's permission rules; the run goes on.
    ``unauthorizedOauthScope`` (or a 403 without its words): the token; the run stops."""
    a = answers["outreach"]
    reply = a.reply(_outreach_403("unauthorizedRequest"))
    assert reply.refused == "HTTP 403: unauthorizedRequest detail"
    for refused in (_outreach_403("unauthorizedOauthScope"),
                    _answer(403, text="Forbidden", url="http://127.0.0.1:9/api/v2/phoneNumbers")):
        with pytest.raises(AuthError, match=r"with 403.*check the `access_token` setting"):
            a.reply(refused)
    with pytest.raises(AuthError, match="unauthorizedOauthScope detail"):
        a.document(_outreach_403("unauthorizedOauthScope", "GET"))
    # A read refused is no record to reject: the run stops with Outreach's words.
    with pytest.raises(FatalRequestError, match="HTTP 403: unauthorizedRequest detail"):
        a.document(_outreach_403("unauthorizedRequest", "GET"))


@pytest.mark.parametrize(("dialect", "status", "setting"), [
    ("outreach", 401, "`access_token`"), ("outreach", 403, "`access_token`"),
    ("activix", 401, "`access_token`"), ("onedegree", 401, "`api_key` and `api_secret`"),
    ("ticketevolution", 401, "`api_token` and `api_secret`"),
])
def test_credential_statuses_stop_naming_the_setting(
    answers: dict[str, Answers], dialect: str, status: int, setting: str,
) -> None:
    """401 (and Outreach's 403) stop the run at once, on reads and writes alike."""
    response = _answer(status, {"message": "Unauthenticated."}, method="GET",
                       url="http://127.0.0.1:9/v/things")
    with pytest.raises(AuthError, match=rf"with {status}( \(.*\))?: check the {setting}"):
        answers[dialect].document(response)
    with pytest.raises(AuthError, match=setting):
        answers[dialect].reply(response)


def test_done_answers_are_decoded(answers: dict[str, Answers]) -> None:
    """A 2xx gives its JSON body; a 2xx that is not JSON stops the run."""
    a = answers["ticketevolution"]
    reply = a.reply(_answer(201, {"phone_numbers": [{"id": 5}]}, url="http://127.0.0.1:9/v9/c"))
    assert (reply.status, reply.refused, reply.body) == (201, None, {"phone_numbers": [{"id": 5}]})
    assert a.document(_answer(200, [1, 2], method="GET", url="http://127.0.0.1:9/v9/c")) == [1, 2]
    with pytest.raises(FatalRequestError, match="with a body that is not JSON"):
        a.reply(_answer(201, text="<html>", url="http://127.0.0.1:9/v9/c"))
    with pytest.raises(FatalRequestError, match="with a body that is not JSON"):
        a.document(_answer(200, text="", method="GET", url="http://127.0.0.1:9/v9/c"))


def test_a_read_accepts_a_gone_owner_only_when_asked(answers: dict[str, Answers]) -> None:
    """A 404 on a read is None with ``absent_ok``; otherwise it stops, with the API's words."""
    a = answers["activix"]
    gone = _answer(404, {"message": "No query results for model Lead."}, method="GET",
                   url="http://127.0.0.1:9/v2/leads/9")
    assert a.document(gone, absent_ok=True) is None
    with pytest.raises(FatalRequestError,
                       match="Activix answered 404 to GET /leads/9: HTTP 404: No query results"):
        a.document(gone)
    # A 422 on a read is never a refusal of one record: the request itself is wrong.
    with pytest.raises(FatalRequestError):
        a.document(_answer(422, {"message": "bad"}, method="GET", url="http://127.0.0.1:9/v2/leads"))


def test_retry_statuses_that_reach_the_answers_are_transient(answers: dict[str, Answers]) -> None:
    """The HTTP layer retries these; should one reach the answers, it is not a stop or a reject."""
    a = answers["outreach"]
    for status, method in ((503, "GET"), (429, "POST"), (500, "POST"), (500, "PATCH")):
        with pytest.raises(TransientError):
            a.reply(_answer(status, {}, method=method, url="http://127.0.0.1:9/api/v2/x"))


def test_the_apis_words_are_redacted(answers: dict[str, Answers]) -> None:
    """An API may echo what it was sent: a key never reaches a reject reason or a message."""
    body = {"message": f"key {SECRET} lacks access", "errors": {"number": [f"{SECRET} bad"]}}
    a = answers["activix"]
    reply = a.reply(_answer(422, body, url="http://127.0.0.1:9/v2/lead-phones"))
    assert SECRET not in (reply.refused or "") and "***" in (reply.refused or "")
    with pytest.raises(FatalRequestError) as caught:
        a.reply(_answer(405, body, url="http://127.0.0.1:9/v2/lead-phones"))
    assert SECRET not in str(caught.value)
    error = a.credential_error(403, "POST /lead-phones", a.words(_answer(
        403, body, url="http://127.0.0.1:9/v2/lead-phones")))
    assert SECRET not in str(error) and "check the `access_token` setting" in str(error)



@pytest.mark.parametrize("dialect", sorted(_CONFIGS))
def test_a_quoted_request_line_is_redacted_as_sent_and_url_encoded(dialect: str) -> None:
    """An API quoting its request line quotes the query encoded (``api_key=a%2Bb%2Fc+d``): the
    reject reason and the stop (the CLI's one line is ``str`` of it) hold neither form."""
    key = "a+b/c d-s3cr3t"
    cls, config = _CONFIGS[dialect]
    config = {name: key if value == SECRET else value for name, value in config.items()}
    built = cls(config)
    built.close()  # nothing is sent: only its answers are used
    a = built.client.answers
    quoted = [f"GET /x?api_key={quote(key, safe=safe)} {key}" for quote in (
        urllib.parse.quote, urllib.parse.quote_plus) for safe in ("", "/")]
    quoted.append(quoted[0].replace("%2B", "%2b").replace("%2F", "%2f"))
    body = {"message": " ".join(quoted), "error": " ".join(quoted),
            "errors": [{"detail": " ".join(quoted)}]}
    url = f"{config['api_url']}/things/7"
    status = next(s for s in (422, 400, 404) if s in a.refusal_statuses)
    refused = a.reply(_answer(status, body, url=url)).refused or ""
    with pytest.raises(FatalRequestError) as caught:
        a.reply(_answer(409, body, method="PUT", url=url))
    for text in (refused, str(caught.value)):
        assert "api_key=***" in text, text
        assert "s3cr3t" not in text, text

# -- through the dialects, against the emulators ----------------------------------------


def _phone(provider: str, parent_type: str, parent_id: str, e164: str, **extra: t.Any
           ) -> PhoneRecord:
    return PhoneRecord(id=None, provider=provider, parent_type=parent_type, parent_id=parent_id,
                       number=e164, e164=e164, **extra)


def test_outreach_422_rejects_with_the_pointer(outreach_destination: EmulatorServer) -> None:
    """A create for a prospect that does not exist: Outreach's 422 words, per pointer."""
    dialect = Outreach(outreach_config(outreach_destination, DESTINATION_TOKEN))
    result = dialect.create(_phone("outreach", "prospect", "999999", "+15145550101"))
    assert (result.rejected or "").startswith("HTTP 422: /data/relationships/prospect: ")
    assert result.destination_id is None
    created = dialect.create(_phone("outreach", "prospect", "3", "+15145550102"))
    assert created.destination_id and created.rejected is None
    dialect.close()


def test_outreach_bad_token_stops_on_the_first_read(outreach_destination: EmulatorServer) -> None:
    """401 on a read: an AuthError naming the setting; the token is not in it."""
    dialect = Outreach(outreach_config(outreach_destination, "not-the-token"))
    with pytest.raises(AuthError, match="check the `access_token` setting") as caught:
        list(dialect.read("phone_numbers", None))
    assert "not-the-token" not in str(caught.value)
    dialect.close()


def test_activix_gone_lead_holds_nothing_and_a_bad_lead_is_a_422(
    activix_destination: EmulatorServer,
) -> None:
    """A 404 on a lead read means it holds no phones; a create on it is refused in words."""
    dialect = Activix(activix_config(activix_destination, DESTINATION_TOKEN))
    assert list(dialect.current_phones([Owner("lead", "999999")])) == []
    result = dialect.create(_phone("activix", "lead", "999999", "+15145550103",
                                   phone_type="mobile"))
    assert (result.rejected or "").startswith("HTTP 4"), result
    dialect.close()


def test_onedegree_forbidden_and_missing_owners() -> None:
    """One Degree: 403 (not this key's) and 404 (no such owner) reject; a gone owner holds
    nothing on a read."""
    app = OneDegreeApp(records=0, parents=5, seed=2, api_key=DESTINATION_TOKEN,
                       api_secret=DESTINATION_SECRET, foreign_organizations=[2])
    with EmulatorServer(app) as server:
        dialect = OneDegree(od_config(server, DESTINATION_TOKEN, DESTINATION_SECRET))
        forbidden = dialect.create(_phone("onedegree", "organization", "2", "+14155550195"))
        missing = dialect.create(_phone("onedegree", "organization", "999", "+14155550196"))
        assert (forbidden.rejected or "").startswith("HTTP 403: ")
        assert (missing.rejected or "").startswith("HTTP 404")
        assert list(dialect.current_phones([Owner("organization", "999")])) == []
        dialect.close()


def test_ticketevolution_refused_batch_is_sent_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 422 for a batch: each phone alone, so one bad number costs only itself; a 404 on an
    update rejects in the API's words."""
    app = TicketEvolutionApp(records=0, parents=5, seed=8, token=DESTINATION_TOKEN,
                             secret=DESTINATION_SECRET, rate_limit=100_000)
    with EmulatorServer(app) as server:
        dialect = TicketEvolution(te_config(server, DESTINATION_TOKEN, DESTINATION_SECRET))
        good = _phone("ticketevolution", "client", "2", "+14155550197")
        bad = _phone("ticketevolution", "client", "2", "+14155550198", label="bad")
        item = dialect._item

        def too_long(phone: PhoneRecord) -> dict[str, t.Any]:
            # The dialect shortens labels itself: only a label sent too long earns the 422.
            return {**item(phone), "label": "x" * 30} if phone is bad else item(phone)

        monkeypatch.setattr(dialect, "_item", too_long)
        results = list(dialect.create_many(Owner("client", "2"), [good, bad]))
        assert results[0].destination_id and results[0].rejected is None
        assert (results[1].rejected or "").startswith("HTTP 422: "), results[1]
        gone = dialect.to_phone_record({"id": 987654, "client_id": 2, "number": "4155550199",
                                        "country_code": "1", "label": "home"})
        assert (dialect.update(gone, {"label": "work"}).rejected or "").startswith("HTTP 404")
        dialect.close()
