"""Run the tap in-process and capture what it writes."""

from __future__ import annotations

import copy
import typing as t
from collections import defaultdict

from tap_crmphones.tap import TapCRMPhones


class TapRun(t.NamedTuple):
    records: dict[str, list[dict[str, t.Any]]]
    state: dict[str, t.Any]  # the final state, as the last STATE message carries it


def run_tap(config: dict[str, t.Any], state: dict[str, t.Any] | None = None,
            catalog: dict[str, t.Any] | None = None) -> TapRun:
    """Sync the selected streams; return the records by stream and the final state."""
    tap = TapCRMPhones(config=config, state=state, catalog=catalog, setup_mapper=True)
    records: dict[str, list[dict[str, t.Any]]] = defaultdict(list)

    def capture(message: t.Any) -> None:
        body = message.to_dict()
        if body["type"] == "RECORD":
            records[body["stream"]].append(body["record"])

    tap.write_message = capture  # type: ignore[method-assign]
    tap.sync_all()
    return TapRun(dict(records), copy.deepcopy(tap.state))


def every_stream_selected(config: dict[str, t.Any]) -> dict[str, t.Any]:
    """The discovered catalog with parent streams selected too (they are off by default)."""
    catalog = TapCRMPhones(config=config).catalog_dict
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = True
    return catalog
