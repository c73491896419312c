"""The floor under the target's CPU path: what any singer-sdk target that normalizes numbers
costs, beside target-jsonl, on the streams of ``benchmarks.cpu``.

``floor`` is a singer-sdk target on the same public hooks as target-crmphones (the orjson
message reader, a batch sink) whose sink does nothing with a record but, optionally,
normalize its number with ``crmphones.phones`` (phonenumbers' public parse and validation,
cached over distinct raw inputs): no validation, no staging, no de-duplication, no diff, no
report. What it costs, target-crmphones cannot go below; when it is already slower than
target-jsonl, a dry run at 1.0x target-jsonl is out of reach with that normalizer.

Run: ``python -m benchmarks.floor --records 100000``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile

import orjson
from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.io_base import SingerReader
from singer_sdk.sinks import BatchSink

from benchmarks import cpu
from crmphones import phones


class _Reader(SingerReader):
    def deserialize_json(self, line: str) -> dict:
        return orjson.loads(line)


class _Sink(BatchSink):
    def setup(self) -> None:
        self.normalizer = self.config.get("normalizer")
        phones.use_backend(self.normalizer)

    def get_validator(self) -> None:
        return None

    def process_record(self, record: dict, context: dict) -> None:
        if self.normalizer:
            phones.normalize(record.get("e164") or record.get("number"), record.get("extension"),
                             region_hint=record.get("region"))

    def process_batch(self, context: dict) -> None:
        pass


class FloorTarget(Target):
    """The SDK's per-record path, and a number's normalization if asked."""

    name = "target-floor"
    default_sink_class = _Sink
    message_reader_class = _Reader
    config_jsonschema = th.PropertiesList(
        th.Property("normalizer", th.StringType(nullable=True))).to_dict()


def floor_run(path: pathlib.Path, normalizer: str | None) -> cpu.Held:
    """The floor target on the file, normalizing with ``normalizer`` (None: not at all)."""
    with tempfile.TemporaryDirectory() as work:
        config_path = os.path.join(work, "config.json")
        pathlib.Path(config_path).write_text(json.dumps({"normalizer": normalizer}))
        return cpu.measure([sys.executable, "-m", "benchmarks.floor", "--config", config_path],
                           path, work)


def report(records: int) -> None:
    """The floor beside target-jsonl, on both streams."""
    print("| stream | records | tool | s | records/s | vs target-jsonl |")
    print("|---|---:|---|---:|---:|---:|")
    for kind in cpu.STREAMS:
        path = cpu.stream_file(kind, records)
        jsonl = cpu.jsonl_run(path)
        _row(kind, records, "target-jsonl 0.1.4", jsonl, jsonl)
        for normalizer in (None, *cpu.normalizers()):
            held = floor_run(path, normalizer)
            what = f"normalize with {normalizer}" if normalizer else "no normalization"
            _row(kind, records, f"floor: SDK path, {what}", held, jsonl)


def _row(kind: str, count: int, tool: str, held: cpu.Held, jsonl: cpu.Held) -> None:
    print(f"| {kind} | {count:,} | {tool} | {held.seconds:.1f} | {count / held.seconds:,.0f} | "
          f"{jsonl.seconds / held.seconds:.2f}x |", flush=True)


def main() -> None:
    if "--config" in sys.argv:
        FloorTarget.cli()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    report(parser.parse_args().records)


if __name__ == "__main__":
    main()
