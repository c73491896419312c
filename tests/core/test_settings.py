"""Settings checks that protect credentials."""

from __future__ import annotations

import pytest

from crmphones.errors import ConfigError
from crmphones.settings import dialect_for


def _outreach(api_url: str, **extra: object) -> dict[str, object]:
    return {"provider": "outreach", "access_token": "a-token", "api_url": api_url, **extra}


def test_plain_http_only_to_loopback_unless_allowed() -> None:
    with pytest.raises(ConfigError, match=r"plain http to crm\.example\.com"):
        dialect_for(_outreach("http://crm.example.com/api/v2"))
    dialect_for(_outreach("http://crm.example.com/api/v2", allow_insecure_http=True)).close()
    dialect_for(_outreach("http://127.0.0.1:8765/api/v2")).close()
    dialect_for(_outreach("https://crm.example.com/api/v2")).close()


def test_wrong_provider_and_missing_credential_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="api_secret"):
        dialect_for({"provider": "ticketevolution", "api_token": "t"})
    with pytest.raises(ConfigError, match="outreach"):
        dialect_for({"provider": "hubspot"})
