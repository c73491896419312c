"""The target's CPU path and memory beside target-jsonl, on the same streams, side by side.

target-crmphones runs in ``dry_run`` (read, check, normalize, stage, de-duplicate, diff
against an emulated account, plan, report: everything but the writes) with each normalizer;
target-jsonl 0.1.4 (it pins jsonschema 2.6, so it gets a venv of its own under ``.bench/``)
reads the same file. Two streams: the messy one (``messy_stream.py``: every canonical field,
a ``raw`` object, numbers as people type them) and one of small records (id, parent_id,
number, phone_type). Each figure is one run from start to end, timed, with its peak RSS from
``wait4``. ``--huge N`` adds one dry run of N messy records, to show that it ends.

Run: ``python -m benchmarks.cpu --records 1000000``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import random
import subprocess
import sys
import tempfile
import time
import typing as t

from benchmarks.messy_stream import singer_lines
from crmphones_emulators import EmulatorServer, outreach
from crmphones_emulators.fake import messy_phone

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench"
TOKEN = "bench-token"  # the emulator's own
PARENTS = 50_000


def small_lines(count: int, stream: str = "phone_numbers") -> Iterator[str]:
    """SCHEMA, ``count`` small records (id, parent_id, number, phone_type), a closing STATE;
    the numbers are the messy stream's kind (as people type them)."""
    rng = random.Random("bench-small")
    text = {"type": ["string", "null"]}
    yield json.dumps({"type": "SCHEMA", "stream": stream, "key_properties": ["id"], "schema": {
        "type": "object", "properties": dict.fromkeys(("id", "parent_id", "number", "phone_type"),
                                                      text)}})
    for index in range(1, count + 1):
        number = messy_phone(rng)
        yield json.dumps({"type": "RECORD", "stream": stream, "record": {
            "id": str(index), "parent_id": str(rng.randint(1, PARENTS)), "number": number,
            "phone_type": rng.choice(("mobile", "work", "home"))}})
    yield json.dumps({"type": "STATE", "value": {"bookmarks": {stream: {"done": count}}}})


STREAMS: dict[str, Callable[[int], Iterator[str]]] = {"messy": singer_lines, "small": small_lines}


def stream_file(kind: str, records: int) -> pathlib.Path:
    """The ``kind`` stream of ``records`` records, written once and kept under ``.bench/``."""
    BENCH.mkdir(exist_ok=True)
    path = BENCH / f"{kind}-{records}.singer"
    if not path.exists():
        partial = path.with_suffix(".partial")
        with partial.open("w") as out:
            out.writelines(line + "\n" for line in STREAMS[kind](records))
        partial.rename(path)
    return path


def target_jsonl() -> pathlib.Path:
    """target-jsonl's executable in its own venv (created on first use)."""
    venv = BENCH / "target-jsonl-venv"
    executable = venv / "bin" / "target-jsonl"
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "target-jsonl==0.1.4"], check=True)
    return executable


#: Starts the command from a small process and reports its peak RSS. Linux keeps a process's
#: peak across exec, so a command spawned straight from this (large) process would be charged
#: with this process's size.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\npeak-rss-kib {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


class Held(t.NamedTuple):
    """One run's figures."""

    seconds: float
    peak_rss_mib: float


def measure(command: list[str], stdin: pathlib.Path, cwd: str) -> Held:
    """Run one command on the file: its time and its peak RSS."""
    log = pathlib.Path(cwd, "stderr.log")
    started = time.perf_counter()
    with stdin.open("rb") as source, open(os.devnull, "wb") as sink, log.open("wb") as errors:
        code = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *command], stdin=source,
                              stdout=sink, stderr=errors, cwd=cwd, check=False).returncode
    seconds = time.perf_counter() - started
    text = log.read_text(errors="replace")
    if code:
        msg = f"{command[0]} failed ({code}):\n{text[-2000:]}"
        raise RuntimeError(msg)
    peak = int(text.rsplit("peak-rss-kib ", 1)[1].split()[0]) / 1024  # Linux reports KiB
    return Held(seconds, peak)


def crmphones_dry_run(path: pathlib.Path, server_url: str, normalizer: str) -> Held:
    """target-crmphones in dry run on the file, against the emulated account."""
    with tempfile.TemporaryDirectory() as work:
        # The run report is on (under `work`), as by default: its end-of-run queries count.
        config = {"provider": "outreach", "api_url": f"{server_url}/api/v2", "access_token": TOKEN,
                  "max_requests_per_minute": 0,
                  "dry_run": True, "phone_normalizer": normalizer,
                  "staging_path": os.path.join(work, "ledger.duckdb")}
        config_path = os.path.join(work, "config.json")
        pathlib.Path(config_path).write_text(json.dumps(config))
        return measure([sys.executable, "-m", "target_crmphones", "--config", config_path],
                       path, work)


def jsonl_run(path: pathlib.Path) -> Held:
    """target-jsonl on the file."""
    with tempfile.TemporaryDirectory() as work:
        config_path = os.path.join(work, "config.json")
        pathlib.Path(config_path).write_text(json.dumps({"destination_path": work}))
        return measure([str(target_jsonl()), "--config", config_path], path, work)


def normalizers() -> list[str]:
    """The normalizers installed here."""
    try:
        import rphonenumbers  # noqa: F401
    except ImportError:
        return ["phonenumbers"]
    return ["phonenumbers", "rphonenumbers"]


def report(records: int, small: int, huge: int = 0) -> None:
    """Every tool on both streams at ``small`` and ``records`` records, side by side; the
    ratios to target-jsonl and the memory growth; then the ``huge`` run, if asked."""
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print("| stream | records | tool | s | records/s | vs target-jsonl | peak RSS MiB |")
    print("|---|---:|---|---:|---:|---:|---:|")
    app = outreach.OutreachApp(records=0, parents=PARENTS, seed=3, token=TOKEN, rate_limit=10**9)
    peaks: dict[tuple[str, str, int], float] = {}
    with EmulatorServer(app) as server:
        for count in (small, records):
            for kind in STREAMS:
                path = stream_file(kind, count)
                jsonl = jsonl_run(path)
                _row(kind, count, "target-jsonl 0.1.4", jsonl, jsonl)
                for normalizer in normalizers():
                    held = crmphones_dry_run(path, server.url, normalizer)
                    _row(kind, count, f"target-crmphones dry run, {normalizer}", held, jsonl)
                    peaks[kind, normalizer, count] = held.peak_rss_mib
        for (kind, normalizer, count), peak in peaks.items():
            if count == records:
                print(f"{kind}, {normalizer}: {peak:.0f} MiB at {records:,}, "
                      f"{peak / peaks[kind, normalizer, small]:.2f}x the {small:,} run")
        if huge:
            held = crmphones_dry_run(stream_file("messy", huge), server.url, "phonenumbers")
            print(f"messy, phonenumbers, {huge:,} records: ended in {held.seconds:.0f} s, "
                  f"peak RSS {held.peak_rss_mib:.0f} MiB")


def _row(kind: str, count: int, tool: str, held: Held, jsonl: Held) -> None:
    print(f"| {kind} | {count:,} | {tool} | {held.seconds:.1f} | {count / held.seconds:,.0f} | "
          f"{jsonl.seconds / held.seconds:.2f}x | {held.peak_rss_mib:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000,
                        help="the smaller run, for the memory ratio")
    parser.add_argument("--huge", type=int, default=0,
                        help="also one dry run of this many messy records (e.g. 3000000)")
    args = parser.parse_args()
    report(args.records, args.small, args.huge)


if __name__ == "__main__":
    main()
