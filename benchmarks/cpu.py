"""The target's CPU path beside target-jsonl, on the same messy stream, and its memory.

target-crmphones runs in ``dry_run`` (parse, check, normalize, stage, de-duplicate, diff
against an emulated account, plan: everything but the writes) with each normalization backend;
target-jsonl 0.1.4 (it pins jsonschema 2.6, so it gets a venv of its own under
``.bench/``) reads the same file. Each figure is one run from start to end, timed and with its
peak RSS from ``wait4``; the target's intake process (a second, forked process, on by default)
is counted too: every 50 ms the target's RSS and the pages its intake process holds alone (not
shared with the target) are summed, and "in all" is the most they held together (at least the
target's own peak). With ``intake_process: false`` the target runs as one process.

Of "in all", the part that is mapped files (the libraries' code: DuckDB's, Arrow's) is
printed beside it. It depends on the machine's page cache more than on the run: on Linux 6.18
with ext4, libraries that pip has just written are cached in large folios and mapped whole:
about 35 MiB more in all at 1,000,000 records (296 against 261 MiB with rphonenumbers, 268
against 234 with phonenumbers) than once they have been read back from disk (after ``echo 3 >
/proc/sys/vm/drop_caches``), for the same run.
Run: ``python -m benchmarks.cpu --records 1000000 --rounds 3``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t

from benchmarks.messy_stream import singer_lines
from crmphones_emulators import EmulatorServer, outreach

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench"
TOKEN = "bench-token"  # the emulator's own


def stream_file(records: int) -> pathlib.Path:
    """The messy stream of ``records`` records, written once and kept under ``.bench/``."""
    BENCH.mkdir(exist_ok=True)
    path = BENCH / f"messy-{records}.singer"
    if not path.exists():
        partial = path.with_suffix(".partial")
        with partial.open("w") as out:
            out.writelines(line + "\n" for line in singer_lines(records))
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
#: with this process's size: target-jsonl showed 161 MiB under `benchmarks.run`, 51 alone.
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
    #: The command's own peak RSS (exact, from ``wait4``), MiB.
    peak_rss: float
    #: The most its children (the intake process) held alone at once, MiB (sampled).
    children_own: float
    #: The most the command and its children held together at once, MiB: the command's RSS
    #: plus its children's private pages, sampled; at least ``peak_rss``.
    together: float
    #: Of ``together``, the command's pages of mapped files (its libraries), MiB.
    files: float
    log: str


def measure(command: list[str], stdin: pathlib.Path, cwd: str) -> Held:
    """Run one process on the file, sampling what it and its children hold every 50 ms.

    A forked child shares most of its pages with its parent: its private pages are what it
    adds. The peaks of the two need not coincide, so they are summed sample by sample.
    """
    log = pathlib.Path(cwd, "stderr.log")
    started = time.perf_counter()
    children_own = together = files = 0.0
    with stdin.open("rb") as source, open(os.devnull, "wb") as sink, log.open("wb") as errors:
        launcher = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, *command],
                                    stdin=source, stdout=sink, stderr=errors, cwd=cwd)
        while launcher.poll() is None:
            for pid in _children(launcher.pid):  # the command
                rss, kids = held_kib(pid)
                children_own = max(children_own, kids / 1024)
                if (rss + kids) / 1024 > together:
                    together = (rss + kids) / 1024
                    files = _kib(f"/proc/{pid}/status", "RssFile") / 1024
            time.sleep(0.05)
    seconds = time.perf_counter() - started
    text = log.read_text(errors="replace")
    if launcher.returncode:
        msg = f"{command[0]} failed ({launcher.returncode}):\n{text[-2000:]}"
        raise RuntimeError(msg)
    peak = int(text.rsplit("peak-rss-kib ", 1)[1].split()[0]) / 1024  # Linux reports KiB
    return Held(seconds, peak, children_own, max(together, peak), files, text)


def held_kib(pid: int) -> tuple[int, int]:
    """A process's resident memory, and the pages its children (forked) hold alone, KiB;
    0 for what has ended."""
    kids = sum(_kib(f"/proc/{kid}/smaps_rollup", "Private_Clean", "Private_Dirty")
               for kid in _children(pid))
    return _kib(f"/proc/{pid}/status", "VmRSS"), kids


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(child) for child in listing.read().split()]
    except OSError:  # it has just ended
        return []


def _kib(path: str, *fields: str) -> int:
    """The sum of these fields of a /proc file (kB), 0 once the process has ended."""
    total = 0
    try:
        with open(path) as figures:
            for line in figures:
                name, _, value = line.partition(":")
                if name in fields:
                    total += int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return total


#: What the target logs of its intake process at the end of the input.
_INTAKE_FIGURES = "intake process: peak RSS "


def crmphones_dry_run(path: pathlib.Path, server_url: str, backend: str, *,
                      intake_process: bool = True) -> Held:
    """target-crmphones in dry run on the file, against the emulated account."""
    with tempfile.TemporaryDirectory() as work:
        # The run report is on (under `work`), as by default: its end-of-run queries count.
        config = {"provider": "outreach", "api_url": f"{server_url}/api/v2", "access_token": TOKEN,
                  "dry_run": True, "phone_normalizer": backend, "intake_process": intake_process,
                  "staging_path": os.path.join(work, "ledger.duckdb")}
        config_path = os.path.join(work, "config.json")
        pathlib.Path(config_path).write_text(json.dumps(config))
        held = measure(
            [sys.executable, "-m", "target_crmphones", "--config", config_path], path, work)
    if intake_process and _INTAKE_FIGURES not in held.log:
        msg = "the target ran without its intake process"
        raise RuntimeError(msg)
    return held


def jsonl_run(path: pathlib.Path) -> Held:
    """target-jsonl on the file."""
    with tempfile.TemporaryDirectory() as work:
        config_path = os.path.join(work, "config.json")
        pathlib.Path(config_path).write_text(json.dumps({"destination_path": work}))
        return measure([str(target_jsonl()), "--config", config_path], path, work)


#: The target's runs: tool label, normalizer, whether the intake process is on.
_TARGET_RUNS = (
    ("target-crmphones dry run", "phonenumbers", True),
    ("target-crmphones dry run", "rphonenumbers", True),
    ("target-crmphones dry run, one process", "phonenumbers", False),
)


def cpu_path(records: int, small: int, rounds: int = 1) -> list[dict[str, t.Any]]:
    """Every run, as rows: tool, backend, records, round, seconds, records/s, memory.

    The larger size runs ``rounds`` times, every tool once a round, so that each round's
    ratio compares runs minutes apart: on a shared machine a run's speed can vary by a third
    from one quarter of an hour to the next."""
    rows = []
    # The account holds the stream's 50,000 prospects and no phone: every valid one is a create.
    app = outreach.OutreachApp(records=0, parents=50_000, seed=3, token=TOKEN,
                               rate_limit=10**9)
    with EmulatorServer(app) as server:
        for count, repeats in ((small, 1), (records, rounds)):
            path = stream_file(count)
            runs = [("target-jsonl 0.1.4", "-", lambda p=path: jsonl_run(p))]
            runs += [(tool, backend, lambda p=path, b=backend, i=intake: crmphones_dry_run(
                p, server.url, b, intake_process=i)) for tool, backend, intake in _TARGET_RUNS]
            for number in range(1, repeats + 1):
                for tool, backend, run in runs:
                    held = run()
                    rows.append({"tool": tool, "backend": backend, "records": count,
                                 "round": number, "seconds": round(held.seconds, 1),
                                 "per_second": round(count / held.seconds),
                                 "peak_rss_mib": round(held.peak_rss),
                                 "intake_own_mib": round(held.children_own),
                                 "in_all_mib": round(held.together),
                                 "files_mib": round(held.files)})
                    print_row(rows[-1])
    return rows


def print_row(row: dict[str, t.Any]) -> None:
    print(f"| {row['tool']} | {row['backend']} | {row['records']:,} | {row['round']} | "
          f"{row['seconds']} | "
          f"{row['per_second']:,} | {row['peak_rss_mib']} | {row['intake_own_mib'] or '-'} | "
          f"{row['in_all_mib']} | {row['files_mib']} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000,
                        help="the smaller run, for the memory ratio")
    parser.add_argument("--rounds", type=int, default=1,
                        help="times every tool runs at --records, in turn")
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    report(args.records, args.small, args.rounds)


def report(records: int, small: int, rounds: int = 1) -> None:
    """Run the CPU path at `small` and `records` records and print the table and ratios."""
    print("| tool | normalizer | records | round | s | records/s | peak RSS MiB | intake "
          "process's own MiB | in all MiB | of which mapped files MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = cpu_path(records, small, rounds)
    summarize(rows, records, small)


def summarize(rows: list[dict[str, t.Any]], records: int, small: int) -> None:
    """The two ratios the issue asks for: speed against target-jsonl (each round's, and their
    median), and memory growth (the largest of the rounds against the smaller run)."""
    def pick(tool: str, backend: str, count: int) -> list[dict[str, t.Any]]:
        return [r for r in rows if r["tool"] == tool and r["backend"] == backend
                and r["records"] == count]
    jsonl = pick("target-jsonl 0.1.4", "-", records)
    for tool, backend, _ in _TARGET_RUNS:
        ours, (ours_small,) = pick(tool, backend, records), pick(tool, backend, small)
        ratios = [mine["per_second"] / theirs["per_second"]
                  for mine, theirs in zip(ours, jsonl, strict=True)]
        largest = max(ours, key=lambda r: r["in_all_mib"])
        memory, files = largest["in_all_mib"], largest["files_mib"]
        each = f" (rounds: {', '.join(f'{r:.2f}x' for r in ratios)})" if len(ratios) > 1 else ""
        print(f"{tool}, {backend}: {statistics.median(ratios):.2f}x target-jsonl's throughput "
              f"at {records:,}{each}; {memory} MiB in all ({memory * 1.048576:.0f} MB; "
              f"{files} MiB of it mapped files), "
              f"{memory / ours_small['in_all_mib']:.2f}x the {small:,} run")


if __name__ == "__main__":
    main()
