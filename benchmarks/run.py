"""Benchmarks against the emulators; prints a table (`python benchmarks/run.py [--records N]`).

Scenarios (the first two of issue 7; rate-budget saturation, tap concurrency and memory are
still to come):
- requests per changed phone, per dialect: a destination that already holds every phone of
  the input except 10% (5% new numbers, 5% with another type); the requests the target makes
  (reads to diff included) per phone created or updated, beside the naive count (one read per
  parent plus one write per record);
- CPU path: the target's normalize -> stage -> de-duplicate -> plan, in dry run, over messy
  records against an account with no phones (one read per batch), in records per second.
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

from crmphones.emulator import EmulatorServer, activix, onedegree, outreach, ticketevolution
from crmphones.emulator.fake import messy_phone
from tests.reliability.conftest import DESTINATIONS, SECRET, TOKEN

PARENT_TYPE = {"outreach": "prospect", "activix": "lead", "onedegree": "organization",
               "ticketevolution": "client"}
TYPES = {"activix": ("mobile", "work", "home")}


def _run_target(config: dict[str, t.Any], lines: list[str], workdir: str) -> float:
    path = os.path.join(workdir, "target.json")
    with open(path, "w") as handle:
        json.dump({**config, "report_dir": ""}, handle)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "target_crmphones", "--config", path],
                   input="\n".join(lines) + "\n", capture_output=True, text=True, check=True,
                   cwd=workdir)
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


def requests_per_changed_phone(dialect: str, count: int) -> dict[str, t.Any]:
    parents = max(1, count // 3)
    rng = random.Random(f"bench-{dialect}")
    records = _records(dialect, count, parents, rng)
    kinds = TYPES.get(dialect, ("mobile", "work", "home", "fax", "main"))
    changed = list(records)
    for index in range(0, count, 10):  # 10%: every tenth is new (kept out of the seed load)
        if index % 20 == 10:  # half of them: another type instead
            changed[index] = {**records[index], "phone_type": next(
                k for k in kinds if k != records[index]["phone_type"])}
    seed_load = [r for i, r in enumerate(records) if i % 20 != 0]
    builders = {
        "outreach": lambda: outreach.OutreachApp(records=0, parents=parents, seed=3, token=TOKEN),
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


def cpu_path(count: int) -> dict[str, t.Any]:
    """Dry run over `count` messy records on 5,000 prospects of an empty Outreach account."""
    rng = random.Random("bench-cpu")
    records = [{"parent_id": str(rng.randint(1, 5000)), "number": messy_phone(rng),
                "label": rng.choice(("Cell", "Office", None))} for _ in range(count)]
    with EmulatorServer(outreach.OutreachApp(records=0, parents=5000, seed=3, token=TOKEN)
                        ) as server, tempfile.TemporaryDirectory() as work:
        config = {**DESTINATIONS["outreach"].settings(server.url), "dry_run": True,
                  "staging_path": os.path.join(work, "ledger.duckdb")}
        seconds = _run_target(config, _lines(records), work)
    return {"records": count, "seconds": round(seconds, 1), "per_second": round(count / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--cpu-records", type=int, default=100_000)
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("\nrequests per changed phone (10% of the input changed)")
    print("| dialect | records | parents | created | updated | requests | per changed phone | naive | s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for dialect in DESTINATIONS:
        row = requests_per_changed_phone(dialect, args.records)
        print(f"| {row['dialect']} | {row['records']} | {row['parents']} | {row['created']} | "
              f"{row['updated']} | {row['requests']} | {row['per_changed']} | {row['naive']} | "
              f"{row['seconds']} |", flush=True)
    cpu = cpu_path(args.cpu_records)
    print(f"\nCPU path (dry run, process start included): {cpu['records']} messy records in "
          f"{cpu['seconds']} s = {cpu['per_second']} records/s")


if __name__ == "__main__":
    main()
