"""The tap resumes too: interrupted mid-stream and restarted from the last STATE it printed,
no record is skipped; records are read twice only within the bookmark's inclusive overlap."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import typing as t

from crmphones_emulators import EmulatorServer, Faults
from crmphones_emulators.outreach import OutreachApp

if t.TYPE_CHECKING:
    import pathlib

TOKEN = "resume-token-s3cr3t"
#: Past the tap's STATE_MSG_FREQUENCY (1,000): its first STATE comes mid-stream, with a
#: third of the records still to read.
RECORDS = 1500


def _tap(config_file: pathlib.Path, state: dict | None, tmp_path: pathlib.Path
         ) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tap_crmphones", "--config", str(config_file)]
    if state is not None:
        state_file = tmp_path / "state.json"
        state_file.write_text(json.dumps(state))
        args += ["--state", str(state_file)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def test_interrupted_tap_resumes_without_skipping(tmp_path: pathlib.Path) -> None:
    app = OutreachApp(records=RECORDS, parents=RECORDS // 5, seed=17, token=TOKEN)
    with EmulatorServer(app, faults=Faults(latency_ms=5)) as server:
        config_file = tmp_path / "tap.json"
        config_file.write_text(json.dumps({"provider": "outreach", "access_token": TOKEN,
                                           "api_url": f"{server.url}/api/v2", "page_size": 100}))
        first = _tap(config_file, None, tmp_path)
        assert first.stdout is not None
        records, state = [], None
        for line in first.stdout:  # read until the first STATE, then pull the plug
            message = json.loads(line)
            if message["type"] == "RECORD":
                records.append(message["record"])
            elif message["type"] == "STATE":
                state = message["value"]
                first.send_signal(signal.SIGKILL)
                break
        first.wait(timeout=30)
        first.stdout.close()
        assert state is not None
        held = {str(p["id"]) for p in app.snapshot()["phoneNumbers"]}
        assert len(records) < len(held), "the first run was interrupted mid-stream"

        second = _tap(config_file, state, tmp_path)
        out, _ = second.communicate(timeout=300)
        assert second.returncode == 0
        again = [json.loads(x)["record"] for x in out.splitlines() if json.loads(x)["type"] == "RECORD"]
    bookmark = state["bookmarks"]["phone_numbers"]["replication_key_value"]
    assert {r["id"] for r in records} | {r["id"] for r in again} == held, "nothing skipped"
    twice = {r["id"] for r in records} & {r["id"] for r in again}
    assert all(r["updated_at"] >= bookmark for r in again)
    first_read = {r["id"]: r for r in records}
    assert all(first_read[i]["updated_at"] == bookmark for i in twice), "overlap only at the bookmark"
