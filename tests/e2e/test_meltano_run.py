"""End to end: the real `meltano` CLI runs meltano.yml's plugins and jobs between emulator
processes, each test in a fresh copy of the checkout (tests/e2e/conftest.py): here between
Outreach accounts, stopped and failing; the other CRMs in test_meltano_run_other_crms.py.
The README's recipes themselves run in test_recipes.py."""

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
    # RELIABILITY.md row 8 quotes this run's size: 400 phones, 20 creates sent before the stop.
    source, destination = _accounts(emulators, "--latency-ms", "40", seed="13", records=400)
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
