"""BATCH messages: a tap's batch files are loaded as its RECORD messages would be.

The files are written as singer-sdk's tap side writes them (its JSONL and parquet batch
encoders, or the real tap-crmphones with a ``batch_config``), and the BATCH messages have
the shape its streams send: ``{"type": "BATCH", "stream", "encoding", "manifest"}``.
"""

from __future__ import annotations

import contextlib
import io
import json
import typing as t

import pytest
from singer_sdk.contrib.batch_encoder_jsonl import JSONLinesBatcher
from singer_sdk.contrib.batch_encoder_parquet import ParquetBatcher

# The batchers take the SDK's BatchConfig, which has no public home in singer-sdk 0.54.
from singer_sdk.helpers._batch import BatchConfig

from crmphones_emulators import EmulatorServer
from crmphones_emulators.outreach import OutreachApp
from target_crmphones.target import TargetCRMPhones
from tests.conftest import DESTINATION_TOKEN, SOURCE_TOKEN, outreach_config
from tests.target.conftest import SCHEMA, TargetRunner, last_run_counts, ledger, record, tap_lines

if t.TYPE_CHECKING:
    import pathlib
    import subprocess
    from collections.abc import Iterator

RECORDS = 100
UNIQUE_VALID = 80  # then 10 later records of earlier phones, and 10 invalid numbers
# The later records of a phone are merged into the earlier ones, whether they come in one
# file or several: decisions are the run's.
EXPECTED = {"received": RECORDS, "created": UNIQUE_VALID, "updated": 0, "unchanged": 0,
            "merged": 10, "rejected": 10}


def _records() -> list[dict[str, t.Any]]:
    """Phone records on the destination's prospects: valid, duplicated and invalid ones."""
    rows = [{"parent_type": "prospect", "parent_id": str(i % 40 + 1),
             "number": f"+1 415 555 {1000 + i:04d}", "phone_type": "mobile"}
            for i in range(UNIQUE_VALID)]
    rows += [{**rows[i], "phone_type": "work"} for i in range(10)]  # later, so they win
    rows += [{"parent_type": "prospect", "parent_id": "3", "number": "12",
              "phone_type": "mobile"} for _ in range(10)]
    return rows


def _batch_messages(records: list[dict[str, t.Any]], root: pathlib.Path, fmt: str,
                    compression: str | None, size: int = 40) -> list[dict[str, t.Any]]:
    """BATCH messages over files written by the SDK's own batch encoder for ``fmt``."""
    encoding = {"format": fmt, "compression": compression}
    config = BatchConfig.from_dict({"encoding": encoding, "storage": {"root": f"file://{root}"},
                                    "batch_size": size})
    batcher = {"jsonl": JSONLinesBatcher, "parquet": ParquetBatcher}[fmt]
    return [{"type": "BATCH", "stream": "phones", "encoding": encoding, "manifest": manifest}
            for manifest in batcher("tap-test", "phones", config).get_batches(iter(records))]


def _plain_jsonl_message(records: list[dict[str, t.Any]], root: pathlib.Path
                         ) -> dict[str, t.Any]:
    """A BATCH message over one uncompressed JSON lines file (the SDK's batcher always gzips)."""
    path = root / "phones.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return {"type": "BATCH", "stream": "phones",
            "encoding": {"format": "jsonl", "compression": None}, "manifest": [path.as_uri()]}


def _phones(server: EmulatorServer) -> list[tuple[str, str, str | None, str]]:
    return sorted((str(p["relationships"]["prospect"]["data"]["id"]), p["attributes"]["number"],
                   p["attributes"]["extension"], p["attributes"]["phoneType"])
                  for p in server.app.snapshot()["phoneNumbers"])


def _expected_phones() -> list[tuple[str, str, str | None, str]]:
    return sorted((str(i % 40 + 1), f"+1415555{1000 + i:04d}", None,
                   "work" if i < 10 else "mobile") for i in range(UNIQUE_VALID))


def _states(stdout: str) -> list[dict[str, t.Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _one_error_line(stderr: str) -> str:
    """The run's one error line; no traceback anywhere."""
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("target-crmphones: error:")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


@pytest.fixture
def second_destination() -> Iterator[EmulatorServer]:
    """Another Outreach account like ``outreach_destination``, for the same input as RECORDs."""
    with EmulatorServer(OutreachApp(records=0, parents=150, seed=7, token=DESTINATION_TOKEN)
                        ) as server:
        yield server


@pytest.mark.parametrize(("fmt", "compression"), [
    ("jsonl", "gzip"), ("jsonl", None), ("parquet", "gzip"), ("parquet", None), ("plain", None)])
def test_batch_files_are_loaded_and_accounted_for(
    fmt: str, compression: str | None, outreach_destination: EmulatorServer,
    target_runner: TargetRunner, staging_path: str, tmp_path: pathlib.Path,
) -> None:
    """Every record of the files is received and has one outcome; the phones land; the STATE
    after the BATCH messages is printed; the SDK counts the records."""
    records = _records()
    batches = ([_plain_jsonl_message(records, tmp_path)] if fmt == "plain"
               else _batch_messages(records, tmp_path, fmt, compression))
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path)
    result = target_runner.run(config, [SCHEMA, *batches, {"type": "STATE", "value": {"n": 1}}])

    assert last_run_counts(staging_path) == EXPECTED
    assert ledger(staging_path, "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) "
                                "FROM outcomes") == [(RECORDS, RECORDS, 1, RECORDS)]
    assert _phones(outreach_destination) == _expected_phones()
    assert _states(result.stdout) == [{"n": 1}]
    counted = [json.loads(line.split("METRIC: ", 1)[1])["value"]
               for line in result.stderr.splitlines()
               if "METRIC: " in line and '"record_count"' in line]
    assert sum(counted) == RECORDS, result.stderr[-3000:]


def test_records_before_and_after_a_batch_keep_their_order(
    outreach_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
    tmp_path: pathlib.Path,
) -> None:
    """RECORDs still batched when a BATCH comes are settled first: a phone in both takes the
    file's (later) type, and no record gets two outcomes."""
    records = _records()
    before = [{**r, "phone_type": "home"} for r in records[:10]]  # the file's 'work' is later
    messages = [SCHEMA, *(record(**r) for r in before),
                *_batch_messages(records[:90], tmp_path, "jsonl", "gzip", size=100),
                *(record(**r) for r in records[90:]), {"type": "STATE", "value": {"n": 2}}]
    config = outreach_config(outreach_destination, DESTINATION_TOKEN, staging_path=staging_path)
    result = target_runner.run(config, messages)

    counts = last_run_counts(staging_path)
    assert counts["received"] == RECORDS + 10
    assert ledger(staging_path, "SELECT count(*), count(DISTINCT seq) FROM outcomes") == [
        (RECORDS + 10, RECORDS + 10)]
    assert _phones(outreach_destination) == _expected_phones()
    assert _states(result.stdout) == [{"n": 2}]


def test_state_is_printed_once_every_record_before_it_is_settled(
    outreach_destination: EmulatorServer, staging_path: str, tmp_path: pathlib.Path,
) -> None:
    """A STATE is printed only once every record before it has its outcome: with decisions
    made over the whole run, that is its end, where the latest STATE is passed on."""
    records = _records()
    first, second = _batch_messages(records, tmp_path, "jsonl", "gzip", size=50)
    messages = [SCHEMA, first, {"type": "STATE", "value": {"upto": 50}},
                second, {"type": "STATE", "value": {"upto": 100}}]
    target = TargetCRMPhones(config=outreach_config(
        outreach_destination, DESTINATION_TOKEN, staging_path=staging_path, report_dir="",
        batch_size_rows=50))
    printed: list[tuple[dict[str, t.Any], int]] = []

    class Stdout(io.StringIO):
        def write(self, text: str) -> int:
            for line in text.splitlines():
                if line.strip():
                    ((settled,),) = target.load.staging.connection.execute(
                        "SELECT count(DISTINCT seq) FROM outcomes WHERE run_id = ?",
                        [target.load.run_id]).fetchall()
                    printed.append((json.loads(line), settled))
            return len(text)

    with contextlib.redirect_stdout(Stdout()):
        target.listen(file_input=io.StringIO("".join(json.dumps(m) + "\n" for m in messages)))
    # The SDK prints the latest STATE again at each drain: each print covers settled records.
    assert all(state["upto"] <= settled for state, settled in printed), printed
    assert printed[0] == ({"upto": 100}, 100), printed


def test_a_tap_batch_run_writes_what_its_record_run_writes(
    outreach_source: EmulatorServer, outreach_destination: EmulatorServer,
    second_destination: EmulatorServer, target_runner: TargetRunner, tmp_path: pathlib.Path,
) -> None:
    """tap-crmphones with a ``batch_config`` (BATCH messages) and without (RECORD messages):
    the same counts and the same phones on the destination (batches of the same size, as a
    file is one batch, or more when it holds more than ``batch_size_rows``)."""
    def tap(extra: dict[str, t.Any]) -> list[str]:
        return tap_lines(outreach_config(outreach_source, SOURCE_TOKEN, **extra), tmp_path)

    batch_config = {"encoding": {"format": "jsonl", "compression": "gzip"},
                    "storage": {"root": f"file://{tmp_path}"}, "batch_size": 120}
    batched = tap({"batch_config": batch_config})
    kinds = [json.loads(line)["type"] for line in batched]
    assert "BATCH" in kinds
    assert "RECORD" not in kinds
    plain = tap({})

    counts = {}
    for name, lines, server in (("batch", batched, outreach_destination),
                                ("record", plain, second_destination)):
        staging = str(tmp_path / f"{name}.duckdb")
        result = target_runner.run(outreach_config(server, DESTINATION_TOKEN,
                                                   staging_path=staging, batch_size_rows=120),
                                   lines)
        assert _states(result.stdout), "the tap's last STATE is passed on"
        counts[name] = last_run_counts(staging)
    assert counts["batch"] == counts["record"]
    assert counts["batch"]["received"] == sum(
        1 for line in plain if json.loads(line)["type"] == "RECORD"
        and json.loads(line)["stream"] == "phone_numbers")
    assert counts["batch"]["created"] > 0
    assert _phones(outreach_destination) == _phones(second_destination)


def _failing_run(target_runner: TargetRunner, server: EmulatorServer, staging_path: str,
                 batch: dict[str, t.Any]) -> tuple[str, subprocess.CompletedProcess[str]]:
    good = record(**_records()[0])
    config = outreach_config(server, DESTINATION_TOKEN, staging_path=staging_path)
    result = target_runner.run(config, [SCHEMA, good, batch, {"type": "STATE", "value": {"n": 3}}],
                               check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stdout.strip() == "", "no STATE after a BATCH that was not loaded"
    return _one_error_line(result.stderr), result


@pytest.mark.parametrize(("encoding", "named"), [
    ({"format": "csv", "compression": None}, "format 'csv'"),
    ({"format": "jsonl", "compression": "zstd"}, "compression 'zstd'"),
])
def test_an_encoding_it_cannot_read_fails_the_run_in_one_line(
    encoding: dict[str, t.Any], named: str, outreach_destination: EmulatorServer,
    target_runner: TargetRunner, staging_path: str, tmp_path: pathlib.Path,
) -> None:
    message = {**_plain_jsonl_message(_records(), tmp_path), "encoding": encoding}
    line, _ = _failing_run(target_runner, outreach_destination, staging_path, message)
    assert "BATCH encoding not supported" in line
    assert named in line


@pytest.mark.parametrize("content", [
    None,  # missing
    "not json at all\n",
    json.dumps(_records()[1]) + "\n{broken\n",  # a good line, then garbage: nothing of it loads
])
def test_a_batch_file_it_cannot_read_fails_the_run_naming_it(
    content: str | None, outreach_destination: EmulatorServer, target_runner: TargetRunner,
    staging_path: str, tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "phones-1.jsonl"
    if content is not None:
        path.write_text(content)
    message = {"type": "BATCH", "stream": "phones",
               "encoding": {"format": "jsonl", "compression": None}, "manifest": [path.as_uri()]}
    line, _ = _failing_run(target_runner, outreach_destination, staging_path, message)
    assert path.as_uri() in line
    assert ("No such file" if content is None else "JSONDecodeError") in line
    # Nothing is written before the input ends: neither the RECORD before it nor the file.
    assert _phones(outreach_destination) == []


def test_a_garbage_parquet_file_fails_the_run_naming_it(
    outreach_destination: EmulatorServer, target_runner: TargetRunner, staging_path: str,
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "phones-1.parquet"
    path.write_bytes(b"PAR1 but not really")
    message = {"type": "BATCH", "stream": "phones",
               "encoding": {"format": "parquet", "compression": None},
               "manifest": [path.as_uri()]}
    line, _ = _failing_run(target_runner, outreach_destination, staging_path, message)
    assert path.as_uri() in line
    assert "parquet" in line
