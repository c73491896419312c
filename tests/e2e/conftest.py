"""End-to-end fixtures: fresh copies of the checkout that the real `meltano` CLI runs in, the
README's recipes as written, and emulators started as a user starts them.

Every test gets its own copy of the files a clone holds (the working tree's versions, so
what is tested is what is checked out), with its own `meltano.yml`, Meltano state,
`.crmphones/` and `output/`: nothing a test runs touches the checkout. The plugins are
installed once a session, by `meltano install` in one such copy; each test's copy uses those
plugin environments (the same code: `pip_url: -e .` of an identical copy) instead of
installing them again. The copy's `.venv/` is the project's own, the one the tests run in.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import typing as t

import httpx
import phonenumbers
import pytest

if t.TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: The project's `.venv`: the environment these tests run in (scripts/test.sh made it).
VENV = pathlib.Path(sys.prefix)


def copy_checkout(destination: pathlib.Path) -> pathlib.Path:
    """Copy the files a clone of the checkout holds (tracked or new, not ignored, as they
    are in the working tree) to ``destination``, with the project's `.venv` in it."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
        capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a file deleted in the working tree is not in a clone of it
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    _link_venv(destination / ".venv")
    return destination


def _link_venv(venv: pathlib.Path) -> None:
    """``venv`` as the project's `.venv`: its interpreter, scripts and packages (links), and
    its own stamp, newer than the copy's pyproject files, so that `scripts/venv.sh` finds it
    up to date and never installs into the shared one."""
    venv.mkdir()
    for name in ("bin", "lib", "include"):
        if (VENV / name).exists():
            (venv / name).symlink_to(VENV / name, target_is_directory=True)
    shutil.copy2(VENV / "pyvenv.cfg", venv / "pyvenv.cfg")
    (venv / ".installed").touch()


def shell_env(project: pathlib.Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a shell in ``project`` with its `.venv` activated.

    Without ``PYTHONDONTWRITEBYTECODE``, whatever the test runner's environment says: a
    user's shell lets Python cache bytecode, and the plugins' venvs (uv installs them without
    bytecode) get theirs at the first start, as they do on a user's machine, instead of
    compiling singer-sdk and its dependencies again in every tap and target process."""
    inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**inherited, "PATH": f"{project / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "VIRTUAL_ENV": str(project / ".venv"), **(extra or {})}


def meltano(project: pathlib.Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`meltano <args>` in ``project``."""
    return subprocess.run(
        [str(project / ".venv" / "bin" / "meltano"), *args], cwd=project, capture_output=True,
        text=True, timeout=timeout, check=False, env=shell_env(project, env))


def shell(project: pathlib.Path, command: str, env: dict[str, str] | None = None,
          timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """One command line, as a user types it into bash in ``project``."""
    return subprocess.run(["bash", "-c", command], cwd=project, capture_output=True, text=True,
                          timeout=timeout, check=False, env=shell_env(project, env))


def ok(result: subprocess.CompletedProcess[str], command: str) -> str:
    """The output of a command that must have succeeded (else its error output)."""
    assert result.returncode == 0, f"{command}\n{result.stderr[-6000:]}"
    return result.stdout


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a program that takes its port as given."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return t.cast("int", probe.getsockname()[1])


def recipe(heading: str) -> list[str]:
    """The command lines of the first ```bash block under the README heading that starts
    with ``heading`` (comment lines dropped, continued lines joined), as the README writes
    them: a README edit that breaks a recipe breaks its test."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^#+ {re.escape(heading)}.*?^```bash\n(.*?)^```", text,
                      re.MULTILINE | re.DOTALL)
    assert match, f"README has no bash block under {heading!r}"
    block = match.group(1).replace("\\\n", " ")
    return [line.strip() for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A copy of the checkout whose plugins `meltano install` installed (once a session)."""
    project = copy_checkout(tmp_path_factory.mktemp("installed"))
    result = meltano(project, "install")
    assert result.returncode == 0, result.stderr[-4000:]
    return project


@pytest.fixture
def project(installed: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    """A fresh copy of the checkout, with the session's installed plugins."""
    copy = copy_checkout(tmp_path / "crmphones")
    (copy / ".meltano").mkdir()
    for kind in ("extractors", "loaders"):
        (copy / ".meltano" / kind).symlink_to(installed / ".meltano" / kind,
                                              target_is_directory=True)
    return copy


class EmulatorProcess:
    """`crmphones-emulator` as a user starts it, on a free port."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [str(VENV / "bin" / "crmphones-emulator"), *args, "--port", "0"],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("serving"), line
        self.url = line.split()[-1].rstrip("/")
        self.port = self.url.rsplit(":", 1)[1]

    def state(self) -> dict[str, t.Any]:
        return t.cast("dict[str, t.Any]", httpx.get(f"{self.url}/_emulator/state").json())

    def requests(self) -> list[dict[str, t.Any]]:
        return t.cast("list[dict[str, t.Any]]", httpx.get(f"{self.url}/_emulator/requests").json())

    def writes(self) -> list[dict[str, t.Any]]:
        """The requests that could change the account."""
        return [r for r in self.requests() if r["method"] in ("POST", "PUT", "PATCH", "DELETE")]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def emulators() -> Iterator[t.Callable[..., EmulatorProcess]]:
    """Start emulators (``emulators("outreach", "--records", ...)``); all stop at the end."""
    started: list[EmulatorProcess] = []

    def start(*args: str) -> EmulatorProcess:
        started.append(EmulatorProcess(*args))
        return started[-1]

    yield start
    for emulator in started:
        emulator.stop()


def valid_e164(number: str | None, country: str | None, extension: str | None
               ) -> tuple[str, str | None] | None:
    """The test's own reading of a number (phonenumbers directly, not crmphones): its E.164
    form and extension, or None when it is not a valid number."""
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


def valid_outreach_phones(source: EmulatorProcess) -> set[tuple[str, str, str | None]]:
    """(prospect, E.164, extension) of every valid number an Outreach account holds."""
    expected = set()
    for phone in source.state()["phoneNumbers"]:
        attributes = phone["attributes"]
        read = valid_e164(attributes["number"], attributes["countryCode"], attributes["extension"])
        if read:
            expected.add((phone["relationships"]["prospect"]["data"]["id"], *read))
    return expected


def outreach_phones(account: EmulatorProcess) -> list[tuple[str, str, str | None]]:
    """(prospect, number, extension) of every phone an Outreach account holds."""
    return [(p["relationships"]["prospect"]["data"]["id"], p["attributes"]["number"],
             p["attributes"]["extension"]) for p in account.state()["phoneNumbers"]]
