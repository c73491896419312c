"""target-crmphones writing to an emulated Outreach account."""

from __future__ import annotations

import json
import typing as t

from tests.conftest import DESTINATION_TOKEN, SOURCE_TOKEN, outreach_config
from tests.target.conftest import SCHEMA, TargetRunner, last_run_counts, ledger, record, tap_lines

if t.TYPE_CHECKING:
    import pathlib

    from crmphones_emulators import EmulatorServer


def _writes(server: EmulatorServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.requests if r.method in ("POST", "PATCH")]


def _phones(server: EmulatorServer) -> list[dict[str, t.Any]]:
    return server.app.snapshot()["phoneNumbers"]


def _tap_output(server: EmulatorServer, tmp_path: pathlib.Path) -> list[str]:
    return tap_lines(outreach_config(server, SOURCE_TOKEN), tmp_path)


def test_tap_to_target_round_trip(
    outreach_source: EmulatorServer, outreach_destination: EmulatorServer,
    target_runner: TargetRunner, staging_path: str, tmp_path: pathlib.Path,
) -> None:
    """Valid numbers land once on the same prospect; junk is rejected; a rerun writes nothing."""
    lines = _tap_output(outreach_source, tmp_path)
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path)
    result = target_runner.run(config, lines)

    source_records = [json.loads(x)["record"] for x in lines
                      if json.loads(x)["type"] == "RECORD"
                      and json.loads(x)["stream"] == "phone_numbers"]
    valid = {(r["parent_id"], r["e164"], r["extension"] or "") for r in source_records
             if r["is_valid"]}
    written = _phones(outreach_destination)
    written_keys = [
        (str(p["relationships"]["prospect"]["data"]["id"]), p["attributes"]["number"],
         p["attributes"]["extension"] or "")
        for p in written
    ]
    assert sorted(written_keys) == sorted(valid), "each valid phone exactly once"
    counts = last_run_counts(staging_path)
    assert counts["received"] == len(source_records)
    assert counts["created"] == len(valid)
    assert counts["rejected"] == sum(1 for r in source_records if not r["is_valid"])
    assert counts["created"] + counts["merged"] + counts["rejected"] == counts["received"]
    assert f"received={len(source_records)}" in result.stderr

    # The same input again: everything is already there.
    before = len(_writes(outreach_destination))
    target_runner.run(config, lines)
    assert len(_writes(outreach_destination)) == before
    again = last_run_counts(staging_path)
    assert again["created"] == again["updated"] == 0
    assert again["unchanged"] == counts["created"]


def test_messy_input_is_accounted_for(
    outreach_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str
) -> None:
    """Duplicates merge (latest wins), bad records are rejected with reasons, nothing crashes."""
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path)
    messages = [
        SCHEMA,
        record(parent_id="1", number="(514) 987-6543", phone_type="work"),
        record(parent_id=1, number="+1 514 987 6543", phone_type="mobile"),  # same phone, later
        record(parent_id="1", number="514.987.6543 x12"),                    # other extension
        record(parent_id="2", number="n/a"),
        record(parent_id="2", number="+44 20 7946 0958", label="Cell"),
        record(number="+1 514 987 6543"),                                    # no parent
        record(parent_id="3", number={"not": "a string"}),
        record(parent_id="3", number="514 987 6543", parent_type="lead"),
        record(parent_id="99999", number="514 987 6543"),                    # unknown prospect
        {"type": "STATE", "value": {"bookmarks": {"phones": {"at": 1}}}},
    ]
    result = target_runner.run(config, messages)
    counts = last_run_counts(staging_path)
    assert counts == {"received": 9, "created": 3, "updated": 0, "unchanged": 0, "merged": 1,
                      "rejected": 5}
    phones = {(str(p["relationships"]["prospect"]["data"]["id"]), p["attributes"]["number"],
               p["attributes"]["extension"], p["attributes"]["phoneType"])
              for p in _phones(outreach_destination)}
    assert phones == {("1", "+15149876543", None, "mobile"), ("1", "+15149876543", "12", None),
                      ("2", "+442079460958", None, "mobile")} or phones == {
        ("1", "+15149876543", None, "mobile"), ("1", "+15149876543", "12", "other"),
        ("2", "+442079460958", None, "mobile")}
    reasons = dict(ledger(staging_path, "SELECT seq, reason FROM rejects"))
    assert set(reasons) == {4, 6, 7, 8, 9}
    assert reasons[4].startswith("not a phone number")
    assert reasons[6] == "missing parent_id"
    assert "number must be a string" in reasons[7]
    assert "parent_type 'lead'" in reasons[8]
    assert "HTTP 422" in reasons[9]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"bookmarks": {"phones": {"at": 1}}}


def test_interleaved_streams_are_batched_apart(
    outreach_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str
) -> None:
    """Two phone streams whose records alternate (a tap emits children between parents):
    each stream's batch takes only its own records, and every record is accounted for."""
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path)
    other = {**SCHEMA, "stream": "more_phones"}
    messages: list[dict[str, t.Any]] = [SCHEMA, other]
    for parent in range(1, 6):
        messages.append(record(parent_id=str(parent), number=f"+1 202 555 01{parent:02d}"))
        messages.append({**record(parent_id=str(parent), number=f"+1 202 555 02{parent:02d}"),
                         "stream": "more_phones"})
    messages.append({**record(parent_id="1", number="+1 202 555 0101"), "stream": "more_phones"})
    target_runner.run(config, messages)
    counts = last_run_counts(staging_path)
    # The last record repeats one of the other stream: the run's de-duplication merges it.
    assert counts == {"received": 11, "created": 10, "updated": 0, "unchanged": 0, "merged": 1,
                      "rejected": 0}
    assert len(_phones(outreach_destination)) == 10


def test_update_sends_only_the_changed_attribute(
    outreach_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str
) -> None:
    """A phone already on the prospect with another type gets one PATCH of phoneType only."""
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path)
    target_runner.run(config, [SCHEMA, record(parent_id="5", number="+12025550143",
                                              phone_type="home")])
    target_runner.run(config, [SCHEMA, record(parent_id="5", number="(202) 555-0143",
                                              phone_type="work")])
    patches = [r for r in outreach_destination.requests if r.method == "PATCH"]
    assert len(patches) == 1
    assert last_run_counts(staging_path)["updated"] == 1
    (phone,) = _phones(outreach_destination)
    assert phone["attributes"]["phoneType"] == "work"
    changes = ledger(staging_path, "SELECT changes FROM outcomes WHERE outcome = 'updated'")
    assert json.loads(changes[0][0]) == {"phoneType": "work"}


def test_dry_run_writes_nothing(
    outreach_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str
) -> None:
    """dry_run plans and records, and the CRM sees no write."""
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path,
                             dry_run=True)
    result = target_runner.run(config, [SCHEMA, record(parent_id="5", number="+12025550143")])
    assert _writes(outreach_destination) == []
    assert _phones(outreach_destination) == []
    assert last_run_counts(staging_path)["created"] == 1
    assert "would create" in result.stderr
    (plan,) = (target_runner.tmp_path / ".crmphones" / "reports").glob("*.csv")
    header, row = plan.read_text().splitlines()
    assert header.startswith("seq,outcome,")
    assert row.startswith("1,created,")


def test_bad_token_stops_at_once(
    outreach_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str
) -> None:
    """401 stops the run with one line naming the setting, no traceback, no token echoed."""
    config = outreach_config(outreach_destination, "not-the-token", staging_path=staging_path)
    result = target_runner.run(config, [SCHEMA, record(parent_id="5", number="+12025550143")],
                               check=False)
    assert result.returncode == 1
    assert "check the `access_token` setting" in result.stderr
    assert "Traceback" not in result.stderr
    assert "not-the-token" not in result.stderr + result.stdout
    assert len(outreach_destination.requests) == 1


def test_run_report_files_and_progress(
    outreach_source: EmulatorServer, outreach_destination: EmulatorServer,
    target_runner: TargetRunner, staging_path: str, tmp_path: pathlib.Path,
) -> None:
    """The report (Markdown, JSON, CSV) agrees with the ledger, shows API figures, holds no
    secret; progress lines appear at the configured cadence."""
    lines = _tap_output(outreach_source, tmp_path)
    reports = tmp_path / "reports"
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path,
                             report_dir=str(reports), progress_seconds=0)
    result = target_runner.run(config, lines)
    assert "progress: received=" in result.stderr
    (report_file,) = reports.glob("*.json")
    report = json.loads(report_file.read_text())
    assert report["counts"] == {**last_run_counts(staging_path), "filtered": 0}
    assert report["api_calls"] == sum(report["api_calls_by_status"].values()) > 0
    writes = [r for r in outreach_destination.requests if r.method == "POST"]
    assert report["api_calls_by_status"]["201"] == len(writes)
    assert sum(r["records"] for r in report["rejects_by_reason"]) == report["counts"]["rejected"]
    csv_lines = (reports / report_file.name.replace(".json", ".csv")).read_text().splitlines()
    assert len(csv_lines) == 1 + report["counts"]["received"]
    markdown = (reports / report_file.name.replace(".json", ".md")).read_text()
    assert f"| created | {report['counts']['created']} |" in markdown
    for text in (markdown, report_file.read_text(), "\n".join(csv_lines), result.stderr):
        assert DESTINATION_TOKEN not in text
        assert SOURCE_TOKEN not in text
    stored = ledger(staging_path, "SELECT api_calls, report_path FROM runs")
    assert json.loads(stored[0][0]) == report["api_calls_by_status"]
    assert stored[0][1] == report["files"]["markdown"]


def test_stream_map_derives_the_parent_id(
    outreach_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str
) -> None:
    """The README's migration alternative: a stream map in the target rewrites parent ids."""
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path,
                             stream_maps={"phones": {"parent_id": "str(int(parent_id) + 100)"}})
    schema = {**SCHEMA, "schema": {"type": "object", "properties": {
        "parent_id": {"type": "string"}, "number": {"type": "string"}}}}
    target_runner.run(config, [schema, record(parent_id="5", number="+12025550143")])
    (phone,) = _phones(outreach_destination)
    assert phone["relationships"]["prospect"]["data"]["id"] == 105


def test_api_refusals_are_not_resent_until_the_input_changes(
    outreach_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str
) -> None:
    """A record the API refused (422) is held back on the next runs, with its attempts counted;
    once the record changes it is sent again."""
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path)
    refused = record(parent_id="99999", number="+12025550143")
    for _ in range(3):
        target_runner.run(config, [SCHEMA, refused])
    posts = [r for r in outreach_destination.requests if r.method == "POST"]
    assert len(posts) == 1, "sent once, then held back"
    rows = ledger(staging_path, "SELECT reason, attempts FROM rejects ORDER BY recorded_at")
    assert [attempts for _, attempts in rows] == [1, 2, 3]
    assert "HTTP 422" in rows[-1][0]
    assert "refused in 2 earlier runs" in rows[-1][0]

    target_runner.run(config, [SCHEMA, record(parent_id="99", number="+12025550143")])
    assert last_run_counts(staging_path)["created"] == 1
