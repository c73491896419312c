"""The target runs on the SDK's public hooks: a subclass's ``preprocess_record`` and the
user's stream maps change the records before the load sees them, in one process."""

from __future__ import annotations

import io
import json
import typing as t

import duckdb

from target_crmphones.sinks import PhoneSink
from target_crmphones.target import TargetCRMPhones
from tests.conftest import DESTINATION_TOKEN, outreach_config
from tests.target.conftest import SCHEMA, last_run_counts, record

if t.TYPE_CHECKING:
    import pathlib

    from crmphones_emulators import EmulatorServer
    from tests.target.conftest import TargetRunner


class _ShiftedSink(PhoneSink):
    def preprocess_record(self, record: dict, context: dict) -> dict:
        return {**record, "parent_id": str(int(record["parent_id"]) + 1)}


class _ShiftingTarget(TargetCRMPhones):
    default_sink_class = _ShiftedSink


def _prospects(server: EmulatorServer) -> list[str]:
    return sorted(str(p["relationships"]["prospect"]["data"]["id"])
                  for p in server.app.snapshot()["phoneNumbers"])


def _run(target: TargetCRMPhones, parents: list[str]) -> None:
    lines = [json.dumps(SCHEMA), *(json.dumps(record(parent_id=parent, number=f"+1212555010{n}"))
                                   for n, parent in enumerate(parents))]
    target.listen(file_input=io.StringIO("\n".join(lines) + "\n"))


def test_preprocess_record_reaches_the_load(outreach_destination: EmulatorServer,
                                            staging_path: str) -> None:
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path,
                             report_dir="")
    _run(_ShiftingTarget(config=config), ["1", "2"])
    assert _prospects(outreach_destination) == ["2", "3"]
    assert last_run_counts(staging_path)["created"] == 2


def test_stream_maps_reach_the_load(outreach_destination: EmulatorServer,
                                    staging_path: str) -> None:
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path,
                             report_dir="", stream_maps={
                                 "phones": {"parent_id": "str(int(parent_id) + 10)"}})
    _run(TargetCRMPhones(config=config), ["1", "2"])
    assert _prospects(outreach_destination) == ["11", "12"]


def test_records_a_stream_map_filters_out_are_received_and_counted_filtered(
    outreach_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
    tmp_path: pathlib.Path,
) -> None:
    """A `__filter__` and a stream mapped to `__NULL__` drop records before any sink: they
    are still received, counted as filtered (per stream in the report), and the accounting
    adds up: received = created + updated + unchanged + merged + rejected + filtered."""
    notes = {"type": "SCHEMA", "stream": "notes", "key_properties": [],
             "schema": {"type": "object", "properties": {}}}
    messages = [SCHEMA, notes,
                *(record(parent_id=str(parent), number=f"+1212555010{parent}")
                  for parent in range(1, 6)),
                {"type": "RECORD", "stream": "notes", "record": {"text": "call back"}},
                "not a Singer message"]
    reports = tmp_path / "reports"
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path,
                             report_dir=str(reports), stream_maps={
                                 "phones": {"__filter__": "parent_id not in ('2', '4')"},
                                 "notes": "__NULL__"})
    result = target_runner.run(config, messages)

    assert _prospects(outreach_destination) == ["1", "3", "5"]
    with duckdb.connect(staging_path, read_only=True) as con:
        row = con.execute("SELECT received, created, updated, unchanged, merged, rejected, "
                          "filtered FROM runs").fetchone()
        staged = con.execute("SELECT count(*) FROM staged").fetchone()
    assert row == (7, 3, 0, 0, 0, 1, 3)
    assert staged == (4,), "a filtered record is counted, not staged"
    assert "received=7 created=3 updated=0 unchanged=0 merged=0 rejected=1 filtered=3" in (
        result.stderr)
    (report_file,) = reports.glob("*.json")
    report = json.loads(report_file.read_text())
    assert report["counts"] == dict(zip(
        ("received", "created", "updated", "unchanged", "merged", "rejected", "filtered"), row,
        strict=True))
    assert report["filtered_by_stream"] == {"notes": 1, "phones": 2}
    markdown = report_file.with_suffix(".md").read_text()
    assert "| filtered | 3 |" in markdown
    assert "| phones | 2 |" in markdown


def test_a_stream_map_copying_a_stream_counts_each_copy(
    outreach_destination: EmulatorServer, staging_path: str,
) -> None:
    """A record a stream map sends to two streams reaches two sinks: both copies are
    received (one merged into the other), none is counted as filtered."""
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path,
                             report_dir="", stream_maps={"copies": {"__source__": "phones"},
                                                         "phones": {}})
    _run(TargetCRMPhones(config=config), ["1", "2"])
    assert _prospects(outreach_destination) == ["1", "2"]
    with duckdb.connect(staging_path, read_only=True) as con:
        row = con.execute("SELECT received, created, merged, filtered FROM runs").fetchone()
    assert row == (4, 2, 2, 0)
