"""Run the tap in-process and capture what it writes."""

from __future__ import annotations

import typing as t
from collections import defaultdict

from tap_crmphones.tap import TapCRMPhones


class TapRun(t.NamedTuple):
    records: dict[str, list[dict[str, t.Any]]]
    states: list[dict[str, t.Any]]


def run_tap(config: dict[str, t.Any], state: dict[str, t.Any] | None = None,
            catalog: dict[str, t.Any] | None = None) -> TapRun:
    """Sync the selected streams; return the records by stream and the STATE values."""
    tap = TapCRMPhones(config=config, state=state, catalog=catalog, setup_mapper=True)
    records: dict[str, list[dict[str, t.Any]]] = defaultdict(list)
    states: list[dict[str, t.Any]] = []

    def capture(message: t.Any) -> None:
        body = message.to_dict()
        if body["type"] == "RECORD":
            records[body["stream"]].append(body["record"])
        elif body["type"] == "STATE":
            states.append(body["value"])

    tap.write_message = capture  # type: ignore[method-assign]
    tap.sync_all()
    return TapRun(dict(records), states)
