"""tap-crmphones against an emulated Ticket Evolution account: signed reads of clients' phones."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t

import httpx
from singer_sdk.testing import get_tap_test_class

from crmphones.auth import TicketEvolutionSigner
from crmphones_emulators import EmulatorServer
from crmphones_emulators.ticketevolution import TicketEvolutionApp
from tap_crmphones.tap import TapCRMPhones
from tests.conftest import SOURCE_SECRET, SOURCE_TOKEN, te_config
from tests.tap.conftest import every_stream_selected, run_tap

if t.TYPE_CHECKING:
    import pathlib

_SUITE_SERVER = EmulatorServer(TicketEvolutionApp(records=60, parents=30, seed=4, token=SOURCE_TOKEN,
                                                  secret=SOURCE_SECRET, rate_limit=100_000))
_SUITE_SERVER.start()
_SUITE_CONFIG = te_config(_SUITE_SERVER, SOURCE_TOKEN, SOURCE_SECRET)
TestTapTicketEvolutionStandard = get_tap_test_class(
    TapCRMPhones, config=_SUITE_CONFIG, catalog=every_stream_selected(_SUITE_CONFIG),
)


def test_every_client_phone_is_read_with_canonical_fields(te_source: EmulatorServer) -> None:
    """Phones come from the clients index (embedded), one request per page of 100 clients."""
    config = te_config(te_source, SOURCE_TOKEN, SOURCE_SECRET)
    run = run_tap(config, catalog=every_stream_selected(config))
    held = te_source.app.snapshot()
    phones = run.records["client_phone_numbers"]
    assert sorted(int(p["id"]) for p in phones) == [p["id"] for p in held["phone_numbers"]]
    assert len(run.records["clients"]) == len(held["clients"])
    by_id = {str(p["id"]): p for p in held["phone_numbers"]}
    for phone in phones:
        native = by_id[phone["id"]]
        assert phone["parent_type"] == "client"
        assert phone["parent_id"] == str(native["client_id"])
        assert phone["number"] == native["number"]
        assert phone["label"] == native["label"]
    primaries = {p["parent_id"] for p in phones if p["is_primary"]}
    assert primaries == {str(p["client_id"]) for p in held["phone_numbers"] if p["is_primary"]}
    assert any(p["is_valid"] for p in phones)
    assert any(not p["is_valid"] for p in phones)
    per_client = [r for r in te_source.requests if "/phone_numbers" in r.path]
    assert per_client == [], "embedded phones are complete: no per-client request"


def test_incremental_on_client_updated_at(te_source: EmulatorServer) -> None:
    """The bookmark is the client's updated_at; a phone edited later is read again."""
    config = te_config(te_source, SOURCE_TOKEN, SOURCE_SECRET)
    first = run_tap(config)
    bookmark = first.state["bookmarks"]["client_phone_numbers"]["replication_key_value"]
    second = run_tap(config, state=first.state)
    assert all(p["client_updated_at"] >= bookmark
               for p in second.records.get("client_phone_numbers", []))

    phone = te_source.app.snapshot()["phone_numbers"][0]
    url = f"{te_source.url}/v9/clients/{phone['client_id']}/phone_numbers/{phone['id']}"
    body = json.dumps({"label": "Box office"}).encode()
    response = httpx.put(url, content=body, headers={"Content-Type": "application/json"},
                         auth=TicketEvolutionSigner(SOURCE_TOKEN, SOURCE_SECRET))
    assert response.status_code == 200, response.text
    third = run_tap(config, state=first.state)
    read = {p["id"]: p for p in third.records["client_phone_numbers"]}
    assert read[str(phone["id"])]["label"] == "Box office"


def test_wrong_secret_fails_fast(te_source: EmulatorServer, tmp_path: pathlib.Path) -> None:
    """A signature the API refuses stops the tap with one line naming the settings."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(te_config(te_source, SOURCE_TOKEN, "not-the-secret")))
    result = subprocess.run(
        [sys.executable, "-m", "tap_crmphones", "--config", str(config_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert "`api_token` and `api_secret`" in result.stderr
    assert "Traceback" not in result.stderr
    assert "not-the-secret" not in result.stderr + result.stdout
    assert len(te_source.requests) == 1
