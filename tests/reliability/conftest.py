"""Harness for the reliability tests: each dialect's emulator, its settings, and a view of its
final state that two runs can be compared by (ids and timestamps left out)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import typing as t
from collections import Counter
from dataclasses import dataclass

import duckdb
import phonenumbers
import pytest

if t.TYPE_CHECKING:
    from collections.abc import Iterator

from crmphones_emulators import EmulatorServer, Faults
from crmphones_emulators.activix import ActivixApp
from crmphones_emulators.fake import messy_phone
from crmphones_emulators.onedegree import OneDegreeApp
from crmphones_emulators.outreach import OutreachApp
from crmphones_emulators.ticketevolution import TicketEvolutionApp
from target_crmphones.target import TargetCRMPhones
from tests.entry_points import process_state_restored

TOKEN = "reliability-token-s3cr3t"
SECRET = "reliability-secret-s3cr3t"
PARENTS = 120
#: Memory-backed where the machine has it (Linux): see `workdir`.
_TMPFS = pathlib.Path("/dev/shm")


@pytest.fixture
def workdir(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A fresh folder for a test's ledger, reports and config files, on tmpfs when there is
    one (else ``tmp_path``). The ledger is a real DuckDB file all the same; the target
    commits each record's outcome, and on a disk every commit waits for its fsync, which
    guards against losing power: no test here simulates that (a killed process's writes
    survive it in the page cache), so none needs to wait on a disk."""
    if not (_TMPFS.is_dir() and os.access(_TMPFS, os.W_OK)):
        yield tmp_path
        return
    folder = pathlib.Path(tempfile.mkdtemp(prefix="crmphones-reliability-", dir=_TMPFS))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Destination:
    """How to stand up, configure and read back one dialect's emulated account."""

    name: str
    build: t.Callable[..., t.Any]
    settings: t.Callable[[str], dict[str, t.Any]]
    view: t.Callable[[dict[str, t.Any]], list[tuple]]
    labels: tuple[str | None, ...] = ("Cell", "Office", "Home", None)


def _outreach_view(state: dict[str, t.Any]) -> list[tuple]:
    return sorted((p["relationships"]["prospect"]["data"]["id"], p["attributes"]["number"],
                   p["attributes"]["extension"] or "", p["attributes"]["phoneType"] or "")
                  for p in state["phoneNumbers"])


def _activix_view(state: dict[str, t.Any]) -> list[tuple]:
    return sorted((p["lead_id"], p["number"], p["extension"] or 0, p["type"])
                  for p in state["lead_phones"])


def _onedegree_view(state: dict[str, t.Any]) -> list[tuple]:
    return sorted((p["phoneable_type"], p["phoneable_id"], p["digits"], p["phone_type"],
                   p["is_primary"]) for p in state["phones"])


def _te_view(state: dict[str, t.Any]) -> list[tuple]:
    return sorted((p["client_id"], p["country_code"] or "", p["number"], p["extension"] or "",
                   p["label"] or "") for p in state["phone_numbers"])


DESTINATIONS = {
    "outreach": Destination(
        "outreach",
        lambda **kw: OutreachApp(**{"records": 0, "parents": PARENTS, "seed": 21, "token": TOKEN,
                                     **kw}),
        lambda url: {"provider": "outreach", "api_url": f"{url}/api/v2", "access_token": TOKEN,
                     "max_requests_per_minute": 0},
        _outreach_view),
    "activix": Destination(
        "activix",
        lambda **kw: ActivixApp(**{"records": 0, "parents": PARENTS, "seed": 21, "token": TOKEN,
                                    "rate_limit": 100_000, **kw}),
        lambda url: {"provider": "activix", "api_url": f"{url}/v2", "access_token": TOKEN,
                     "max_requests_per_minute": 0},
        _activix_view),
    "onedegree": Destination(
        "onedegree",
        lambda **kw: OneDegreeApp(**{"records": 0, "parents": PARENTS, "seed": 21,
                                      "api_key": TOKEN, "api_secret": SECRET, **kw}),
        lambda url: {"provider": "onedegree", "api_url": f"{url}/v1", "api_key": TOKEN,
                     "api_secret": SECRET},
        _onedegree_view),
    "ticketevolution": Destination(
        "ticketevolution",
        lambda **kw: TicketEvolutionApp(**{"records": 0, "parents": PARENTS, "seed": 21,
                                            "token": TOKEN, "secret": SECRET,
                                            "rate_limit": 100_000, **kw}),
        lambda url: {"provider": "ticketevolution", "api_url": f"{url}/v9", "api_token": TOKEN,
                     "api_secret": SECRET},
        _te_view),
}


def singer_input(dialect: str, records: int, seed: int = 5, state_every: int = 0) -> list[str]:
    """Messy phone records for `dialect`'s parents, as Singer lines (with STATE lines every
    `state_every` records when asked: {"bookmarks": {"phones": {"upto": n}}} after record n)."""
    rng = random.Random(f"input-{dialect}-{seed}")
    parent_type = {"outreach": "prospect", "activix": "lead", "onedegree": "organization",
                   "ticketevolution": "client"}[dialect]
    lines = [json.dumps({"type": "SCHEMA", "stream": "phones", "key_properties": [],
                         "schema": {"type": "object", "properties": {}}})]
    for n in range(1, records + 1):
        record = {"parent_type": parent_type, "parent_id": str(rng.randint(1, PARENTS)),
                  "number": messy_phone(rng),
                  "label": rng.choice(DESTINATIONS[dialect].labels)}
        lines.append(json.dumps({"type": "RECORD", "stream": "phones", "record": record}))
        if state_every and n % state_every == 0:
            lines.append(json.dumps({"type": "STATE", "value": {"bookmarks": {
                "phones": {"upto": n}}}}))
    return lines


def serve(dialect: str, faults: Faults | None = None, **app_options: t.Any) -> EmulatorServer:
    """A started emulator of a destination account: empty unless ``records`` seeds phones."""
    return EmulatorServer(DESTINATIONS[dialect].build(**app_options), faults=faults).start()


def writes_sent(server: EmulatorServer) -> int:
    """Requests that could change the account (POST, PUT, PATCH) the emulator has received."""
    return sum(1 for r in server.requests if r.method in ("POST", "PUT", "PATCH"))


def killed_among_writes(config: dict[str, t.Any], lines: list[str], workdir: pathlib.Path,
                        server: EmulatorServer, writes: int) -> list[str]:
    """target-crmphones as Meltano runs it (a subprocess fed ``lines``), killed with SIGKILL
    once ``writes`` more of its writes have reached ``server`` (or once it ended by itself):
    the lines it printed."""
    config_file = workdir / "target.json"
    config_file.write_text(json.dumps(config))
    before = writes_sent(server)
    process = subprocess.Popen(
        [sys.executable, "-m", "target_crmphones", "--config", str(config_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=workdir,
        text=True)
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write("\n".join(lines) + "\n")
    process.stdin.close()
    deadline = time.monotonic() + 60
    while writes_sent(server) - before < writes and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    printed = process.stdout.read().splitlines()
    process.wait(timeout=60)
    process.stdout.close()
    return printed


def run_counts(staging_path: str) -> list[dict[str, int]]:
    """Every run's counts in a staging file, oldest first."""
    with duckdb.connect(staging_path, read_only=True) as con:
        rows = con.execute("SELECT received, created, updated, unchanged, merged, rejected "
                           "FROM runs ORDER BY started_at").fetchall()
    keys = ("received", "created", "updated", "unchanged", "merged", "rejected")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def run_in_process(config: dict[str, t.Any], lines: list[str]) -> None:
    """One target run as Meltano's would be, in this process: the SDK's reader, sinks,
    batches of ``batch_size_rows`` and STATE handling; its STATE output dropped, its failure
    raised."""
    _, error = run_here(config, lines)
    if error is not None:
        raise error


def run_here(config: dict[str, t.Any], lines: list[str]) -> tuple[list[dict[str, t.Any]],
                                                                Exception | None]:
    """One target run in this process, for runs that are not about the process: the states
    it passed on (a target prints each as a line of JSON), and the error it failed with (None
    when it finished; the CLI prints that error's text as its last line and exits non-zero).
    What it changes for the whole process (its signal handlers) is put back afterwards."""
    out = io.StringIO()
    error: Exception | None = None
    with process_state_restored():
        try:
            target = TargetCRMPhones(config=config, validate_config=True)
            with contextlib.redirect_stdout(out):
                target.listen(file_input=io.StringIO("\n".join(lines) + "\n"))
        except Exception as exc:  # the run's failure is what the caller asserts on
            error = exc
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()], error


def clean_view(dialect: str, lines: list[str], folder: pathlib.Path, **settings: t.Any
               ) -> list[tuple]:
    """The destination after one clean run of `lines`, in this process: what every other run
    must reach (the reference a test compares with, not the subject of the test)."""
    server = serve(dialect)
    try:
        config = {**DESTINATIONS[dialect].settings(server.url), "report_dir": "",
                  "staging_path": str(folder / "clean.duckdb"), **settings}
        _, error = run_here(config, lines)
        assert error is None, error
        return DESTINATIONS[dialect].view(server.app.snapshot())
    finally:
        server.stop()


def held_keys(dialect: str, snapshot: dict[str, t.Any]) -> list[tuple[str, str, str]]:
    """(owner, E.164, extension) of every valid phone the account holds, read from the
    emulator's own state with libphonenumber (not the client's reading of it)."""
    def key(owner: t.Any, text: str | None, extension: t.Any = None, region: str | None = None
            ) -> tuple[str, str, str] | None:
        try:
            parsed = phonenumbers.parse(text or "", region or "US")
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(parsed):
            return None
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        return str(owner), e164, str(extension or parsed.extension or "")

    if dialect == "outreach":
        keys = [key(p["relationships"]["prospect"]["data"]["id"], p["attributes"]["number"],
                    p["attributes"]["extension"], p["attributes"]["countryCode"])
                for p in snapshot["phoneNumbers"]]
    elif dialect == "activix":
        keys = [key(p["lead_id"], p["number"], p["extension"]) for p in snapshot["lead_phones"]]
    elif dialect == "onedegree":
        keys = [key(f"{p['phoneable_type']} {p['phoneable_id']}", p["digits"])
                for p in snapshot["phones"]]
    else:
        keys = [key(p["client_id"], p["number"] if str(p["number"]).startswith("+") else
                    f"+{str(p['country_code'] or '1').lstrip('+')} {p['number']}", p["extension"])
                for p in snapshot["phone_numbers"]]
    return [k for k in keys if k is not None]


def assert_rerun_writes_nothing(server: EmulatorServer, dialect: str, lines: list[str],
                                **settings: t.Any) -> int:
    """Run ``lines`` twice in-process on ``server``'s account: the second run sends no write
    (POST, PUT or PATCH), and the runs made no phone the account holds twice (owner + E.164 +
    extension; a seeded account's own duplicates are its own). Returns the first run's
    writes."""
    before = Counter(held_keys(dialect, server.app.snapshot()))
    writes = []
    with tempfile.TemporaryDirectory() as folder:
        config = {**DESTINATIONS[dialect].settings(server.url), "report_dir": "",
                  "staging_path": f"{folder}/ledger.duckdb", "progress_seconds": 3600,
                  **settings}
        for _ in range(2):
            server.requests.clear()
            run_in_process(config, lines)
            writes.append([f"{r.method} {r.path} {r.body}"[:300] for r in server.requests
                           if r.method in ("POST", "PUT", "PATCH")])
    twice = [k for k, n in Counter(held_keys(dialect, server.app.snapshot())).items()
             if n > max(1, before[k])]
    assert not writes[1], f"the rerun wrote {len(writes[1])} times: {writes[1]}"
    assert not twice, f"held twice: {twice}"
    return len(writes[0])
