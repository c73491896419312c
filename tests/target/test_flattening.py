"""The SDK's flattening (``flattening_enabled``, ``flattening_max_depth: 1``) keeps every field:
each field a flattened record carries is in its SCHEMA (a target such as target-postgres makes
columns from the SCHEMA and drops the rest), ``raw`` travels whole as JSON text, and the
target takes flattened records back (``ancestors__<kind>``) as it takes nested ones."""

from __future__ import annotations

import json
import typing as t

import pytest

from crmphones_emulators import EmulatorServer
from crmphones_emulators.onedegree import OneDegreeApp
from tap_crmphones.tap import TapCRMPhones
from tests.conftest import (
    DESTINATION_SECRET,
    DESTINATION_TOKEN,
    SOURCE_SECRET,
    SOURCE_TOKEN,
    activix_config,
    od_config,
    outreach_config,
    te_config,
)
from tests.tap.conftest import every_stream_selected
from tests.target.conftest import last_run_counts

if t.TYPE_CHECKING:
    import pathlib

    from tests.target.conftest import TargetRunner

FLAT = {"flattening_enabled": True, "flattening_max_depth": 1}


def tap_messages(config: dict[str, t.Any], catalog: dict[str, t.Any] | None = None
                 ) -> list[dict[str, t.Any]]:
    """Every SCHEMA and RECORD message the tap writes, as dicts."""
    tap = TapCRMPhones(config=config, catalog=catalog, setup_mapper=True)
    messages: list[dict[str, t.Any]] = []

    def capture(message: t.Any) -> None:
        body = message.to_dict()
        if body["type"] in ("SCHEMA", "RECORD"):
            messages.append(json.loads(json.dumps(body, default=str)))

    tap.write_message = capture  # type: ignore[method-assign]
    tap.sync_all()
    return messages


def _check_every_field_declared(messages: list[dict[str, t.Any]]) -> dict[str, dict]:
    schemas = {m["stream"]: m["schema"] for m in messages if m["type"] == "SCHEMA"}
    records = [m for m in messages if m["type"] == "RECORD"]
    assert records
    for message in records:
        properties = schemas[message["stream"]]["properties"]
        assert set(message["record"]) <= set(properties), message["stream"]
        # Nothing nested is left: every value is a column a warehouse target can hold.
        assert not any(isinstance(v, dict | list) for v in message["record"].values())
    return schemas


@pytest.mark.parametrize("source", ["outreach_source", "activix_source", "te_source",
                                    "od_source"])
def test_every_field_of_a_flattened_record_is_in_its_schema(
    source: str, request: pytest.FixtureRequest,
) -> None:
    server: EmulatorServer = request.getfixturevalue(source)
    config = {
        "outreach_source": lambda: outreach_config(server, SOURCE_TOKEN),
        "activix_source": lambda: activix_config(server, SOURCE_TOKEN),
        "te_source": lambda: te_config(server, SOURCE_TOKEN, SOURCE_SECRET),
        "od_source": lambda: od_config(server, SOURCE_TOKEN, SOURCE_SECRET),
    }[source]() | FLAT
    messages = tap_messages(config, every_stream_selected(config))
    schemas = _check_every_field_declared(messages)
    for stream, schema in schemas.items():
        assert schema["properties"]["raw"]["type"] == ["string", "null"], stream
    for message in messages:
        if message["type"] == "RECORD":
            raw = json.loads(message["record"]["raw"])
            assert isinstance(raw, dict) and raw, "the native record, whole"


def _phones(server: EmulatorServer) -> list[tuple[str, int, str]]:
    return sorted((p["phoneable_type"], p["phoneable_id"], p["digits"])
                  for p in server.app.snapshot()["phones"])


def test_the_target_takes_flattened_records_back(
    od_destination: EmulatorServer, target_runner: TargetRunner, tmp_path: pathlib.Path,
) -> None:
    """One Degree's locations and opportunities need their ancestors: flattened by the tap,
    flattened by the target (``flattening_enabled`` on the target), or not at all, the
    destination ends the same and no record is refused for its owner.

    The source holds 60 phones on the destination's owners (every kind among them): each of
    the three loads writes every phone, and 60 show the three ways end alike as 200 did."""
    app = OneDegreeApp(records=60, parents=40, seed=9, api_key=SOURCE_TOKEN,
                       api_secret=SOURCE_SECRET)
    with EmulatorServer(app) as od_source:
        source_config = od_config(od_source, SOURCE_TOKEN, SOURCE_SECRET)
        nested = tap_messages(source_config)
        flattened = tap_messages(source_config | FLAT)
    assert {m["record"]["parent_type"] for m in nested if m["type"] == "RECORD"} == {
        "organization", "location", "opportunity"}
    assert any("ancestors__organization" in m.get("record", {}) for m in flattened)
    _check_every_field_declared(flattened)

    ends = []
    for name, messages, extra in (("nested", nested, {}), ("tap-flat", flattened, {}),
                                  ("target-flat", nested, FLAT)):
        od_destination.app.reset()
        staging = str(tmp_path / f"{name}.duckdb")
        config = od_config(od_destination, DESTINATION_TOKEN, DESTINATION_SECRET,
                           staging_path=staging, report_dir="") | extra
        target_runner.run(config, messages)
        ends.append((last_run_counts(staging), _phones(od_destination)))
    (counts, phones), *others = ends
    assert counts["created"] > 0 and phones
    assert all(other == ends[0] for other in others)


def test_every_ancestor_kind_is_declared() -> None:
    """Each kind a dialect nests owners under is a declared property of ``ancestors``, so
    flattening gives it a column."""
    from crmphones.dialects import DIALECTS, get_dialect
    from crmphones.records import ANCESTOR_KINDS

    for name in DIALECTS:
        for kinds in get_dialect(name).ancestor_kinds.values():
            assert set(kinds) <= set(ANCESTOR_KINDS), name
