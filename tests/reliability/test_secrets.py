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
from tests.entry_points import run_target
from tests.reliability.conftest import DESTINATIONS, SECRET, TOKEN, serve, singer_input

if t.TYPE_CHECKING:
    import pathlib


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
def test_no_secret_in_any_output(dialect: str, workdir: pathlib.Path) -> None:
    """Credentials with characters a URL encodes, an API that quotes each refused request
    (its query and headers) in its error's text, injected server errors and dropped
    responses, and one write refused for its content: no credential, as sent or URL-encoded,
    is in stderr, stdout, the ledger (every table, and the file's bytes) or any report file,
    and the reject reason keeps the API's words. Then a run with wrong credentials: the
    refusal is reported, the credential not echoed (the wrong ones begin with the right ones).

    This was two tests, one under faults with plain credentials and one with the quoting
    API; each run now does both at once, so every injected error quotes its request too."""
    server = serve(dialect, faults=Faults(error_rate=0.2, drop_rate=0.05, seed=2))
    app = server.app
    if dialect == "onedegree":
        app.configure({"api_key": ODD_TOKEN, "api_secret": ODD_SECRET})
    elif dialect == "ticketevolution":
        app.configure({"token": ODD_TOKEN, "secret": ODD_SECRET})
    else:
        app.configure({"token": ODD_TOKEN})
    server.faults.quote_request_in_errors = True
    kind = get_dialect(dialect).parent_types[0]
    lines = singer_input(dialect, 120, state_every=40)
    lines.append(json.dumps({"type": "RECORD", "stream": "phones", "record": {  # no owner: refused
        "parent_type": kind, "parent_id": "999999", "number": "+12125550199"}}))
    settings = {key: {TOKEN: ODD_TOKEN, SECRET: ODD_SECRET}.get(value, value)
                for key, value in DESTINATIONS[dialect].settings(server.url).items()}
    settings |= {"staging_path": str(workdir / "ledger.duckdb"),
                 "report_dir": str(workdir / "reports")}
    wrong = {key: (f"{value}-wrong" if value in (ODD_TOKEN, ODD_SECRET) else value)
             for key, value in settings.items()}
    try:
        result = run_target(settings, lines, workdir, in_process=False)
        refused = run_target(wrong, lines, workdir, in_process=False)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    assert refused.returncode != 0, refused.stderr[-3000:]
    assert sum(r.fault is not None for r in server.requests) > 0, "no fault was injected"
    reports = [path for path in (workdir / "reports").iterdir() if path.is_file()]
    assert {path.suffix for path in reports} == {".md", ".json", ".csv"}
    ledger = _ledger_text(workdir / "ledger.duckdb")
    assert "in answer to POST" in ledger  # the API's quote reached the reject reason
    texts = {"stderr": result.stderr + refused.stderr, "stdout": result.stdout + refused.stdout,
             "ledger": ledger}
    # The config file itself holds them, by design.
    texts |= {str(path): path.read_bytes().decode("latin-1") for path in workdir.rglob("*")
              if path.is_file() and path.name != "target.json"}
    for name, text in texts.items():
        for secret in (ODD_TOKEN, ODD_SECRET):
            leaked = [form for form in _forms(secret) if form in text]
            assert not leaked, (name, leaked)


CLIENT_SECRET = "oauth-client-s3cr3t"
REFRESH = "oauth+refresh/s3cr3t"


def test_no_oauth_credential_in_any_output(workdir: pathlib.Path) -> None:
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
    cache = workdir / "cache" / "outreach-token.json"
    settings = {"provider": "outreach", "api_url": f"{server.url}/api/v2",
                "client_id": "emulator-client", "client_secret": CLIENT_SECRET,
                "refresh_token": REFRESH, "oauth_token_url": f"{server.url}/oauth/token",
                "token_cache_path": str(cache), "staging_path": str(workdir / "ledger.duckdb"),
                "report_dir": str(workdir / "reports"),
                # Pacing off, as for every other account here: the default paces Outreach's
                # writes under its hourly quota, which is no part of what this test is about.
                "max_requests_per_minute": 0}
    try:
        done = run_target(settings, lines, workdir, in_process=False)
        refused = run_target({**settings, "refresh_token": "not-" + REFRESH}, lines,
                             workdir, in_process=False)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    assert refused.returncode != 0 and "invalid_grant" in refused.stderr
    assert "`refresh_token`" in refused.stderr
    ledger = _ledger_text(workdir / "ledger.duckdb")
    assert "in answer to POST" in ledger  # the API's quote, with its headers, reached the ledger
    secrets = {CLIENT_SECRET, REFRESH, "not-" + REFRESH, *server.app.access_tokens,
               *server.app.refresh_tokens}
    assert len(server.app.access_tokens) >= 1 and len(server.app.refresh_tokens) >= 2
    texts = {"stderr": done.stderr + refused.stderr, "stdout": done.stdout + refused.stdout,
             "ledger": ledger}
    texts |= {str(path): path.read_bytes().decode("latin-1") for path in workdir.rglob("*")
              if path.is_file() and path.name != "target.json" and path != cache}
    for name, text in texts.items():
        for secret in secrets:
            leaked = [form for form in _forms(secret) if form in text]
            assert not leaked, (name, leaked)
