"""Read-side benchmarks against the emulators; prints tables (`python benchmarks/reads.py`).

- tap concurrency: 1,000 parents at 20 ms latency, one child collection each, read by the tap
  (a subprocess, `python -m tap_crmphones`, as Meltano runs it) with `max_concurrency` 1 and 8:
  speed-up, whether records and final state are identical, and the most requests the
  emulator saw in any one second against the pace and the emulator's own limit;
- cursor paging: Outreach `phoneNumbers` over N cursor pages at 20 ms latency, walked by the
  dialect in-process (fetching one page ahead) and by a plain page-after-page loop, against
  pages x latency; and the tap end to end;
- emulator capacity: requests a second each emulator serves with no latency, to eight
  client threads in another process, so the figures above are not the emulator's.

"Extraction" is timed on the emulator's request log, from the first request to the last
plus one latency (process start and discovery left out); "wall" is the whole process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import typing as t

from crmphones.settings import dialect_for
from crmphones_emulators import EmulatorServer, Faults
from crmphones_emulators.onedegree import OneDegreeApp
from crmphones_emulators.outreach import OutreachApp
from crmphones_emulators.ticketevolution import TicketEvolutionApp

if t.TYPE_CHECKING:
    from crmphones_emulators.server import DialectApp, LoggedRequest

KEY, SECRET = "bench-key", "bench-secret"
# Child streams: One Degree pages each organization's opportunities; Ticket Evolution's
# clients index is told not to embed phones, so each client's list is read.
CHILD_STREAM = {"onedegree": "opportunity_phones", "ticketevolution": "client_phone_numbers"}


def _config(dialect: str, url: str, **extra: t.Any) -> dict[str, t.Any]:
    if dialect == "onedegree":
        return {"provider": "onedegree", "api_url": f"{url}/v1", "api_key": KEY,
                "api_secret": SECRET, **extra}
    if dialect == "ticketevolution":
        return {"provider": "ticketevolution", "api_url": f"{url}/v9", "api_token": KEY,
                "api_secret": SECRET, **extra}
    return {"provider": "outreach", "api_url": f"{url}/api/v2", "access_token": KEY,
            "max_requests_per_minute": 0, **extra}


def _child_app(dialect: str, parents: int, limit_per_second: int) -> DialectApp:
    if dialect == "onedegree":
        return OneDegreeApp(records=parents, parents=parents, seed=3, api_key=KEY,
                            api_secret=SECRET, rate_limit=limit_per_second, rate_window=1.0)
    return TicketEvolutionApp(records=2 * parents, parents=parents, seed=3, token=KEY,
                              secret=SECRET, rate_limit=limit_per_second, rate_window=1.0,
                              index_embeds_phones=False)


def _run_tap(config: dict[str, t.Any], workdir: str, stream: str | None = None
             ) -> tuple[list[dict[str, t.Any]], dict[str, t.Any] | None, float]:
    """Run the tap; return (RECORD messages without time_extracted, final state, wall s)."""
    config_path = os.path.join(workdir, "tap.json")
    with open(config_path, "w") as handle:
        json.dump(config, handle)
    command = [sys.executable, "-m", "tap_crmphones", "--config", config_path]
    if stream:
        catalog = json.loads(subprocess.run([*command, "--discover"], capture_output=True,
                                            text=True, check=True).stdout)
        for entry in catalog["streams"]:
            for metadata in entry["metadata"]:
                if metadata["breadcrumb"] == []:
                    metadata["metadata"]["selected"] = entry["tap_stream_id"] == stream
        catalog_path = os.path.join(workdir, "catalog.json")
        with open(catalog_path, "w") as handle:
            json.dump(catalog, handle)
        command += ["--catalog", catalog_path]
    # The tap writes to a file, not a pipe: reading a pipe here would take the GIL from the
    # emulator's threads, which serve in this process, while the tap is being timed.
    output_path = os.path.join(workdir, "tap.out")
    with open(output_path, "wb") as output:
        started = time.perf_counter()
        subprocess.run(command, stdout=output, stderr=subprocess.DEVNULL, check=True)
        wall = time.perf_counter() - started
    with open(output_path) as output:
        out = output.read()
    records, state = [], None
    for line in out.splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            records.append({"stream": message["stream"], "record": message["record"]})
        elif message["type"] == "STATE":
            state = message["value"]
    return records, state, wall


def _extraction(log: list[LoggedRequest], latency_ms: float) -> float:
    return log[-1].at - log[0].at + latency_ms / 1000 if log else 0.0


def _most_in_one_second(log: list[LoggedRequest]) -> int:
    """The most requests whose arrival falls in any sliding one-second window."""
    times, most, start = sorted(r.at for r in log), 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def tap_concurrency(dialect: str = "onedegree", parents: int = 1000, latency_ms: float = 20,
                    workers: int = 8, per_minute: int = 24_000, limit_per_second: int = 450
                    ) -> dict[str, t.Any]:
    """Child collections of `parents` parents, max_concurrency 1 vs `workers`.

    The client paces to `per_minute`; the emulator refuses beyond `limit_per_second` in any
    fixed one-second window (429 for One Degree, 503 for Ticket Evolution).
    """
    app = _child_app(dialect, parents, limit_per_second)
    runs: dict[int, dict[str, t.Any]] = {}
    with EmulatorServer(app, faults=Faults(latency_ms=latency_ms)) as server, \
            tempfile.TemporaryDirectory() as work:
        for concurrency in (1, workers):
            config = _config(dialect, server.url, max_concurrency=concurrency,
                             max_requests_per_minute=per_minute)
            server.requests.clear()
            records, state, wall = _run_tap(config, work, CHILD_STREAM[dialect])
            log = list(server.requests)
            runs[concurrency] = {
                "records": records, "state": state, "wall": wall, "requests": len(log),
                "extraction": _extraction(log, latency_ms), "most_in_1s": _most_in_one_second(log),
                "refused": sum(1 for r in log if r.status in (429, 503))}
    one, many = runs[1], runs[workers]
    return {
        "dialect": dialect, "stream": CHILD_STREAM[dialect], "parents": parents,
        "latency_ms": latency_ms, "workers": workers, "requests": one["requests"],
        "records": len(one["records"]),
        "sequential_s": round(one["extraction"], 2), "concurrent_s": round(many["extraction"], 2),
        "speedup": round(one["extraction"] / many["extraction"], 1),
        "wall_sequential_s": round(one["wall"], 2), "wall_concurrent_s": round(many["wall"], 2),
        "wall_speedup": round(one["wall"] / many["wall"], 1),
        "same_records": one["records"] == many["records"], "same_state": one["state"] == many["state"],
        "same_requests": one["requests"] == many["requests"],
        "most_in_1s": many["most_in_1s"], "pace_per_s": round(per_minute / 60),
        "limit_per_s": limit_per_second, "refused": one["refused"] + many["refused"],
    }


def _plain_walk(dialect: t.Any, params: dict[str, str]) -> int:
    """The paginator as it was: fetch a page, hand out its items, then ask for the next."""
    count, url, query = 0, "phoneNumbers", params
    while url:
        page = dialect._get_page(url, query)  # the very request the dialect makes
        for resource in page.get("data") or []:
            dialect.to_phone_record(resource).to_dict()
            count += 1
        url, query = (page.get("links") or {}).get("next"), None
    return count


def cursor_paging(pages: int = 50, page_size: int = 20, latency_ms: float = 20
                  ) -> dict[str, t.Any]:
    """One Outreach cursor collection of `pages` pages: elapsed against pages x latency."""
    app = OutreachApp(records=pages * page_size, parents=pages * page_size // 3, seed=3,
                      token=KEY)
    with EmulatorServer(app, faults=Faults(latency_ms=latency_ms)) as server, \
            tempfile.TemporaryDirectory() as work:
        config = _config("outreach", server.url, page_size=page_size)
        dialect = t.cast("t.Any", dialect_for(config))
        try:
            params = {"page[size]": str(page_size), "sort": "updatedAt", "count": "false"}
            server.faults.latency_ms = 0
            started = time.perf_counter()
            _plain_walk(dialect, params)
            bare = time.perf_counter() - started
            server.faults.latency_ms = latency_ms
            started = time.perf_counter()
            plain = _plain_walk(dialect, params)
            plain_s = time.perf_counter() - started
            server.requests.clear()
            started = time.perf_counter()
            walked = sum(1 for _ in dialect.read("phone_numbers", None))
            ahead_s = time.perf_counter() - started
            fetched = len(server.requests)
        finally:
            dialect.close()
        server.requests.clear()
        records, _, wall = _run_tap(config, work)
        tap_s = _extraction(server.requests, latency_ms)
    ideal = fetched * latency_ms / 1000
    assert walked == plain == len(records) == pages * page_size
    return {"pages": fetched, "page_size": page_size, "latency_ms": latency_ms,
            "ideal_s": round(ideal, 2), "serve_ms_per_page": round(1000 * bare / fetched, 1),
            "plain_s": round(plain_s, 2), "plain_ratio": round(plain_s / ideal, 2),
            "ahead_s": round(ahead_s, 2), "ahead_ratio": round(ahead_s / ideal, 2),
            "tap_s": round(tap_s, 2), "tap_ratio": round(tap_s / ideal, 2),
            "tap_wall_s": round(wall, 2)}


_LOAD = """
import sys, threading, time, httpx
from crmphones.auth import TicketEvolutionSigner
base, paths, threads, count = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), int(sys.argv[4])
headers = {"Authorization": "Bearer %s" % sys.argv[5]}
auth = TicketEvolutionSigner(sys.argv[5], sys.argv[6]) if "/v9/" in base + paths[0] else None
def work(k):
    with httpx.Client(base_url=base, headers=headers, auth=auth) as client:
        for i in range(k, count, threads):
            client.get(paths[i % len(paths)])
pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
started = time.perf_counter()
[p.start() for p in pool]; [p.join() for p in pool]
print(time.perf_counter() - started)
"""


def emulator_capacity(requests: int = 2000, threads: int = 8) -> list[dict[str, t.Any]]:
    """Requests a second each emulator answers with no latency (the load from another process,
    whose own client work is counted too: the figures are lower bounds)."""
    cases = [
        ("onedegree", OneDegreeApp(records=1000, parents=1000, seed=3, api_key=KEY,
                                   api_secret=SECRET),
         [f"/v1/organizations/{i}/opportunities?api_key={KEY}&page=1&per_page=100"
          for i in range(1, 1001)], "GET organizations/:id/opportunities"),
        ("ticketevolution", TicketEvolutionApp(records=2000, parents=1000, seed=3, token=KEY,
                                               secret=SECRET, rate_limit=10**9),
         [f"/v9/clients/{i}/phone_numbers" for i in range(1, 1001)],
         "GET clients/:id/phone_numbers (signed)"),
        ("outreach", OutreachApp(records=1000, parents=333, seed=3, token=KEY),
         ["/api/v2/phoneNumbers?page%5Bsize%5D=20&sort=updatedAt&count=false"],
         "GET phoneNumbers, first cursor page of 20 (1,000 rows sorted)"),
    ]
    rows = []
    for dialect, app, paths, what in cases:
        with EmulatorServer(app) as server:
            out = subprocess.run([sys.executable, "-c", _LOAD, server.url, ",".join(paths),
                                  str(threads), str(requests), KEY, SECRET],
                                 capture_output=True, text=True, check=True).stdout
            served = sum(1 for r in server.requests if r.status == 200)
        seconds = float(out.strip())
        rows.append({"dialect": dialect, "request": what, "requests": served,
                     "per_second": round(served / seconds)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parents", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--only", choices=("tap", "cursor", "capacity"))
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    report(args.parents, args.pages, args.only)


def report(parents: int = 1000, pages: int = 50, only: str | None = None) -> None:
    """Run the read-side scenarios (all, or `only` one) and print their tables."""
    if only in (None, "tap"):
        print("\ntap concurrency: child collections, max_concurrency 1 vs 8, 20 ms latency "
              "(tap as a subprocess; extraction from the request log)")
        print("| dialect | stream | parents | requests | records | 1 worker s | 8 workers s "
              "| speed-up | wall speed-up | same records | same state | max req in 1 s "
              "| pace /s | limit /s | refused |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|")
        for dialect in CHILD_STREAM:
            r = tap_concurrency(dialect, parents)
            print(f"| {r['dialect']} | {r['stream']} | {r['parents']} | {r['requests']} | "
                  f"{r['records']} | {r['sequential_s']} | {r['concurrent_s']} | "
                  f"{r['speedup']}x | {r['wall_speedup']}x | {r['same_records']} | "
                  f"{r['same_state']} | {r['most_in_1s']} | {r['pace_per_s']} | "
                  f"{r['limit_per_s']} | {r['refused']} |", flush=True)
    if only in (None, "cursor"):
        r = cursor_paging(pages)
        print(f"\ncursor paging: Outreach phoneNumbers, {r['pages']} pages of {r['page_size']}, "
              f"{r['latency_ms']:.0f} ms latency; pages x latency = {r['ideal_s']} s; the "
              f"emulator serves a page in {r['serve_ms_per_page']} ms (no latency, client "
              "time included)")
        print("| walk | s | / pages x latency |")
        print("|---|---:|---:|")
        print(f"| plain loop (page, its records, next page) | {r['plain_s']} | "
              f"{r['plain_ratio']} |")
        print(f"| dialect read, next page fetched ahead | {r['ahead_s']} | {r['ahead_ratio']} |")
        print(f"| tap end to end (extraction; wall {r['tap_wall_s']} s) | {r['tap_s']} | "
              f"{r['tap_ratio']} |", flush=True)
    if only in (None, "capacity"):
        print("\nemulator capacity, no latency, 8 client threads in another process")
        print("| dialect | request | requests | per second |")
        print("|---|---|---:|---:|")
        for r in emulator_capacity():
            print(f"| {r['dialect']} | {r['request']} | {r['requests']} | {r['per_second']} |")


if __name__ == "__main__":
    main()
