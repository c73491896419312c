"""End to end: the real `meltano` CLI runs meltano.yml's plugins and jobs between emulator
processes, each test in a fresh copy of the checkout (tests/e2e/conftest.py). The README's
recipes themselves run in test_recipes.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import typing as t

import httpx

from tests.e2e.conftest import (
    meltano,
    outreach_phones,
    shell_env,
    valid_e164,
    valid_outreach_phones,
)

if t.TYPE_CHECKING:
    import pathlib
    from collections.abc import Callable

    from tests.e2e.conftest import EmulatorProcess

    Start = Callable[..., EmulatorProcess]


def _outreach_env(source: EmulatorProcess, destination: EmulatorProcess) -> dict[str, str]:
    """The `emulator` environment's settings for two Outreach accounts."""
    return {
        "CRMPHONES_SOURCE_PORT": source.port,
        "CRMPHONES_DESTINATION_PORT": destination.port,
        "CRMPHONES_SOURCE_TOKEN": "e2e-source-token",
        "CRMPHONES_DESTINATION_TOKEN": "e2e-destination-token",
    }


def _accounts(emulators: Start, *destination_options: str, seed: str = "11",
              records: int = 100) -> tuple[EmulatorProcess, EmulatorProcess]:
    """A source Outreach account with phones and a destination with the same prospects."""
    parents = str(records // 2)
    source = emulators("outreach", "--records", str(records), "--parents", parents, "--seed",
                       seed, "--token", "e2e-source-token")
    destination = emulators("outreach", "--records", "0", "--parents", parents, "--seed", seed,
                            "--token", "e2e-destination-token", *destination_options)
    return source, destination


def test_meltano_run_stopped_with_ctrl_c_then_rerun_ends_exact(project: pathlib.Path,
                                                               emulators: Start) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) mid-write under
    `meltano run`, then the same command again: every valid number lands once."""
    # Enough phones that 20 creates are well short of all of them: the stop lands mid-write.
    source, destination = _accounts(emulators, "--latency-ms", "40", seed="13", records=200)
    env = {**_outreach_env(source, destination), "TARGET_CRMPHONES_BATCH_SIZE_ROWS": "50"}
    run = ("run", "tap-crmphones", "target-crmphones")
    process = subprocess.Popen(
        [str(project / ".venv" / "bin" / "meltano"), *run], cwd=project,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env=shell_env(project, env))
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
    again = meltano(project, *run, env=env)
    assert again.returncode == 0, again.stderr[-6000:]

    expected = valid_outreach_phones(source)
    written = outreach_phones(destination)
    assert 0 < len(stopped) < len(expected), "the stop landed mid-write"
    assert len(written) == len(set(written)), "no phone twice"
    assert set(written) == expected, "every valid number, once, after the rerun"


def test_meltano_run_a_given_up_write_holds_the_bookmark_back(project: pathlib.Path,
                                                              emulators: Start) -> None:
    """A write the destination keeps failing fails the run without moving the bookmark past
    it; the next scheduled run, from the saved state, writes what was owed, once."""
    source, destination = _accounts(emulators)
    env = _outreach_env(source, destination)
    expected = valid_outreach_phones(source)
    failing = sorted(expected)[len(expected) // 2][1][-7:]  # one number's digits
    config = f"{destination.url}/_emulator/config"
    httpx.post(config, json={"fail_writes_containing": failing}).raise_for_status()
    first = meltano(project, "run", "outreach-to-outreach", env=env)
    assert first.returncode != 0
    assert "writes were given up" in first.stderr

    httpx.post(config, json={"fail_writes_containing": ""}).raise_for_status()
    second = meltano(project, "run", "outreach-to-outreach", env=env)
    assert second.returncode == 0, second.stderr[-6000:]
    written = outreach_phones(destination)
    assert len(written) == len(set(written)), "no phone twice"
    assert set(written) == expected, "the given-up phones are written by the next run"


def test_meltano_run_activix_to_ticketevolution(project: pathlib.Path, emulators: Start) -> None:
    """Activix leads' phones onto Ticket Evolution clients: signed batch creates, exact result."""
    activix = emulators("activix", "--records", "60", "--parents", "40", "--seed", "12",
                        "--token", "e2e-activix-key")
    tevo = emulators("ticketevolution", "--records", "0", "--parents", "40", "--seed", "12",
                     "--token", "e2e-tevo-token", "--secret", "e2e-tevo-secret")
    parent_map = project / "lead_to_client.csv"
    parent_map.write_text("source_parent_id,target_parent_id\n" + "".join(
        f"{lead},{lead}\n" for lead in range(1, 41)))
    env = {
        "CRMPHONES_ACTIVIX_PORT": activix.port,
        "CRMPHONES_ACTIVIX_TOKEN": "e2e-activix-key",
        "CRMPHONES_TICKETEVOLUTION_PORT": tevo.port,
        "CRMPHONES_TICKETEVOLUTION_TOKEN": "e2e-tevo-token",
        "CRMPHONES_TICKETEVOLUTION_SECRET": "e2e-tevo-secret",
        "CRMPHONES_PARENT_MAP": str(parent_map),
    }
    result = meltano(project, "run", "activix-to-ticketevolution", env=env)
    assert result.returncode == 0, result.stderr[-6000:]
    assert "e2e-tevo-secret" not in result.stderr

    expected = set()
    for phone in activix.state()["lead_phones"]:
        read = valid_e164(phone["number"], None,
                          None if phone["extension"] is None else str(phone["extension"]))
        if read:
            expected.add((str(phone["lead_id"]), *read))
    written = {(str(p["client_id"]), f"+{p['country_code']}{p['number']}", p["extension"])
               for p in tevo.state()["phone_numbers"]}
    assert written == expected
    posts = [r for r in tevo.requests() if r["method"] == "POST"]
    assert len(posts) == len({lead for lead, _, _ in expected}), "one POST per client"


def test_meltano_run_onedegree_to_onedegree(project: pathlib.Path, emulators: Start) -> None:
    """All three phone streams between two One Degree accounts with the same owners: signed
    writes through each owner's nested route, the destination ends with exactly the valid
    phones on the same owners, and a rerun (FULL_TABLE) writes nothing."""
    source = emulators("onedegree", "--records", "80", "--parents", "15", "--seed", "13",
                       "--api-key", "e2e-od-source", "--api-secret", "e2e-od-source-secret")
    destination = emulators("onedegree", "--records", "0", "--parents", "15", "--seed", "13",
                            "--api-key", "e2e-od-key", "--api-secret", "e2e-od-secret")
    env = {
        "CRMPHONES_ONEDEGREE_SOURCE_PORT": source.port,
        "CRMPHONES_ONEDEGREE_SOURCE_KEY": "e2e-od-source",
        "CRMPHONES_ONEDEGREE_SOURCE_SECRET": "e2e-od-source-secret",
        "CRMPHONES_ONEDEGREE_PORT": destination.port,
        "CRMPHONES_ONEDEGREE_KEY": "e2e-od-key",
        "CRMPHONES_ONEDEGREE_SECRET": "e2e-od-secret",
    }
    result = meltano(project, "run", "onedegree-to-onedegree", env=env)
    assert result.returncode == 0, result.stderr[-6000:]
    assert "e2e-od-secret" not in result.stderr

    expected = set()
    for phone in source.state()["phones"]:
        digits, _, ext = phone["digits"].partition(" x")
        read = valid_e164(digits, None, ext or None)
        if read:
            expected.add((phone["phoneable_type"], phone["phoneable_id"], *read))
    written = set()
    for phone in destination.state()["phones"]:
        digits, _, ext = phone["digits"].partition(" x")
        written.add((phone["phoneable_type"], phone["phoneable_id"], digits, ext or None))
    assert written == expected

    writes = destination.writes()
    again = meltano(project, "run", "onedegree-to-onedegree", env=env)
    assert again.returncode == 0, again.stderr[-6000:]
    assert destination.writes() == writes
