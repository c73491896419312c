"""Settings shared by the tap and the target, and the dialect they select."""

from __future__ import annotations

import ipaddress
import typing as t
import urllib.parse

from singer_sdk import typing as th

from crmphones.dialects import DIALECTS, get_dialect
from crmphones.errors import ConfigError

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from crmphones.dialects.base import Dialect

__all__ = ["common_settings", "dialect_for"]


def common_settings() -> list[th.Property]:
    """``provider``, ``api_url``, ``default_region`` and every dialect's credentials."""
    credentials: dict[str, th.Property] = {}
    for name in DIALECTS:
        for prop in get_dialect(name).settings:
            credentials.setdefault(prop.name, prop)
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
        *credentials.values(),
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
    for prop in cls.settings:
        if prop.secret and not config.get(prop.name):
            msg = f"setting `{prop.name}` is required for provider {cls.name}"
            raise ConfigError(msg)
    _check_api_url(config.get("api_url"))
    return cls(config)


def _check_api_url(api_url: str | None) -> None:
    """Refuse plain http:// except to loopback: tokens must not cross a network in clear."""
    if not api_url:
        return
    parts = urllib.parse.urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"setting `api_url` must be an http(s) URL, got {api_url!r}"
        raise ConfigError(msg)
    if parts.scheme == "http":
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            msg = f"setting `api_url` uses plain http to {host}; use https"
            raise ConfigError(msg)
