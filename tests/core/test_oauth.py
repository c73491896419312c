"""Outreach OAuth refresh (``crmphones.auth.OAuthBearer``) against the emulator's token
endpoint, over loopback, in simulated time: the plugin's clients and the emulator share one
`FakeClock`, so token lifetimes and the one-mint-a-minute window pass at once. What the
client did is read from the emulator's request log (the token endpoint's path and status)."""

from __future__ import annotations

import itertools
import json
import stat
import threading
import typing as t

import httpx
import pytest

from crmphones.clock import FakeClock
from crmphones.errors import AuthError, ConfigError
from crmphones.http import AbortedError
from crmphones.settings import dialect_for
from crmphones_emulators import EmulatorServer, Faults
from crmphones_emulators.outreach import OutreachApp
from tests.tap.conftest import run_tap

if t.TYPE_CHECKING:
    import pathlib
    from collections.abc import Iterator

    from crmphones.dialects.outreach import Outreach
    from crmphones_emulators.server import LoggedRequest

FIXED = "oauth-fixed-access-s3cr3t"
CLIENT_SECRET = "oauth-client-s3cr3t"
REFRESH = "oauth-refresh-s3cr3t"
MEDIA = "application/vnd.api+json"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """One simulated clock for the plugin's clients and the emulator."""
    fake = FakeClock()
    monkeypatch.setattr("crmphones.clock.DEFAULT_CLOCK", fake)
    return fake


@pytest.fixture(scope="module")
def _running() -> Iterator[EmulatorServer]:
    with EmulatorServer(OutreachApp(records=0, parents=4)) as running:
        yield running


@pytest.fixture
def server(_running: EmulatorServer, clock: FakeClock) -> EmulatorServer:
    """The module's server with a fresh account on the test's clock."""
    _running.app = OutreachApp(records=0, parents=20, seed=3, token=FIXED,
                               client_secret=CLIENT_SECRET, refresh_token=REFRESH, clock=clock)
    _running.clock = clock
    _running.requests.clear()
    return _running


def _config(server: EmulatorServer, **extra: t.Any) -> dict[str, t.Any]:
    return {"provider": "outreach", "api_url": f"{server.url}/api/v2",
            "client_id": "emulator-client", "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH, "oauth_token_url": f"{server.url}/oauth/token",
            "max_requests_per_minute": 0, **extra}


def _outreach(config: dict[str, t.Any]) -> Outreach:
    return t.cast("Outreach", dialect_for(config))


def _mints(server: EmulatorServer) -> list[LoggedRequest]:
    return [r for r in server.requests if r.path == "/oauth/token"]


def _trace(server: EmulatorServer) -> list[tuple[str, int]]:
    """(token or api, status) of each request, in arrival order."""
    return [("token" if r.path == "/oauth/token" else "api", r.status)
            for r in sorted(server.requests, key=lambda r: r.at)]


def _write(dialect: Outreach, n: int) -> None:
    body = {"data": {"type": "phoneNumber", "attributes": {"number": f"+1212555{n:04d}"},
                     "relationships": {"prospect": {"data": {"type": "prospect",
                                                             "id": 1 + n % 20}}}}}
    assert dialect.client.send_json("POST", "phoneNumbers", body, media_type=MEDIA).refused is None


def test_refreshes_shortly_before_expiry(server: EmulatorServer, clock: FakeClock) -> None:
    """A token living 600 s is used for 540 s (a tenth of its life before the end), then
    replaced before any request meets its expiry: no 401."""
    server.app.configure({"token_lifetime": 600})
    dialect = _outreach(_config(server))
    try:
        dialect.client.get_json("prospects/1")
        clock.advance(530)
        dialect.client.get_json("prospects/1")
        clock.advance(15)
        dialect.client.get_json("prospects/1")
        assert _trace(server) == [("token", 200), ("api", 200), ("api", 200), ("token", 200),
                                  ("api", 200)]
        assert dialect.oauth is not None and dialect.oauth.refreshes == 2
    finally:
        dialect.close()


def test_a_401_refreshes_once_and_a_second_401_stops(server: EmulatorServer,
                                                     clock: FakeClock) -> None:
    """A configured access token is used until refused; the 401 mints a token and the request
    is sent again. When the new token is refused too, the run stops naming the settings."""
    server.app.configure({"fixed_token_lifetime": 100})
    dialect = _outreach(_config(server, access_token=FIXED))
    try:
        dialect.client.get_json("prospects/1")
        clock.advance(150)
        assert dialect.client.get_json("prospects/2")["data"]["id"] == 2
        assert _trace(server) == [("api", 200), ("api", 401), ("token", 200), ("api", 200)]
        server.app.access_tokens.clear()  # the user revoked the app's tokens...
        server.app.configure({"token_lifetime": 0})  # ...and new ones are refused at once
        clock.advance(100)
        server.requests.clear()
        with pytest.raises(AuthError) as refused:
            dialect.client.get_json("prospects/3")
        assert _trace(server) == [("api", 401), ("token", 200), ("api", 401)]
    finally:
        dialect.close()
    message = str(refused.value)
    assert "`refresh_token`" in message and "`client_secret`" in message
    assert "\n" not in message
    assert not any(secret in message for secret in (FIXED, CLIENT_SECRET, REFRESH))


@pytest.mark.parametrize("revoke_on_refresh", [False, True])
def test_one_refresh_however_many_writers(server: EmulatorServer, clock: FakeClock,
                                          revoke_on_refresh: bool) -> None:
    """Eight threads writing at once need a token, then find it stale, then have it refused:
    each time one mint serves them all. With a server that revokes the old tokens at a mint,
    a write refused for a token already replaced is resent with the new one, without a mint."""
    server.app.configure({"fixed_token_lifetime": 100, "token_lifetime": 600,
                          "revoke_on_refresh": revoke_on_refresh})
    dialect = _outreach(_config(server, access_token=FIXED))
    writers = 8
    gate = threading.Barrier(writers)

    def writes(first: int) -> None:
        gate.wait()
        for n in range(first, first + 3):
            _write(dialect, n)

    def together() -> None:
        threads = [threading.Thread(target=writes, args=(10 * i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    try:
        together()  # the configured token: no mint
        clock.advance(150)
        together()  # every thread's first write is refused (401): one mint
        clock.advance(570)
        together()  # the minted token is stale: one mint before any write
    finally:
        dialect.close()
    assert [r.status for r in _mints(server)] == [200, 200]
    created = [r for r in server.requests if r.method == "POST" and r.path.endswith("Numbers")]
    assert sum(r.status == 201 for r in created) == 3 * 3 * writers
    assert len(server.app.snapshot()["phoneNumbers"]) == 3 * 3 * writers


def test_never_more_than_one_mint_a_minute(server: EmulatorServer, clock: FakeClock) -> None:
    """Tokens living 30 s, a request every 10 s: mints are a minute apart (the stale token is
    used while it lives, then the client waits): no 401, no 429."""
    server.app.configure({"token_lifetime": 30})
    dialect = _outreach(_config(server))
    try:
        for _ in range(60):
            dialect.client.get_json("prospects/1")
            clock.advance(10)
    finally:
        dialect.close()
    mints = [r for r in _mints(server) if r.status == 200]
    gaps = [b.at - a.at for a, b in itertools.pairwise(mints)]
    assert len(mints) >= 10 and min(gaps) >= 60, gaps
    assert not [r for r in server.requests if r.status in (401, 429)]
    assert dialect.oauth is not None and dialect.oauth.waited_seconds > 0


def test_a_stopping_run_stops_waiting_for_the_mint_interval(server: EmulatorServer,
                                                            clock: FakeClock) -> None:
    """The token has expired and the next mint is half a minute away: a run told to stop
    does not wait for it."""
    server.app.configure({"token_lifetime": 30})
    dialect = _outreach(_config(server))
    try:
        dialect.client.get_json("prospects/1")
        clock.advance(31)
        dialect.client.abort()
        assert dialect.oauth is not None
        with pytest.raises(AbortedError, match="stopped waiting for a token"):
            dialect.oauth.token()
    finally:
        dialect.close()
    assert len(_mints(server)) == 1


def test_a_mint_made_elsewhere_is_waited_out(server: EmulatorServer, clock: FakeClock) -> None:
    """The emulator refuses a second mint within its minute (429, Retry-After): the client
    waits for it instead of failing."""
    server.app.configure({"rotation": "same"})
    taken = httpx.post(f"{server.url}/oauth/token", timeout=5, data={
        "client_id": "emulator-client", "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token", "refresh_token": REFRESH})
    assert taken.status_code == 200
    clock.advance(20)
    dialect = _outreach(_config(server))
    try:
        dialect.client.get_json("prospects/1")
    finally:
        dialect.close()
    assert [r.status for r in _mints(server)] == [200, 429, 200]
    first, _, minted = _mints(server)
    assert minted.at - first.at >= 60


@pytest.mark.parametrize("rotation", ["rotate", "rotate-keep-old", "same", "omit"])
def test_rotated_refresh_token_is_kept_for_the_next_run(server: EmulatorServer,
                                                        clock: FakeClock, tmp_path: pathlib.Path,
                                                        rotation: str) -> None:
    """The refresh token a mint answers is kept in `token_cache_path` (0600, written whole)
    and used by the next run: with rotation, the configured one is refused by then."""
    server.app.configure({"rotation": rotation})
    cache = tmp_path / "tokens" / "outreach.json"
    config = _config(server, token_cache_path=str(cache))
    for _ in range(3):  # three runs, a day apart
        dialect = _outreach(config)
        try:
            dialect.client.get_json("prospects/1")
        finally:
            dialect.close()
        clock.advance(86_400)
    assert [r.status for r in _mints(server)] == [200, 200, 200]
    if rotation.startswith("rotate"):
        kept = json.loads(cache.read_text())["refresh_token"]
        assert kept in server.app.refresh_tokens and kept != REFRESH
        assert stat.S_IMODE(cache.stat().st_mode) == 0o600
        assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary left
    else:
        assert not cache.exists()  # nothing new to keep


def test_a_pasted_refresh_token_wins_over_the_cached_one(server: EmulatorServer,
                                                         clock: FakeClock,
                                                         tmp_path: pathlib.Path) -> None:
    """A user who authorized again and set the new refresh token gets it used, though the
    cache holds one from the old: the setting changed since the cache was written."""
    cache = tmp_path / "outreach.json"
    dialect = _outreach(_config(server, token_cache_path=str(cache)))
    try:
        dialect.client.get_json("prospects/1")
    finally:
        dialect.close()
    cached = json.loads(cache.read_text())["refresh_token"]
    server.app.configure({"refresh_token": "pasted-refresh-s3cr3t"})
    clock.advance(3600)
    dialect = _outreach(_config(server, token_cache_path=str(cache),
                                refresh_token="pasted-refresh-s3cr3t"))
    try:
        dialect.client.get_json("prospects/1")
    finally:
        dialect.close()
    assert "pasted-refresh-s3cr3t" not in server.app.refresh_tokens  # it was the one used
    assert cached in server.app.refresh_tokens  # the cached one was not
    assert json.loads(cache.read_text())["refresh_token"] in server.app.refresh_tokens


@pytest.mark.parametrize("cached", [False, True])
def test_invalid_grant_is_one_line_naming_refresh_token(server: EmulatorServer,
                                                        clock: FakeClock, tmp_path: pathlib.Path,
                                                        cached: bool) -> None:
    """A refresh token already used (or revoked) stops the run with one line that names the
    setting to fix and shows no credential."""
    cache = tmp_path / "outreach.json"
    config = _config(server, token_cache_path=str(cache))
    if cached:  # a run keeps the rotated token; then someone else spends it
        first = _outreach(config)
        first.client.get_json("prospects/1")
        first.close()
        spent = json.loads(cache.read_text())["refresh_token"]
        clock.advance(60)
    else:
        spent = REFRESH
    assert httpx.post(f"{server.url}/oauth/token", timeout=5, data={
        "client_id": "emulator-client", "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token", "refresh_token": spent}).status_code == 200
    clock.advance(60)
    dialect = _outreach(config)
    try:
        with pytest.raises(AuthError) as refused:
            dialect.client.get_json("prospects/1")
    finally:
        dialect.close()
    message = str(refused.value)
    assert "invalid_grant" in message and "`refresh_token`" in message and "\n" not in message
    assert ("`token_cache_path`" in message) is cached
    assert not any(s in message for s in (spent, REFRESH, CLIENT_SECRET))


def test_oauth_settings_are_checked() -> None:
    """OAuth needs all three of its settings; the token URL follows api_url's https rule."""
    base = {"provider": "outreach", "api_url": "https://api.example.com/api/v2"}
    with pytest.raises(ConfigError, match="`client_secret`"):
        dialect_for({**base, "refresh_token": "r", "client_id": "c"})
    with pytest.raises(ConfigError, match="`access_token` \\(or `refresh_token`"):
        dialect_for(base)
    oauth = {**base, "refresh_token": "r", "client_id": "c", "client_secret": "s"}
    with pytest.raises(ConfigError, match=r"`oauth_token_url` uses plain http to auth\.example"):
        dialect_for({**oauth, "oauth_token_url": "http://auth.example.com/oauth/token"})
    dialect_for({**oauth, "oauth_token_url": "http://127.0.0.1:9/oauth/token"}).close()
    dialect_for(oauth).close()  # the default: https://api.outreach.io/oauth/token
    dialect_for({**base, "access_token": "a"}).close()


@pytest.mark.slow
def test_a_real_time_run_outlives_its_token() -> None:
    """A token's lifetime in real time: the tap starts with an access token that the
    emulator lets live 2 s and reads for longer than that (a 100 ms answer time, small
    pages). The token is refused mid-run, refreshed once, and every phone is read."""
    app = OutreachApp(records=300, parents=150, seed=3, token=FIXED, client_secret=CLIENT_SECRET,
                      refresh_token=REFRESH, fixed_token_lifetime=2.0)
    with EmulatorServer(app, faults=Faults(latency_ms=100)) as running:
        app.reset()  # the token's 2 s start now
        phones = run_tap(_config(running, access_token=FIXED, page_size=10)).records
        trace = _trace(running)
    assert len(phones["phone_numbers"]) == 300
    assert trace[0] == ("api", 200) and trace[-1] == ("api", 200)
    assert [entry for entry in trace if entry[0] == "token"] == [("token", 200)]
    # Refused once each: the requests in flight when the token expired (a page read ahead).
    assert 1 <= trace.count(("api", 401)) <= 2
    assert set(trace) == {("api", 200), ("api", 401), ("token", 200)}
