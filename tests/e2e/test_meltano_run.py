"""End to end: the real `meltano` CLI runs meltano.yml between two emulator processes."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import typing as t
import uuid

import duckdb
import httpx
import phonenumbers
import pytest

if t.TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def _meltano(*args: str, env: dict[str, str] | None = None, timeout: float = 900
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "meltano"), *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, check=False,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})},
    )


@pytest.fixture(scope="session")
def meltano_installed() -> None:
    """`meltano install` once per session (plugins install from this checkout)."""
    result = _meltano("install")
    assert result.returncode == 0, result.stderr[-4000:]


class EmulatorProcess:
    """`crmphones-emulator` as a user starts it, on a free port."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "crmphones-emulator"), *args, "--port", "0"],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("serving"), line
        self.url = line.split()[-1].rstrip("/")

    def state(self) -> dict[str, t.Any]:
        return t.cast("dict[str, t.Any]", httpx.get(f"{self.url}/_emulator/state").json())

    def requests(self) -> list[dict[str, t.Any]]:
        return t.cast("list[dict[str, t.Any]]", httpx.get(f"{self.url}/_emulator/requests").json())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _outreach_env(source: EmulatorProcess, destination: EmulatorProcess,
                  tmp_path: pathlib.Path) -> dict[str, str]:
    """The `emulator` environment's settings for two Outreach accounts."""
    return {
        "CRMPHONES_SOURCE_PORT": source.url.rsplit(":", 1)[1],
        "CRMPHONES_DESTINATION_PORT": destination.url.rsplit(":", 1)[1],
        "CRMPHONES_SOURCE_TOKEN": "e2e-source-token",
        "CRMPHONES_DESTINATION_TOKEN": "e2e-destination-token",
        "TARGET_CRMPHONES_STAGING_PATH": str(tmp_path / "e2e.duckdb"),
    }


def _valid_outreach_phones(source: EmulatorProcess) -> set[tuple[str, str, str | None]]:
    """(prospect, E.164, extension) of every valid number the source account holds."""
    expected = set()
    for phone in source.state()["phoneNumbers"]:
        attributes = phone["attributes"]
        read = _valid_e164(attributes["number"], attributes["countryCode"], attributes["extension"])
        if read:
            expected.add((phone["relationships"]["prospect"]["data"]["id"], *read))
    return expected


@pytest.fixture
def accounts() -> Iterator[tuple[EmulatorProcess, EmulatorProcess]]:
    """A source Outreach account with phones and a destination with the same prospects."""
    source = EmulatorProcess("outreach", "--records", "400", "--parents", "200", "--seed", "11",
                             "--token", "e2e-source-token")
    destination = EmulatorProcess("outreach", "--records", "0", "--parents", "200", "--seed",
                                  "11", "--token", "e2e-destination-token")
    yield source, destination
    source.stop()
    destination.stop()


def test_meltano_run_outreach_to_outreach(
    meltano_installed: None, accounts: tuple[EmulatorProcess, EmulatorProcess],
    tmp_path: pathlib.Path,
) -> None:
    """`meltano run tap-crmphones target-crmphones` copies every valid number exactly once."""
    source, destination = accounts
    env = _outreach_env(source, destination, tmp_path)
    suffix = uuid.uuid4().hex[:8]
    result = _meltano("run", "--state-id-suffix", suffix, "tap-crmphones", "target-crmphones",
                      env=env)
    assert result.returncode == 0, result.stderr[-6000:]

    written = destination.state()["phoneNumbers"]
    assert written, "the destination received phone numbers"
    keys = [(p["relationships"]["prospect"]["data"]["id"], p["attributes"]["number"],
             p["attributes"]["extension"]) for p in written]
    assert len(keys) == len(set(keys)), "no phone twice"
    assert set(keys) == _valid_outreach_phones(source), "every valid number on its prospect, only"
    assert "e2e-destination-token" not in result.stderr

    # A second scheduled run resumes from the saved state and writes nothing new.
    writes_before = [r for r in destination.requests() if r["method"] in ("POST", "PATCH")]
    again = _meltano("run", "--state-id-suffix", suffix, "tap-crmphones", "target-crmphones",
                     env=env)
    assert again.returncode == 0, again.stderr[-6000:]
    writes_after = [r for r in destination.requests() if r["method"] in ("POST", "PATCH")]
    assert len(writes_after) == len(writes_before)
    state = _meltano("state", "get", f"emulator:tap-crmphones-to-target-crmphones:{suffix}")
    assert state.returncode == 0, state.stderr[-2000:]
    assert json.loads(state.stdout)["singer_state"]["bookmarks"]["phone_numbers"]


def test_meltano_run_stopped_with_ctrl_c_then_rerun_ends_exact(
    meltano_installed: None, tmp_path: pathlib.Path,
) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) mid-write under
    `meltano run`, then the same command again: every valid number lands once."""
    source = EmulatorProcess("outreach", "--records", "400", "--parents", "200", "--seed", "13",
                             "--token", "e2e-source-token")
    destination = EmulatorProcess("outreach", "--records", "0", "--parents", "200", "--seed",
                                  "13", "--token", "e2e-destination-token", "--latency-ms", "40")
    try:
        env = {**_outreach_env(source, destination, tmp_path),
               "TARGET_CRMPHONES_BATCH_SIZE_ROWS": "50"}
        run = ("run", "--state-id-suffix", uuid.uuid4().hex[:8], "tap-crmphones",
               "target-crmphones")
        process = subprocess.Popen(
            [str(BIN / "meltano"), *run], cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
            env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env})
        try:
            deadline = time.monotonic() + 300
            while len([r for r in destination.requests() if r["method"] == "POST"]) < 20:
                assert process.poll() is None, process.communicate()[1][-4000:]
                assert time.monotonic() < deadline
                time.sleep(0.05)
            os.killpg(process.pid, signal.SIGINT)
            process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        assert process.returncode != 0
        stopped = destination.state()["phoneNumbers"]
        again = _meltano(*run, env=env)
        assert again.returncode == 0, again.stderr[-6000:]

        expected = _valid_outreach_phones(source)
        written = [(p["relationships"]["prospect"]["data"]["id"], p["attributes"]["number"],
                    p["attributes"]["extension"]) for p in destination.state()["phoneNumbers"]]
    finally:
        source.stop()
        destination.stop()
    assert 0 < len(stopped) < len(expected), "the stop landed mid-write"
    assert len(written) == len(set(written)), "no phone twice"
    assert set(written) == expected, "every valid number, once, after the rerun"


def test_meltano_run_a_given_up_write_holds_the_bookmark_back(
    meltano_installed: None, accounts: tuple[EmulatorProcess, EmulatorProcess],
    tmp_path: pathlib.Path,
) -> None:
    """A write the destination keeps failing fails the run without moving the bookmark past
    it; the next scheduled run, from the saved state, writes what was owed, once."""
    source, destination = accounts
    env = _outreach_env(source, destination, tmp_path)
    expected = _valid_outreach_phones(source)
    failing = sorted(expected)[len(expected) // 2][1][-7:]  # one number's digits
    config = f"{destination.url}/_emulator/config"
    httpx.post(config, json={"fail_writes_containing": failing}).raise_for_status()
    run = ("run", "--state-id-suffix", uuid.uuid4().hex[:8], "tap-crmphones", "target-crmphones")
    first = _meltano(*run, env=env)
    assert first.returncode != 0
    assert "writes were given up" in first.stderr

    httpx.post(config, json={"fail_writes_containing": ""}).raise_for_status()
    second = _meltano(*run, env=env)
    assert second.returncode == 0, second.stderr[-6000:]
    written = [(p["relationships"]["prospect"]["data"]["id"], p["attributes"]["number"],
                p["attributes"]["extension"]) for p in destination.state()["phoneNumbers"]]
    assert len(written) == len(set(written)), "no phone twice"
    assert set(written) == expected, "the given-up phones are written by the next run"


_OUTREACH_TO_ACTIVIX_TYPES = {"mobile": "mobile", "work": "work", "home": "home", "voip": "mobile",
                              "other": "home", None: "home"}


def _valid_e164(number: str | None, country: str | None, extension: str | None
                ) -> tuple[str, str | None] | None:
    """The test's own reading of a number (phonenumbers directly, not crmphones)."""
    region = country if country in phonenumbers.SUPPORTED_REGIONS else "US"
    text = (number or "").strip()
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if (parsed is None or not phonenumbers.is_valid_number(parsed)) and text.startswith("00"):
        try:  # the documented "00" rule: read as "+" when the number is not valid as written
            parsed = phonenumbers.parse("+" + text[2:], region)
        except phonenumbers.NumberParseException:
            return None
    if parsed is None:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164, (extension or parsed.extension or None)


def test_meltano_run_outreach_to_activix_with_parent_map(
    meltano_installed: None, tmp_path: pathlib.Path,
) -> None:
    """A migration: Outreach prospects' numbers onto the mapped Activix leads, at Activix's
    own 200/minute limit, with every record accounted for and nothing written twice."""
    source = EmulatorProcess("outreach", "--records", "60", "--parents", "30", "--seed", "11",
                             "--token", "e2e-outreach-token")
    activix = EmulatorProcess("activix", "--records", "0", "--parents", "30", "--seed", "11",
                              "--token", "e2e-activix-key")
    try:
        lead_for = {str(i): str(31 - i) for i in range(1, 30)}  # prospect 30 has no lead
        parent_map = tmp_path / "prospect_to_lead.csv"
        parent_map.write_text("source_parent_id,target_parent_id\n" + "".join(
            f"{p},{lead}\n" for p, lead in lead_for.items()))
        staging = tmp_path / "activix.duckdb"
        env = {
            "CRMPHONES_SOURCE_PORT": source.url.rsplit(":", 1)[1],
            "CRMPHONES_SOURCE_TOKEN": "e2e-outreach-token",
            "CRMPHONES_ACTIVIX_PORT": activix.url.rsplit(":", 1)[1],
            "CRMPHONES_ACTIVIX_TOKEN": "e2e-activix-key",
            # The recipe sets it with `meltano config set` (tests/e2e/test_meltano_config.py
            # checks that no environment overrides it); here as its environment variable, so
            # that the project's meltano.yml stays as it is.
            "TARGET_CRMPHONES__ACTIVIX_PARENT_MAP_PATH": str(parent_map),
            "TARGET_CRMPHONES__ACTIVIX_STAGING_PATH": str(staging),
        }
        # The README's recipe: the preview, then the migration, under one state id (the suffix
        # keeps this test's state apart from other runs in the same project).
        suffix = uuid.uuid4().hex[:8]
        run = ("run", "--state-id-suffix", suffix, "tap-crmphones--outreach",
               "target-crmphones--activix")
        # First the preview: a dry run writes nothing, leaves a plan to read, and no bookmark.
        preview = _meltano(*run, env={**env, "TARGET_CRMPHONES__ACTIVIX_DRY_RUN": "true",
                                "TARGET_CRMPHONES__ACTIVIX_REPORT_DIR": str(tmp_path / "preview")})
        assert preview.returncode == 0, preview.stderr[-6000:]
        assert [r for r in activix.requests() if r["method"] in ("POST", "PUT")] == []
        (plan_page,) = (tmp_path / "preview").glob("*.md")
        assert "planned (dry run: nothing was sent)" in plan_page.read_text()
        (plan_csv,) = (tmp_path / "preview").glob("*.csv")
        planned = [line for line in plan_csv.read_text().splitlines() if ",created," in line]
        assert planned

        result = _meltano(*run, env=env)
        assert result.returncode == 0, result.stderr[-6000:]
        assert "e2e-activix-key" not in result.stderr

        held = source.state()["phoneNumbers"]
        candidates: dict[tuple[str, str, str | None], str] = {}
        for phone in held:
            attributes = phone["attributes"]
            read = _valid_e164(attributes["number"], attributes["countryCode"],
                               attributes["extension"])
            prospect = str(phone["relationships"]["prospect"]["data"]["id"])
            if read and prospect in lead_for:
                kind = _OUTREACH_TO_ACTIVIX_TYPES.get(attributes["phoneType"], "home")
                candidates[(lead_for[prospect], *read)] = kind
        written = activix.state()["lead_phones"]
        assert written, "the leads received phone numbers"
        for phone in written:
            key = (str(phone["lead_id"]), phone["number"],
                   str(phone["extension"]) if phone["extension"] is not None else None)
            assert key in candidates, f"{key} does not come from a mapped prospect"
        slots = [(p["lead_id"], p["type"]) for p in written]
        assert len(slots) == len(set(slots))

        with duckdb.connect(str(staging), read_only=True) as ledger:
            real = "(SELECT run_id FROM runs WHERE NOT dry_run)"  # the preview is in the file too
            counts = ledger.execute("SELECT received, created, merged, rejected FROM runs "
                                    f"WHERE run_id = {real}").fetchone()
            reasons = [r for (r,) in ledger.execute(
                f"SELECT reason FROM rejects WHERE run_id = {real}").fetchall()]
        assert counts is not None
        received, created, merged, rejected = counts
        assert received == len(held)
        assert created == len(written) == len(planned), "the preview planned what was done"
        assert created + merged + rejected == received
        unplaced = [r for r in reasons if "one phone per type per lead" in r]
        assert len(written) + len(unplaced) == len(candidates)
        unmapped = [p for p in held if p["relationships"]["prospect"]["data"]["id"] == 30]
        assert sum("prospect 30 has no row in the parent map" in r for r in reasons) == len(unmapped)
        assert not [r for r in activix.requests() if r["status"] in (403, 429)]

        # The same migration again: nothing left to write.
        writes = [r for r in activix.requests() if r["method"] in ("POST", "PUT")]
        again = _meltano(*run, "--full-refresh", env=env)
        assert again.returncode == 0, again.stderr[-6000:]
        assert [r for r in activix.requests() if r["method"] in ("POST", "PUT")] == writes
    finally:
        source.stop()
        activix.stop()


def test_meltano_run_activix_to_ticketevolution(meltano_installed: None, tmp_path: pathlib.Path
                                                ) -> None:
    """Activix leads' phones onto Ticket Evolution clients: signed batch creates, exact result."""
    activix = EmulatorProcess("activix", "--records", "60", "--parents", "40", "--seed", "12",
                              "--token", "e2e-activix-key")
    tevo = EmulatorProcess("ticketevolution", "--records", "0", "--parents", "40", "--seed", "12",
                           "--token", "e2e-tevo-token", "--secret", "e2e-tevo-secret")
    try:
        client_for = {str(i): str(i) for i in range(1, 41)}
        parent_map = tmp_path / "lead_to_client.csv"
        parent_map.write_text("source_parent_id,target_parent_id\n" + "".join(
            f"{lead},{client}\n" for lead, client in client_for.items()))
        env = {
            "CRMPHONES_ACTIVIX_PORT": activix.url.rsplit(":", 1)[1],
            "CRMPHONES_ACTIVIX_TOKEN": "e2e-activix-key",
            "CRMPHONES_TICKETEVOLUTION_PORT": tevo.url.rsplit(":", 1)[1],
            "CRMPHONES_TICKETEVOLUTION_TOKEN": "e2e-tevo-token",
            "CRMPHONES_TICKETEVOLUTION_SECRET": "e2e-tevo-secret",
            "CRMPHONES_PARENT_MAP": str(parent_map),
            "TARGET_CRMPHONES__TICKETEVOLUTION_STAGING_PATH": str(tmp_path / "tevo.duckdb"),
        }
        result = _meltano("run", "--state-id-suffix", uuid.uuid4().hex[:8],
                          "activix-to-ticketevolution", env=env)
        assert result.returncode == 0, result.stderr[-6000:]
        assert "e2e-tevo-secret" not in result.stderr

        expected = set()
        for phone in activix.state()["lead_phones"]:
            read = _valid_e164(phone["number"], None,
                               None if phone["extension"] is None else str(phone["extension"]))
            if read:
                expected.add((str(phone["lead_id"]), *read))
        written = {(str(p["client_id"]), f"+{p['country_code']}{p['number']}", p["extension"])
                   for p in tevo.state()["phone_numbers"]}
        assert written == expected
        posts = [r for r in tevo.requests() if r["method"] == "POST"]
        assert len(posts) == len({lead for lead, _, _ in expected}), "one POST per client"
    finally:
        activix.stop()
        tevo.stop()


def test_meltano_run_onedegree_to_onedegree(meltano_installed: None, tmp_path: pathlib.Path
                                            ) -> None:
    """All three phone streams between two One Degree accounts with the same owners: signed
    writes through each owner's nested route, the destination ends with exactly the valid
    phones on the same owners, and a rerun (FULL_TABLE) writes nothing."""
    source = EmulatorProcess("onedegree", "--records", "80", "--parents", "15", "--seed", "13",
                             "--api-key", "e2e-od-source", "--api-secret", "e2e-od-source-secret")
    destination = EmulatorProcess("onedegree", "--records", "0", "--parents", "15", "--seed", "13",
                                  "--api-key", "e2e-od-key", "--api-secret", "e2e-od-secret")
    try:
        env = {
            "CRMPHONES_ONEDEGREE_SOURCE_PORT": source.url.rsplit(":", 1)[1],
            "CRMPHONES_ONEDEGREE_SOURCE_KEY": "e2e-od-source",
            "CRMPHONES_ONEDEGREE_SOURCE_SECRET": "e2e-od-source-secret",
            "CRMPHONES_ONEDEGREE_PORT": destination.url.rsplit(":", 1)[1],
            "CRMPHONES_ONEDEGREE_KEY": "e2e-od-key",
            "CRMPHONES_ONEDEGREE_SECRET": "e2e-od-secret",
            "TARGET_CRMPHONES__ONEDEGREE_STAGING_PATH": str(tmp_path / "od.duckdb"),
        }
        suffix = uuid.uuid4().hex[:8]
        result = _meltano("run", "--state-id-suffix", suffix, "onedegree-to-onedegree", env=env)
        assert result.returncode == 0, result.stderr[-6000:]
        assert "e2e-od-secret" not in result.stderr

        expected = set()
        for phone in source.state()["phones"]:
            digits, _, ext = phone["digits"].partition(" x")
            read = _valid_e164(digits, None, ext or None)
            if read:
                expected.add((phone["phoneable_type"], phone["phoneable_id"], *read))
        written = set()
        for phone in destination.state()["phones"]:
            digits, _, ext = phone["digits"].partition(" x")
            written.add((phone["phoneable_type"], phone["phoneable_id"], digits, ext or None))
        assert written == expected

        writes = [r for r in destination.requests() if r["method"] in ("POST", "PUT")]
        again = _meltano("run", "--state-id-suffix", suffix, "onedegree-to-onedegree", env=env)
        assert again.returncode == 0, again.stderr[-6000:]
        assert [r for r in destination.requests() if r["method"] in ("POST", "PUT")] == writes
    finally:
        source.stop()
        destination.stop()


def test_meltano_run_warehouse_backfill_into_duckdb(meltano_installed: None,
                                                    tmp_path: pathlib.Path) -> None:
    """The backfill recipe: phone numbers and prospects into a DuckDB warehouse through
    target-duckdb, every row landed (including the first of each batch) with its raw record."""
    source = EmulatorProcess("outreach", "--records", "150", "--parents", "60", "--seed", "14",
                             "--token", "e2e-backfill-token")
    try:
        warehouse = tmp_path / "warehouse.duckdb"
        env = {
            "CRMPHONES_SOURCE_PORT": source.url.rsplit(":", 1)[1],
            "CRMPHONES_SOURCE_TOKEN": "e2e-backfill-token",
            "TARGET_DUCKDB_FILEPATH": str(warehouse),
        }
        result = _meltano("run", "--state-id-suffix", uuid.uuid4().hex[:8], "outreach-backfill",
                          env=env)
        assert result.returncode == 0, result.stderr[-6000:]
        held = source.state()
        with duckdb.connect(str(warehouse), read_only=True) as con:
            phones = con.execute("SELECT id, number, e164, parent_id, raw FROM crm.phone_numbers"
                                 ).fetchall()
            prospects = con.execute("SELECT count(*) FROM crm.prospects").fetchone()
        assert sorted(int(row[0]) for row in phones) == [p["id"] for p in held["phoneNumbers"]]
        assert prospects == (len(held["prospects"]),)
        numbers = {str(p["id"]): p["attributes"]["number"] for p in held["phoneNumbers"]}
        assert all(numbers[row[0]] == row[1] for row in phones), "numbers kept as stored"
        raw = json.loads(phones[0][4]) if isinstance(phones[0][4], str) else phones[0][4]
        assert raw["type"] == "phoneNumber"
    finally:
        source.stop()
