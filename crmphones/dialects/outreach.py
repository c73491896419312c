"""Outreach API v2 (JSON:API): the ``phoneNumbers`` collection and its ``prospects``.

Facts from ``shared/api/outreach.md`` (section numbers below refer to it):
bearer auth: a fixed access token, or OAuth refresh (§2, ``crmphones.auth.OAuthBearer``),
media type ``application/vnd.api+json`` (§1), cursor pages via
``page[size]`` and ``links.next`` (§5), ``filter[updatedAt]=a..inf`` + ``sort=updatedAt``
for incremental reads (§6), ``filter[prospect][id]=1,2`` to list a prospect's numbers (§3),
POST 201 / PATCH 200 with ``data.id`` matching the URL (§4), errors envelope (§7),
10,000 requests/hour with ``X-RateLimit-*`` headers (§8), 403 ``unauthorizedRequest`` for one
record and ``unauthorizedOauthScope`` for the token (update 2026-12-07).
"""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from crmphones.answers import DEFAULT_REFUSALS, Secrets
from crmphones.auth import OUTREACH_TOKEN_URL, OAuthBearer, OAuthSettings
from crmphones.concurrency import ordered_map
from crmphones.dialects.base import Dialect, StreamSpec
from crmphones.http import ApiClient
from crmphones.paging import follow_next_links
from crmphones.records import Owner, WriteResult, raw_property
from crmphones.translation import native_type

if t.TYPE_CHECKING:
    from collections.abc import Mapping

if t.TYPE_CHECKING:
    import datetime
    from collections.abc import Iterator, Sequence

    from crmphones.records import PhoneRecord

__all__ = ["OWNERS_PER_LISTING", "Outreach"]

_MEDIA_TYPE = "application/vnd.api+json"
_MAX_PAGE_SIZE = 1000  # §5, per third parties
#: Prospect ids per ``filter[prospect][id]`` listing: a request per 250 owners, not per 100,
#: in a budget of 10,000 requests an hour; the URL stays under 4 KB with ids of 10 digits
#: (servers commonly accept 8 KB).
OWNERS_PER_LISTING = 250

PROSPECT_SCHEMA = th.PropertiesList(
    th.Property("id", th.StringType, required=True),
    th.Property("provider", th.StringType, required=True),
    th.Property("first_name", th.StringType(nullable=True)),
    th.Property("last_name", th.StringType(nullable=True)),
    th.Property("created_at", th.DateTimeType(nullable=True)),
    th.Property("updated_at", th.DateTimeType(nullable=True)),
    th.Property("phone_number_ids", th.ArrayType(th.StringType), required=True),
    raw_property(),
).to_dict()


class Outreach(Dialect):
    """Outreach prospects' phone numbers."""

    name = "outreach"
    title = "Outreach"
    default_api_url = "https://api.outreach.io/api/v2"
    parent_types = ("prospect",)
    required_settings = ("access_token",)
    #: What refreshes the access token, all three together (instead of ``access_token``).
    oauth_settings = ("refresh_token", "client_id", "client_secret")

    # §8: 10,000 requests an hour per user; paced at 99% of it, and of the limit
    # ``X-RateLimit-Limit`` shows (a fixed or sliding hour then never fills).
    default_requests_per_minute = 165  # 9,900 an hour
    quota_window_seconds = 3600.0
    streams = (
        StreamSpec("phone_numbers", Dialect.phone_schema(), replication_key="updated_at"),
        StreamSpec("prospects", PROSPECT_SCHEMA, replication_key="updated_at",
                   is_phone_stream=False),
    )

    @classmethod
    def check_settings(cls, config: Mapping[str, t.Any]) -> str | None:
        """``access_token``, or ``refresh_token`` with the OAuth app's ``client_id`` and
        ``client_secret`` (both may be given: the access token is used until refused)."""
        if any(config.get(name) for name in cls.oauth_settings):
            missing = [name for name in cls.oauth_settings if not config.get(name)]
            if missing:
                return (f"setting `{missing[0]}` is required with "
                        f"{', '.join(f'`{n}`' for n in cls.oauth_settings if n != missing[0])}"
                        f" (Outreach OAuth refresh)")
            return None
        if not config.get("access_token"):
            return ("setting `access_token` (or `refresh_token` with `client_id` and "
                    "`client_secret`) is required for provider outreach")
        return None

    def build_client(self) -> ApiClient:
        """Bearer auth (refreshed when OAuth is set up) and the JSON:API media type."""
        token = str(self.config.get("access_token") or "")
        headers = {"Accept": _MEDIA_TYPE}
        self.oauth: OAuthBearer | None = None
        secrets = Secrets([token])
        if self.config.get("refresh_token"):
            self.oauth = OAuthBearer(OAuthSettings(
                client_id=str(self.config["client_id"]),
                client_secret=str(self.config["client_secret"]),
                refresh_token=str(self.config["refresh_token"]),
                token_url=str(self.config.get("oauth_token_url") or OUTREACH_TOKEN_URL),
                cache_path=self.config.get("token_cache_path") or None,
            ), access_token=token or None, secrets=secrets)
            hint = ("the `refresh_token`, `client_id` and `client_secret` settings (an "
                    "Outreach OAuth app with phoneNumbers scopes; the token was refreshed once "
                    "and refused again)")
        else:
            headers["Authorization"] = f"Bearer {token}"
            hint = "the `access_token` setting (an Outreach OAuth token with phoneNumbers scopes)"
        return ApiClient(
            self.api_url,
            api_name=self.title,
            auth_hint=hint,
            auth=self.oauth,
            headers=headers,
            secrets=secrets,
            **self.client_settings(),
            error_words=_error_words,
            # 403 is a record refused by the permission rules, unless its words refuse the token.
            auth_statuses=(401,),
            refuses_credential=_refuses_credential,
            # 415: our media type was refused; the record is rejected with Outreach's words.
            refusal_statuses=DEFAULT_REFUSALS | {403, 415},
        )

    def close(self) -> None:
        """Release the API's and the token endpoint's connections."""
        super().close()
        if self.oauth is not None:
            self.oauth.close()

    # -- read -------------------------------------------------------------------------

    def read(self, stream: str, since: datetime.datetime | None) -> Iterator[dict[str, t.Any]]:
        """Page through a collection in ``updatedAt`` order from ``since``."""
        params = {"page[size]": str(min(self.page_size or _MAX_PAGE_SIZE, _MAX_PAGE_SIZE)),
                  "sort": "updatedAt", "count": "false"}
        if since is not None:
            params["filter[updatedAt]"] = f"{_iso(since)}..inf"
        path = {"phone_numbers": "phoneNumbers", "prospects": "prospects"}[stream]
        for resource in follow_next_links(self._get_page, path, params):
            if stream == "phone_numbers":
                yield self.to_phone_record(resource).to_dict()
            else:
                yield self.to_prospect(resource)

    def _get_page(self, url: str, params: dict[str, str] | None) -> dict[str, t.Any]:
        return t.cast("dict[str, t.Any]", self.client.get_json(url, params))

    def to_phone_record(self, resource: dict[str, t.Any]) -> PhoneRecord:
        """JSON:API ``phoneNumber`` resource -> canonical record."""
        attrs = resource.get("attributes") or {}
        prospect = ((resource.get("relationships") or {}).get("prospect") or {}).get("data")
        order = attrs.get("order")
        return self.phone_record(
            resource,
            id=resource.get("id"),
            owner=Owner("prospect", str(prospect["id"]) if prospect else ""),
            number=attrs.get("number") or attrs.get("rawNumber"),
            extension=attrs.get("extension"),
            label=attrs.get("phoneType"),
            region_hint=attrs.get("countryCode"),
            is_primary=None if order is None else order == 0,
            created_at=attrs.get("createdAt"),
            updated_at=attrs.get("updatedAt"),
        )

    def to_prospect(self, resource: dict[str, t.Any]) -> dict[str, t.Any]:
        """JSON:API ``prospect`` resource -> parent record."""
        attrs = resource.get("attributes") or {}
        phones = ((resource.get("relationships") or {}).get("phoneNumbers") or {}).get("data")
        return {
            "id": str(resource["id"]),
            "provider": self.name,
            "first_name": attrs.get("firstName"),
            "last_name": attrs.get("lastName"),
            "created_at": attrs.get("createdAt"),
            "updated_at": attrs.get("updatedAt"),
            "phone_number_ids": [str(p["id"]) for p in phones or []],
            "raw": resource,
        }

    # -- write ------------------------------------------------------------------------

    def current_phones(self, owners: Sequence[Owner]) -> Iterator[PhoneRecord]:
        """List the prospects' numbers, ``OWNERS_PER_LISTING`` prospects per filtered
        listing; the listings run ``max_concurrency`` at a time."""
        ids = sorted({o.parent_id for o in owners}, key=lambda i: (len(i), i))
        chunks = [ids[i:i + OWNERS_PER_LISTING] for i in range(0, len(ids), OWNERS_PER_LISTING)]
        for listing in ordered_map(self._listed_phones, chunks, self.concurrency):
            yield from (self.to_phone_record(resource) for resource in listing)

    def _listed_phones(self, prospect_ids: list[str]) -> list[dict[str, t.Any]]:
        """Every phone number of these prospects (all pages of one filtered listing)."""
        params = {"filter[prospect][id]": ",".join(prospect_ids),
                  "page[size]": str(_MAX_PAGE_SIZE), "count": "false"}
        # Fetched on this (pool) thread: listings already run several at a time.
        return list(follow_next_links(self._get_page, "phoneNumbers", params, ahead=False))

    def write_attributes(self, phone: PhoneRecord) -> dict[str, t.Any]:
        """Only ``phoneType`` is compared; number and extension are the phone's identity."""
        if phone.phone_type is None:
            return {}
        return {"phoneType": native_type(self.name, phone.phone_type)}

    def current_attributes(self, phone: PhoneRecord) -> dict[str, t.Any]:
        """``phoneType`` as Outreach holds it."""
        return {"phoneType": (phone.raw.get("attributes") or {}).get("phoneType")}

    def create(self, phone: PhoneRecord) -> WriteResult:
        """POST /phoneNumbers with the prospect relationship (§4)."""
        attributes = {
            "number": phone.e164,
            "extension": phone.extension,
            "countryCode": phone.region,
            "rawNumber": phone.number,
            **self.write_attributes(phone),
        }
        body = {"data": {
            "type": "phoneNumber",
            "attributes": attributes,
            "relationships": {"prospect": {"data": {"type": "prospect",
                                                    "id": int(phone.parent_id)}}},
        }}
        reply = self.client.send_json("POST", "phoneNumbers", body, media_type=_MEDIA_TYPE)
        if reply.refused:
            return WriteResult(rejected=reply.refused)
        return WriteResult(destination_id=str(reply.body["data"]["id"]))

    def update(self, current: PhoneRecord, changes: dict[str, t.Any]) -> WriteResult:
        """PATCH /phoneNumbers/{id} with only the changed attributes (§4)."""
        body = {"data": {"type": "phoneNumber", "id": int(current.id or 0), "attributes": changes}}
        reply = self.client.send_json("PATCH", f"phoneNumbers/{current.id}", body,
                                      media_type=_MEDIA_TYPE)
        if reply.refused:
            return WriteResult(rejected=reply.refused)
        return WriteResult(destination_id=current.id)


def _iso(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _refuses_credential(status: int, body: t.Any) -> bool:
    """A 403 refuses the token unless it is ``unauthorizedRequest``: this one record, by
    Outreach's permission rules (§7; ``unauthorizedOauthScope`` is a missing scope).

    >>> _refuses_credential(403, {"errors": [{"id": "unauthorizedRequest"}]})
    False
    >>> _refuses_credential(403, {"errors": [{"id": "unauthorizedOauthScope"}]})
    True
    >>> _refuses_credential(403, None)
    True
    """
    if status != 403:
        return False
    errors = body.get("errors") if isinstance(body, dict) else None
    ids = {e.get("id") for e in errors if isinstance(e, dict)} if isinstance(errors, list) else set()
    return ids != {"unauthorizedRequest"}


def _error_words(body: t.Any) -> str | None:
    """The API's own words from a JSON:API errors envelope (§7), per pointer.

    >>> _error_words({"errors": [{"detail": "is invalid",
    ...                           "source": {"pointer": "/data/attributes/number"}}]})
    '/data/attributes/number: is invalid'
    """
    errors = body.get("errors") if isinstance(body, dict) else None
    parts = []
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        pointer = (error.get("source") or {}).get("pointer")
        text = error.get("detail") or error.get("details") or error.get("title") or error.get("id")
        parts.append(f"{pointer}: {text}" if pointer else str(text))
    return "; ".join(parts) or None
