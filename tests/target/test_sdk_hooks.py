"""The target runs on the SDK's public hooks: a subclass's ``preprocess_record`` and the
user's stream maps change the records before the load sees them, in one process."""

from __future__ import annotations

import io
import json
import typing as t

from target_crmphones.sinks import PhoneSink
from target_crmphones.target import TargetCRMPhones
from tests.conftest import DESTINATION_TOKEN, outreach_config
from tests.target.conftest import SCHEMA, last_run_counts, record

if t.TYPE_CHECKING:
    from crmphones_emulators import EmulatorServer


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
