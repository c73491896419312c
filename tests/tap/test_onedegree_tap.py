"""tap-crmphones against an emulated One Degree account: phones of four owner kinds."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t
from collections import Counter

from singer_sdk.testing import get_tap_test_class

from crmphones_emulators import EmulatorServer
from crmphones_emulators.onedegree import OneDegreeApp
from tap_crmphones.tap import TapCRMPhones
from tests.conftest import SOURCE_SECRET, SOURCE_TOKEN, od_config
from tests.tap.conftest import every_stream_selected, run_tap

if t.TYPE_CHECKING:
    import pathlib

_SUITE_SERVER = EmulatorServer(OneDegreeApp(records=60, parents=12, seed=4, api_key=SOURCE_TOKEN,
                                            api_secret=SOURCE_SECRET))
_SUITE_SERVER.start()
_SUITE_CONFIG = od_config(_SUITE_SERVER, SOURCE_TOKEN, SOURCE_SECRET)
TestTapOneDegreeStandard = get_tap_test_class(
    TapCRMPhones, config=_SUITE_CONFIG, catalog=every_stream_selected(_SUITE_CONFIG),
)

_KIND = {"Organization": "organization", "Location": "location", "Opportunity": "opportunity"}


def test_every_phone_once_with_its_owner_and_ancestors(od_source: EmulatorServer) -> None:
    """Each phone arrives once, on the stream of its owner kind, with the ids that address it."""
    config = od_config(od_source, SOURCE_TOKEN, SOURCE_SECRET)
    run = run_tap(config, catalog=every_stream_selected(config))
    held = od_source.app.snapshot()
    streams = {"organization": "organization_phones", "location": "location_phones",
               "opportunity": "opportunity_phones"}
    for kind, stream in streams.items():
        expected = sorted(p["id"] for p in held["phones"] if _KIND[p["phoneable_type"]] == kind)
        assert sorted(int(r["id"]) for r in run.records.get(stream, [])) == expected, stream
    by_id = {str(p["id"]): p for p in held["phones"]}
    for stream in streams.values():
        for record in run.records.get(stream, []):
            native = by_id[record["id"]]
            assert record["parent_id"] == str(native["phoneable_id"])
            assert record["number"] == native["digits"]
            assert record["label"] == native["phone_type"]
            assert record["is_primary"] is native["is_primary"]
            if record["parent_type"] != "organization":
                assert record["ancestors"]["organization"] == str(native["organization_id"])
    assert len(run.records["organizations"]) == len(held["organizations"])
    assert Counter(r["id"] for r in run.records["locations"]).most_common(1)[0][1] == 1
    assert {r["id"] for r in run.records["opportunities"]} == {
        str(o["id"]) for o in held["opportunities"]}


def test_full_table_without_bookmarks(od_source: EmulatorServer) -> None:
    """No updated-since filter exists: every run reads everything and keeps no bookmark."""
    config = od_config(od_source, SOURCE_TOKEN, SOURCE_SECRET)
    first = run_tap(config)
    second = run_tap(config, state=first.state)
    assert len(second.records["organization_phones"]) == len(first.records["organization_phones"])
    for stream_state in first.state.get("bookmarks", {}).values():
        assert "replication_key_value" not in stream_state


def test_wrong_key_fails_fast(od_source: EmulatorServer, tmp_path: pathlib.Path) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(od_config(od_source, "not-the-key", SOURCE_SECRET)))
    result = subprocess.run(
        [sys.executable, "-m", "tap_crmphones", "--config", str(config_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert "`api_key` and `api_secret`" in result.stderr
    assert "Traceback" not in result.stderr
    assert "not-the-key" not in result.stderr + result.stdout
