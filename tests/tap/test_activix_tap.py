"""tap-crmphones against an emulated Activix account: phones read through leads."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING

import httpx
from singer_sdk.testing import get_tap_test_class

from crmphones.clock import FakeClock
from crmphones_emulators import EmulatorServer
from crmphones_emulators.activix import ActivixApp
from tap_crmphones.tap import TapCRMPhones
from tests.conftest import SOURCE_TOKEN, activix_config
from tests.tap.conftest import every_stream_selected, run_tap

if TYPE_CHECKING:
    import pytest

# The standard suite is built when the module is imported, so its emulator lives as long.
_SUITE_SERVER = EmulatorServer(ActivixApp(records=60, parents=30, seed=4, token=SOURCE_TOKEN,
                                          rate_limit=100_000))
_SUITE_SERVER.start()

_SUITE_CONFIG = activix_config(_SUITE_SERVER, SOURCE_TOKEN)
TestTapActivixStandard = get_tap_test_class(
    TapCRMPhones, config=_SUITE_CONFIG, catalog=every_stream_selected(_SUITE_CONFIG),
)


def test_every_lead_phone_is_read_with_canonical_fields(activix_source: EmulatorServer) -> None:
    """Each phone embedded in each lead arrives once, typed, with its lead and native record."""
    config = activix_config(activix_source, SOURCE_TOKEN)
    run = run_tap(config, catalog=every_stream_selected(config))
    held = activix_source.app.snapshot()
    phones = run.records["lead_phones"]
    assert sorted(int(p["id"]) for p in phones) == [p["id"] for p in held["lead_phones"]]
    assert sorted(int(lead["id"]) for lead in run.records["leads"]) == [
        lead["id"] for lead in held["leads"]]
    by_id = {str(p["id"]): p for p in held["lead_phones"]}
    for phone in phones:
        native = by_id[phone["id"]]
        assert phone["provider"] == "activix"
        assert phone["parent_type"] == "lead"
        assert phone["parent_id"] == str(native["lead_id"])
        assert phone["label"] == native["type"]
        assert phone["phone_type"] == native["type"]  # home, work, mobile are canonical too
        assert phone["number"] == native["number"]
        assert phone["raw"]["number"] == native["number"]
        if native["extension"] is not None and phone["is_valid"]:
            assert phone["extension"] == str(native["extension"])
    assert any(p["is_valid"] for p in phones)
    assert any(not p["is_valid"] for p in phones)


def test_incremental_rereads_the_bookmark_day_without_duplicates(
    activix_source: EmulatorServer,
) -> None:
    """The bookmark is the lead's updated_at; the day-precision filter is overlapped, not trusted."""
    config = activix_config(activix_source, SOURCE_TOKEN)
    first = run_tap(config)
    bookmark = first.state["bookmarks"]["lead_phones"]["replication_key_value"]
    assert bookmark == max(p["lead_updated_at"] for p in first.records["lead_phones"])

    second = run_tap(config, state=first.state)
    again = second.records.get("lead_phones", [])
    assert all(p["lead_updated_at"] >= bookmark for p in again)
    assert max(Counter(p["id"] for p in again).values(), default=1) == 1

    # A phone edited after the first run is read again (its lead's updated_at moved).
    phone = activix_source.app.snapshot()["lead_phones"][0]
    response = httpx.put(f"{activix_source.url}/v2/lead-phones/{phone['id']}",
                         content=json.dumps({"extension": 4321}),
                         headers={"Authorization": f"Bearer {SOURCE_TOKEN}",
                                  "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    third = run_tap(config, state=first.state)
    assert str(phone["id"]) in {p["id"] for p in third.records["lead_phones"]}


def test_older_host_and_response_shapes() -> None:
    """`crm.activix.ca/api/v2` paths, bare objects and the boolean `mobile` flag still read."""
    app = ActivixApp(records=30, parents=15, seed=2, token=SOURCE_TOKEN, rate_limit=100_000,
                     bare_objects=True, mobile_flag=True, per_page_as_string=True)
    with EmulatorServer(app) as server:
        config = {**activix_config(server, SOURCE_TOKEN), "api_url": f"{server.url}/api/v2"}
        phones = run_tap(config).records["lead_phones"]
    held = app.snapshot()["lead_phones"]
    assert len(phones) == len(held)
    by_id = {str(p["id"]): p for p in held}
    for phone in phones:
        native = by_id[phone["id"]]
        assert phone["parent_id"] == str(native["lead_id"])
        assert (phone["phone_type"] == "mobile") is (native["type"] == "mobile")


def test_pacing_stays_under_the_limit_and_429_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paced under the quota: no 429. Unpaced: 429s are waited out and nothing is lost. The
    tap and the emulator share a simulated clock: the windows pass as the tap waits."""
    clock = FakeClock()
    monkeypatch.setattr("crmphones.clock.DEFAULT_CLOCK", clock)
    app = ActivixApp(records=60, parents=30, seed=6, token=SOURCE_TOKEN, rate_limit=6,
                     rate_window=1.0, clock=clock)
    with EmulatorServer(app) as server:
        paced = activix_config(server, SOURCE_TOKEN, page_size=2, max_requests_per_minute=300)
        phones = run_tap(paced).records["lead_phones"]
        assert len(phones) == 60
        assert [r for r in server.requests if r.status == 429] == []
        assert len(server.requests) > 6 * 2, "the run spans several quota windows"

        server.requests.clear()
        unpaced = activix_config(server, SOURCE_TOKEN, page_size=2)
        phones = run_tap(unpaced).records["lead_phones"]
        assert len(phones) == 60
        assert [r for r in server.requests if r.status == 429], "the quota was hit"
