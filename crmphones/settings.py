"""Settings shared by the tap and the target, and the dialect they select."""

from __future__ import annotations

import ipaddress
import typing as t
import urllib.parse

from singer_sdk import typing as th

from crmphones.auth import OUTREACH_TOKEN_URL
from crmphones.dialects import DIALECTS, get_dialect
from crmphones.errors import ConfigError
from crmphones.phones import BACKENDS, use_backend

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from crmphones.dialects.base import Dialect

__all__ = ["CREDENTIALS", "OAUTH", "TYPE_SLOT_CONFLICT", "common_settings", "dialect_for"]


#: Credentials, by setting name; each dialect names the ones it requires.
CREDENTIALS = (
    th.Property(
        "access_token", th.StringType, secret=True, title="Access token",
        description="Bearer token: the Outreach OAuth access token or the Activix API key.",
    ),
    th.Property(
        "api_key", th.StringType, secret=True, title="API key",
        description="One Degree API key (sent as the `api_key` query parameter).",
    ),
    th.Property(
        "api_token", th.StringType, secret=True, title="API token",
        description="Ticket Evolution API token (the `X-Token` header).",
    ),
    th.Property(
        "api_secret", th.StringType, secret=True, title="API secret",
        description="Secret that signs requests: One Degree writes, every Ticket Evolution "
        "request.",
    ),
    th.Property(
        "client_id", th.StringType, title="OAuth client id",
        description="Outreach OAuth app's client id (with `client_secret` and `refresh_token`: "
        "access tokens are refreshed before they expire and once on a 401).",
    ),
    th.Property(
        "client_secret", th.StringType, secret=True, title="OAuth client secret",
        description="Outreach OAuth app's client secret; sent to `oauth_token_url` only.",
    ),
    th.Property(
        "refresh_token", th.StringType, secret=True, title="OAuth refresh token",
        description="Outreach OAuth refresh token (README: Outreach: OAuth); sent to "
        "`oauth_token_url` only. A newer one kept in `token_cache_path` is used instead, "
        "unless this setting changed since it was kept.",
    ),
)

#: Where and how OAuth refreshes (Outreach).
OAUTH = (
    th.Property(
        "oauth_token_url", th.StringType, default=OUTREACH_TOKEN_URL,
        description="Outreach's OAuth token endpoint. https only, except http to "
        "127.0.0.1/localhost (the emulator) or with `allow_insecure_http`.",
    ),
    th.Property(
        "token_cache_path", th.StringType,
        description="File that keeps the refresh token Outreach rotates, for the next run "
        "(readable by the user alone; one file per plugin and account). Empty: kept for "
        "this run only.",
    ),
)

#: What the target does with a new number for a type slot a lead already holds (Activix).
TYPE_SLOT_CONFLICT = th.Property(
    "type_slot_conflict", th.StringType(allowed_values=["reject", "replace"]), default="reject",
    description="Activix holds one phone per type per lead. A record whose number is new "
    "to the lead, for a type the lead holds with another number: `reject` it (the held "
    "number stays), or `replace` the held phone's number with it (an update; for a sync or "
    "migration whose source is the truth). The same number with a new extension is always "
    "an update in place.",
)


def common_settings() -> list[th.Property]:
    """``provider``, ``api_url``, ``default_region`` and the credentials."""
    return [
        th.Property(
            "provider", th.StringType(allowed_values=list(DIALECTS)), default="outreach",
            description=f"The CRM API dialect: one of {', '.join(DIALECTS)}.",
        ),
        th.Property(
            "api_url", th.StringType,
            description="Base URL of the API; defaults to the provider's production URL. "
            "Plain http:// is accepted only for loopback addresses (the emulator).",
        ),
        *CREDENTIALS,
        *OAUTH,
        th.Property(
            "allow_insecure_http", th.BooleanType, default=False,
            description="Accept a plain http:// `api_url` (or `oauth_token_url`) on a host that "
            "is not loopback (the credentials then cross the network in clear). Off: only https, or http to "
            "127.0.0.1/localhost (the emulator).",
        ),
        th.Property(
            "max_requests_per_minute", th.IntegerType,
            description="Client-side pacing of API calls. Defaults to just under the provider's "
            "documented limit (Activix: 190, under its 200 a minute; Outreach: 165, 99% of its "
            "10,000 an hour, or of the hourly limit its X-RateLimit-Limit header shows); raise "
            "it when the CRM has granted the account more. 0 turns pacing off.",
        ),
        th.Property(
            "max_wait_seconds", th.NumberType,
            description="Longest pause the run accepts when the API asks it to wait (a "
            "Retry-After or X-RateLimit-Reset: Outreach's hourly quota can be an hour away). "
            "Every request waits for the pause, none is given up, and a line says until when. "
            "A longer wait asked for gives the request up instead (the next run sends it). "
            "Empty: wait as long as the API says.",
        ),
        th.Property(
            "max_concurrency", th.IntegerType, default=8,
            description="Requests in flight at once: writes to different owners, and reads "
            "of child collections (one parent's list each). The pacing and the API's "
            "rate-limit answers still cap the request rate. 1: one request at a time.",
        ),
        th.Property(
            "phone_normalizer", th.StringType(allowed_values=list(BACKENDS)),
            default="phonenumbers",
            description="Library that parses and validates numbers: `phonenumbers`, or "
            "`rphonenumbers`, the same API on libphonenumber's Rust port, faster (`pip install "
            "crmphones[fast]`). rphonenumbers ships older metadata than phonenumbers: their "
            "results match only when the metadata versions do.",
        ),
        th.Property(
            "default_region", th.StringType, default="US",
            description="ISO 3166 alpha-2 region assumed for numbers written without a "
            "country code.",
        ),
    ]


def dialect_for(config: Mapping[str, t.Any]) -> Dialect:
    """Check the settings and build the configured dialect.

    Raises:
        ConfigError: with one line saying which setting to fix.
    """
    cls = get_dialect(config.get("provider") or "outreach")
    missing = cls.check_settings(config)
    if missing:
        raise ConfigError(missing)
    allow_http = bool(config.get("allow_insecure_http"))
    _check_api_url(config.get("api_url"), allow_http=allow_http)
    if config.get("refresh_token"):  # the refresh token and client secret travel there
        _check_api_url(config.get("oauth_token_url"), allow_http=allow_http,
                       setting="oauth_token_url")
    use_backend(config.get("phone_normalizer"))
    return cls(config)


def _check_api_url(api_url: str | None, *, allow_http: bool = False,
                   setting: str = "api_url") -> None:
    """Refuse plain http:// except to loopback: tokens must not cross a network in clear."""
    if not api_url:
        return
    parts = urllib.parse.urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"setting `{setting}` must be an http(s) URL, got {api_url!r}"
        raise ConfigError(msg)
    if parts.scheme == "http":
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback and not allow_http:
            msg = (f"setting `{setting}` uses plain http to {host}; use https (or set "
                   "`allow_insecure_http` if you mean it)")
            raise ConfigError(msg)
