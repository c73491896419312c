"""tap-crmphones against an emulated Outreach account: the SDK's standard suite and ours."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t

import httpx
from singer_sdk.testing import get_tap_test_class

from crmphones.phones import PHONE_TYPES
from crmphones_emulators import EmulatorServer
from crmphones_emulators.outreach import OutreachApp
from tap_crmphones.tap import TapCRMPhones
from tests.conftest import SOURCE_TOKEN, outreach_config
from tests.tap.conftest import every_stream_selected, run_tap

if t.TYPE_CHECKING:
    import pathlib

# The standard suite is built when the module is imported, so its emulator lives as long.
_SUITE_SERVER = EmulatorServer(OutreachApp(records=120, parents=40, seed=3, token=SOURCE_TOKEN))
_SUITE_SERVER.start()

_SUITE_CONFIG = outreach_config(_SUITE_SERVER, SOURCE_TOKEN, start_date="2000-01-01T00:00:00Z")
TestTapOutreachStandard = get_tap_test_class(
    TapCRMPhones, config=_SUITE_CONFIG, catalog=every_stream_selected(_SUITE_CONFIG),
)


def _run_tap(config: dict[str, t.Any], state: dict[str, t.Any] | None = None
             ) -> tuple[list[dict], list[dict]]:
    run = run_tap(config, state)
    return run.records.get("phone_numbers", []), run.state


def test_every_phone_is_read_with_canonical_fields(outreach_source: EmulatorServer) -> None:
    """Every phone of the account arrives once, normalized, with its native record kept."""
    records, _ = _run_tap(outreach_config(outreach_source, SOURCE_TOKEN))
    held = outreach_source.app.snapshot()["phoneNumbers"]
    assert sorted(r["id"] for r in records) == sorted(str(p["id"]) for p in held)
    by_id = {str(p["id"]): p for p in held}
    for record in records:
        native = by_id[record["id"]]
        assert record["provider"] == "outreach"
        assert record["parent_type"] == "prospect"
        assert record["raw"]["attributes"] == native["attributes"]
        assert record["phone_type"] in PHONE_TYPES
        assert record["is_valid"] is (record["e164"] is not None)
    valid = [r for r in records if r["is_valid"]]
    assert valid, "the seeded account holds valid numbers"
    assert all(r["e164"].startswith("+") for r in valid)
    assert any(not r["is_valid"] for r in records), "the seeded account holds junk too"


def test_incremental_resumes_from_bookmark(outreach_source: EmulatorServer) -> None:
    """A second run from the saved state reads only what changed (plus the bookmark's ties)."""
    config = outreach_config(outreach_source, SOURCE_TOKEN)
    first, state = _run_tap(config)
    bookmark = state["bookmarks"]["phone_numbers"]["replication_key_value"]
    assert bookmark == max(r["updated_at"] for r in first)

    second, _ = _run_tap(config, state=state)
    assert {r["updated_at"] for r in second} == {bookmark}  # only the inclusive boundary

    # A change made after the first run is picked up.
    phone = outreach_source.app.snapshot()["phoneNumbers"][0]
    response = _patch(outreach_source, phone["id"], {"phoneType": "home"})
    assert response == 200
    third, _ = _run_tap(config, state=state)
    assert str(phone["id"]) in {r["id"] for r in third}


def _patch(server: EmulatorServer, phone_id: int, attributes: dict[str, t.Any]) -> int:
    body = {"data": {"type": "phoneNumber", "id": phone_id, "attributes": attributes}}
    response = httpx.patch(
        f"{server.url}/api/v2/phoneNumbers/{phone_id}", content=json.dumps(body),
        headers={"Authorization": f"Bearer {SOURCE_TOKEN}",
                 "Content-Type": "application/vnd.api+json"},
    )
    return response.status_code


def test_a_run_closes_its_connections(outreach_source: EmulatorServer,
                                      tmp_path: pathlib.Path) -> None:
    """The command ends with its connections closed: no ResourceWarning in development mode."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(outreach_config(outreach_source, SOURCE_TOKEN)))
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-m", "tap_crmphones", "--config", str(config_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"type":"RECORD"' in result.stdout.replace(" ", "")
    assert "ResourceWarning" not in result.stderr, result.stderr[-2000:]


def test_bad_token_fails_fast_with_setting_name(
    outreach_source: EmulatorServer, tmp_path: pathlib.Path
) -> None:
    """A wrong token stops the tap at once with one line naming the setting."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(outreach_config(outreach_source, "wrong-token")))
    result = subprocess.run(
        [sys.executable, "-m", "tap_crmphones", "--config", str(config_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert "check the `access_token` setting" in result.stderr
    assert "Traceback" not in result.stderr
    assert "wrong-token" not in result.stderr + result.stdout
    requests = [r for r in outreach_source.requests if r.path.startswith("/api/v2")]
    assert len(requests) == 1, "401 is not retried"


def test_unreachable_api_url_is_one_line(tmp_path: pathlib.Path) -> None:
    """Nothing listening: bounded retries, then one line naming `api_url`, exit code 1."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"provider": "outreach", "access_token": "a-long-token",
                                       "api_url": f"http://127.0.0.1:{port}/api/v2"}))
    result = subprocess.run(
        [sys.executable, "-m", "tap_crmphones", "--config", str(config_file)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].endswith("check the `api_url` setting")
    assert "Traceback" not in result.stderr
