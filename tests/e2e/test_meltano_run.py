"""End to end: the real `meltano` CLI runs meltano.yml between two emulator processes."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import typing as t
import uuid

import httpx
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
    env = {
        "CRMPHONES_SOURCE_PORT": source.url.rsplit(":", 1)[1],
        "CRMPHONES_DESTINATION_PORT": destination.url.rsplit(":", 1)[1],
        "CRMPHONES_SOURCE_TOKEN": "e2e-source-token",
        "CRMPHONES_DESTINATION_TOKEN": "e2e-destination-token",
        "TARGET_CRMPHONES_STAGING_PATH": str(tmp_path / "e2e.duckdb"),
    }
    suffix = uuid.uuid4().hex[:8]
    result = _meltano("run", "--state-id-suffix", suffix, "tap-crmphones", "target-crmphones",
                      env=env)
    assert result.returncode == 0, result.stderr[-6000:]

    held = source.state()["phoneNumbers"]
    written = destination.state()["phoneNumbers"]
    assert written, "the destination received phone numbers"
    keys = [(p["relationships"]["prospect"]["data"]["id"], p["attributes"]["number"],
             p["attributes"]["extension"]) for p in written]
    assert len(keys) == len(set(keys)), "no phone twice"
    assert {p["relationships"]["prospect"]["data"]["id"] for p in written} <= {
        p["relationships"]["prospect"]["data"]["id"] for p in held}
    assert all(number.startswith("+") for _, number, _ in keys)
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
