"""Secrets never appear in logs, state, the DuckDB ledger or the run report, even when the
API fails and errors are logged."""

from __future__ import annotations

import json
import re
import typing as t
import urllib.parse

import duckdb
import pytest

from crmphones.dialects import get_dialect
from crmphones_emulators import Faults
from tests.reliability.conftest import DESTINATIONS, SECRET, TOKEN, run_target, serve, singer_input

if t.TYPE_CHECKING:
    import pathlib


@pytest.mark.parametrize("dialect", list(DESTINATIONS))
def test_no_secret_in_any_output(dialect: str, tmp_path: pathlib.Path) -> None:
    lines = singer_input(dialect, 120, state_every=40)
    server = serve(dialect, faults=Faults(error_rate=0.2, drop_rate=0.05, seed=2))
    outputs: list[str | bytes] = []
    try:
        for token_ok in (True, False):
            settings: dict[str, t.Any] = {**DESTINATIONS[dialect].settings(server.url),
                                          "staging_path": str(tmp_path / "ledger.duckdb"),
                                          "report_dir": str(tmp_path / "reports")}
            if not token_ok:  # a refused credential is reported, not echoed
                settings = {k: (f"{v}-wrong" if v in (TOKEN, SECRET) else v)
                            for k, v in settings.items()}
            result = run_target(settings, lines, tmp_path)
            outputs += [result.stdout, result.stderr]
    finally:
        server.stop()
    outputs += [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()
                and path.name != "target.json"]  # the config file itself holds them, by design
    for output in outputs:
        text = output if isinstance(output, str) else output.decode("latin-1")
        assert TOKEN not in text
        assert SECRET not in text


#: Credentials with characters a URL encodes (``+``, ``/``, a space): an API quoting its
#: request line quotes One Degree's ``api_key`` encoded (``tok%2Ben%2F...+key``).
ODD_TOKEN = "tok+en/s3cr3t key"
ODD_SECRET = "sec+ret/s3cr3t key"


def _forms(secret: str) -> set[str]:
    """The secret as sent and as each usual URL encoding writes it."""
    forms = {secret} | {quote(secret, safe=safe) for quote in (urllib.parse.quote,
                                                                urllib.parse.quote_plus)
                        for safe in ("", "/")}
    return forms | {re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in forms}


def _ledger_text(path: pathlib.Path) -> str:
    """Every row of every table in a DuckDB file, as text (the file itself may compress it)."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [name for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()]
        return "\n".join(str(con.execute(f'SELECT * FROM "{name}"').fetchall())
                         for name in tables)


@pytest.mark.parametrize("dialect", list(DESTINATIONS))
def test_an_api_quoting_its_request_in_errors_leaks_no_secret(dialect: str,
                                                              tmp_path: pathlib.Path) -> None:
    """The emulator quotes each refused request (its query and headers) in the error's text;
    the reject reason keeps the API's words, with every credential, as sent or URL-encoded,
    replaced in stderr, the ledger and every report file."""
    server = serve(dialect)
    app = server.app
    if dialect == "onedegree":
        app.configure({"api_key": ODD_TOKEN, "api_secret": ODD_SECRET})
    elif dialect == "ticketevolution":
        app.configure({"token": ODD_TOKEN, "secret": ODD_SECRET})
    else:
        app.configure({"token": ODD_TOKEN})
    server.faults.quote_request_in_errors = True
    kind = get_dialect(dialect).parent_types[0]
    lines = [json.dumps({"type": "SCHEMA", "stream": "phones", "key_properties": [],
                         "schema": {"type": "object", "properties": {}}})]
    lines += [json.dumps({"type": "RECORD", "stream": "phones", "record": {
        "parent_type": kind, "parent_id": parent, "number": f"+1212555{n:04d}"}})
        for n, parent in enumerate(("5", "999999", "6"))]  # no owner 999999: refused
    settings = {key: {TOKEN: ODD_TOKEN, SECRET: ODD_SECRET}.get(value, value)
                for key, value in DESTINATIONS[dialect].settings(server.url).items()}
    settings |= {"staging_path": str(tmp_path / "ledger.duckdb"),
                 "report_dir": str(tmp_path / "reports")}
    try:
        result = run_target(settings, lines, tmp_path)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [path for path in (tmp_path / "reports").iterdir() if path.is_file()]
    assert {path.suffix for path in reports} == {".md", ".json", ".csv"}
    ledger = _ledger_text(tmp_path / "ledger.duckdb")
    assert "in answer to POST" in ledger  # the API's quote reached the reject reason
    texts = {"stderr": result.stderr, "stdout": result.stdout, "ledger": ledger,
             "ledger file": (tmp_path / "ledger.duckdb").read_bytes().decode("latin-1")}
    texts |= {path.name: path.read_text() for path in reports}
    for name, text in texts.items():
        for secret in (ODD_TOKEN, ODD_SECRET):
            leaked = [form for form in _forms(secret) if form in text]
            assert not leaked, (name, leaked)


CLIENT_SECRET = "oauth-client-s3cr3t"
REFRESH = "oauth+refresh/s3cr3t"


def test_no_oauth_credential_in_any_output(tmp_path: pathlib.Path) -> None:
    """Outreach with OAuth refresh, an API that quotes each refused request (its Bearer token
    included) and injected faults: neither the client secret, nor the configured or any rotated
    refresh token, nor any minted access token appears in stderr, stdout, the ledger or the
    reports; then a refused refresh token is one line that shows none of them. Only the token
    cache (and the config file) hold a credential, by design."""
    server = serve("outreach", faults=Faults(error_rate=0.1, seed=4), client_secret=CLIENT_SECRET,
                   refresh_token=REFRESH, rotation="rotate-keep-old")  # every token stays known
    server.faults.quote_request_in_errors = True
    lines = singer_input("outreach", 40)
    lines.append(json.dumps({"type": "RECORD", "stream": "phones", "record": {
        "parent_type": "prospect", "parent_id": "999999", "number": "+12125550199"}}))
    cache = tmp_path / "cache" / "outreach-token.json"
    settings = {"provider": "outreach", "api_url": f"{server.url}/api/v2",
                "client_id": "emulator-client", "client_secret": CLIENT_SECRET,
                "refresh_token": REFRESH, "oauth_token_url": f"{server.url}/oauth/token",
                "token_cache_path": str(cache), "staging_path": str(tmp_path / "ledger.duckdb"),
                "report_dir": str(tmp_path / "reports")}
    try:
        done = run_target(settings, lines, tmp_path)
        refused = run_target({**settings, "refresh_token": "not-" + REFRESH}, lines, tmp_path)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    assert refused.returncode != 0 and "invalid_grant" in refused.stderr
    assert "`refresh_token`" in refused.stderr
    ledger = _ledger_text(tmp_path / "ledger.duckdb")
    assert "in answer to POST" in ledger  # the API's quote, with its headers, reached the ledger
    secrets = {CLIENT_SECRET, REFRESH, "not-" + REFRESH, *server.app.access_tokens,
               *server.app.refresh_tokens}
    assert len(server.app.access_tokens) >= 1 and len(server.app.refresh_tokens) >= 2
    texts = {"stderr": done.stderr + refused.stderr, "stdout": done.stdout + refused.stdout,
             "ledger": ledger}
    texts |= {str(path): path.read_bytes().decode("latin-1") for path in tmp_path.rglob("*")
              if path.is_file() and path.name != "target.json" and path != cache}
    for name, text in texts.items():
        for secret in secrets:
            leaked = [form for form in _forms(secret) if form in text]
            assert not leaked, (name, leaked)
