"""Every benchmark against the emulators, one table each: `python -m benchmarks.run`.

- requests per changed phone, per dialect (here): a destination that already holds every
  phone of the input except 10% (5% new numbers, 5% with another type); the requests the
  target makes (reads to diff included) per phone created or updated, beside the naive count
  (one read per parent plus one write per record);
- rate budget saturated, and adapting when the limit drops (``rate_budget.py``);
- tap concurrency, cursor paging and the emulators' own capacity (``reads.py``);
- CPU path and memory beside target-jsonl (``cpu.py``).

Each module also runs alone (``python -m benchmarks.cpu --records 200000``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import typing as t

import duckdb

from benchmarks import cpu, rate_budget, reads
from crmphones_emulators import EmulatorServer, activix, onedegree, outreach, ticketevolution
from tests.reliability.conftest import DESTINATIONS, SECRET, TOKEN

PARENT_TYPE = {"outreach": "prospect", "activix": "lead", "onedegree": "organization",
               "ticketevolution": "client"}
TYPES = {"activix": ("mobile", "work", "home")}


def _run_target(config: dict[str, t.Any], lines: list[str], workdir: str) -> float:
    path = os.path.join(workdir, "target.json")
    with open(path, "w") as handle:
        json.dump({**config, "report_dir": ""}, handle)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "target_crmphones", "--config", path],
                            input="\n".join(lines) + "\n", capture_output=True, text=True,
                            check=False, cwd=workdir)
    if result.returncode:
        msg = f"target-crmphones failed ({result.returncode}):\n{result.stderr[-3000:]}"
        raise RuntimeError(msg)
    return time.perf_counter() - started


def _records(dialect: str, count: int, parents: int, rng: random.Random) -> list[dict[str, t.Any]]:
    kinds = TYPES.get(dialect, ("mobile", "work", "home", "fax", "main"))
    out, used = [], set()
    while len(out) < count:
        parent = str(rng.randint(1, parents))
        kind = kinds[len(out) % len(kinds)]
        number = f"+1212{rng.randint(2000000, 9999999)}"
        if (parent, number) in used or (dialect == "activix" and (parent, kind) in used):
            continue
        used |= {(parent, number), (parent, kind)}
        out.append({"parent_type": PARENT_TYPE[dialect], "parent_id": parent, "number": number,
                    "phone_type": kind})
    return out


def _lines(records: list[dict[str, t.Any]]) -> list[str]:
    return [json.dumps({"type": "SCHEMA", "stream": "phones", "key_properties": [],
                        "schema": {"type": "object", "properties": {}}}),
            *(json.dumps({"type": "RECORD", "stream": "phones", "record": r}) for r in records)]


def requests_per_changed_phone(dialect: str, count: int, *, primaries: bool = False
                               ) -> dict[str, t.Any]:
    """The table's row for one dialect; with ``primaries``, each parent's first phone is its
    primary and every new number becomes its parent's primary (the old one is written not
    primary: one more write each, the worst case for a primary flag)."""
    # Three phones a parent; Activix holds one phone per type and has three types, so its
    # parents get slack (exactly count / 3 parents would leave no free slot to draw).
    parents = max(1, count // (2 if dialect == "activix" else 3))
    rng = random.Random(f"bench-{dialect}")
    records = _records(dialect, count, parents, rng)
    if primaries:
        first: set[str] = set()
        for record in records:
            record["is_primary"] = record["parent_id"] not in first
            first.add(record["parent_id"])
    kinds = TYPES.get(dialect, ("mobile", "work", "home", "fax", "main"))
    changed = list(records)
    for index in range(0, count, 10):  # 10%: every tenth is new (kept out of the seed load)
        if index % 20 == 10:  # half of them: another type instead
            changed[index] = {**records[index], "phone_type": next(
                k for k in kinds if k != records[index]["phone_type"])}
        elif primaries:
            changed[index] = {**records[index], "is_primary": True}
            for other in range(count):  # the parent's other phones are not primary now
                if other != index and changed[other]["parent_id"] == records[index]["parent_id"]:
                    changed[other] = {**changed[other], "is_primary": False}
    seed_load = [r for i, r in enumerate(records) if i % 20 != 0]
    builders = {
        # Outreach allows 10,000 requests an hour: the seed load alone would spend two hours.
        "outreach": lambda: outreach.OutreachApp(records=0, parents=parents, seed=3, token=TOKEN,
                                                 rate_limit=10**9),
        "activix": lambda: activix.ActivixApp(records=0, parents=parents, seed=3, token=TOKEN,
                                              rate_limit=10**9),
        "onedegree": lambda: onedegree.OneDegreeApp(records=0, parents=parents, seed=3,
                                                    api_key=TOKEN, api_secret=SECRET),
        "ticketevolution": lambda: ticketevolution.TicketEvolutionApp(
            records=0, parents=parents, seed=3, token=TOKEN, secret=SECRET, rate_limit=10**9),
    }
    with EmulatorServer(builders[dialect]()) as server, tempfile.TemporaryDirectory() as work:
        config = {**DESTINATIONS[dialect].settings(server.url),
                  "staging_path": os.path.join(work, "ledger.duckdb")}
        _run_target(config, _lines(seed_load), work)
        server.requests.clear()
        seconds = _run_target(config, _lines(changed), work)
        requests = len(server.requests)
        writes = sum(1 for r in server.requests if r.method in ("POST", "PUT", "PATCH"))
        with duckdb.connect(config["staging_path"], read_only=True) as con:
            created, updated = con.execute(
                "SELECT created, updated FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    return {"dialect": dialect, "records": count, "parents": parents, "created": created,
            "updated": updated, "requests": requests, "writes": writes,
            "per_changed": round(requests / max(1, created + updated), 2),
            "naive": parents + count, "seconds": round(seconds, 1)}


def report_requests(records: int) -> None:
    """Print the requests-per-changed-phone table, every dialect."""
    print("\nrequests per changed phone (10% of the input changed; reads to diff included)")
    print("| dialect | records | parents | created | updated | requests | per changed phone "
          "| naive | s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = [(dialect, False) for dialect in DESTINATIONS]
    rows += [("onedegree", True), ("ticketevolution", True)]  # the dialects with a primary flag
    for dialect, primaries in rows:
        row = requests_per_changed_phone(dialect, records, primaries=primaries)
        name = f"{row['dialect']}, new numbers primary" if primaries else row["dialect"]
        print(f"| {name} | {row['records']} | {row['parents']} | {row['created']} | "
              f"{row['updated']} | {row['requests']} | {row['per_changed']} | {row['naive']} | "
              f"{row['seconds']} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000,
                        help="phones per dialect in the requests-per-changed-phone load")
    parser.add_argument("--cpu-records", type=int, default=1_000_000,
                        help="records of the CPU path's messy stream (and a tenth, for memory)")
    parser.add_argument("--parents", type=int, default=1000, help="parents in the tap scenario")
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}", flush=True)
    report_requests(args.records)
    print("\nrate budget: the target against an Outreach emulator that allows R requests a "
          "second and answers in L ms", flush=True)
    rate_budget.report()
    print(flush=True)
    reads.report(parents=args.parents)
    print("\nCPU path and memory: the target in dry run beside target-jsonl on the same "
          "messy stream", flush=True)
    cpu.report(args.cpu_records, max(1, args.cpu_records // 10))


if __name__ == "__main__":
    main()
