"""The target's console entry point as a process (stdin in, STATE out, exit codes), and the
in-process runs the other target tests use agree with it: same exit code, same stdout, the
same log and error lines, and the process-wide state they touch put back."""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import typing as t
import warnings

from tests.conftest import DESTINATION_TOKEN, outreach_config
from tests.target.conftest import SCHEMA, last_run_counts, record

if t.TYPE_CHECKING:
    import pathlib
    import subprocess

    from crmphones_emulators import EmulatorServer
    from tests.target.conftest import TargetRunner


def _lines(text: str) -> list[str]:
    """Log lines without what differs between two runs (times, run ids, file names, rates)."""
    kept = []
    for line in text.splitlines():
        line = re.sub(r"\d{4}-\d\d-\d\d[ T][\d:.,]+", "<time>", line)
        line = re.sub(r"[0-9a-f]{8,}", "<id>", line)
        kept.append(re.sub(r"\d+(\.\d+)?", "<n>", line))
    return kept


def _in_process(runner: TargetRunner, config: dict[str, t.Any], messages: list[t.Any]
                ) -> subprocess.CompletedProcess[str]:
    """A run in this process, which leaves the process-wide state it touches as it was."""
    handlers, level = list(logging.getLogger().handlers), logging.getLogger().level
    hooks = (sys.excepthook, signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    filters = list(warnings.filters)
    result = runner.run(config, messages, check=False)
    assert (list(logging.getLogger().handlers), logging.getLogger().level) == (handlers, level)
    assert (sys.excepthook, signal.getsignal(signal.SIGINT),
            signal.getsignal(signal.SIGTERM)) == hooks
    assert list(warnings.filters) == filters
    return result


def _both(runner: TargetRunner, config: dict[str, t.Any], messages: list[t.Any]
          ) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    return (runner.run(config, messages, check=False, in_process=False),
            _in_process(runner, config, messages))


def test_a_run_in_process_is_the_process_run(outreach_destination: EmulatorServer,
                                             target_runner: TargetRunner, tmp_path: pathlib.Path
                                             ) -> None:
    """Fed on stdin, the process passes the last STATE on and exits 0, its report in the
    default (relative) report_dir; the same run in this process (the account back as seeded,
    a ledger of its own) prints the same STATE and the same log lines."""
    staging = {way: str(tmp_path / f"{way}.duckdb") for way in ("process", "in-process")}
    state = {"type": "STATE", "value": {"bookmarks": {"phones": {"upto": 2}}}}
    messages = [SCHEMA, record(parent_id="5", number="+12025550143"),
                record(parent_id="6", number="+12025550144"), state]
    reports = tmp_path / ".crmphones" / "reports"
    process = target_runner.run(outreach_config(outreach_destination, DESTINATION_TOKEN,
                                                staging_path=staging["process"]),
                                messages, in_process=False)
    assert [json.loads(line) for line in process.stdout.splitlines()] == [state["value"]]
    assert last_run_counts(staging["process"])["created"] == 2
    assert len(list(reports.glob("*.json"))) == 1

    outreach_destination.app.reset()
    in_process = _in_process(target_runner, outreach_config(
        outreach_destination, DESTINATION_TOKEN, staging_path=staging["in-process"]), messages)
    assert (in_process.returncode, in_process.stdout) == (0, process.stdout)
    assert last_run_counts(staging["in-process"])["created"] == 2
    assert "created=2" in in_process.stderr
    assert _lines(in_process.stderr) == _lines(process.stderr)
    assert len(list(reports.glob("*.json"))) == 2


def test_a_failed_run_in_process_is_the_failed_process(outreach_destination: EmulatorServer,
                                                       target_runner: TargetRunner,
                                                       staging_path: str) -> None:
    """A refused token: exit 1, no STATE, the one error line, no traceback, both ways."""
    config = outreach_config(outreach_destination, "not-the-token", staging_path=staging_path)
    messages = [SCHEMA, record(parent_id="5", number="+12025550143"),
                {"type": "STATE", "value": {"n": 1}}]
    process, in_process = _both(target_runner, config, messages)
    assert (in_process.returncode, in_process.stdout) == (process.returncode, process.stdout) == (
        1, "")
    last = in_process.stderr.strip().splitlines()[-1]
    assert last.startswith("target-crmphones: error: ") and "access_token" in last
    assert last == process.stderr.strip().splitlines()[-1]
    assert "Traceback" not in in_process.stderr
    assert _lines(in_process.stderr) == _lines(process.stderr)


def test_a_setting_refused_in_process_is_refused_by_the_process(target_runner: TargetRunner
                                                                ) -> None:
    """Config validation fails before any run: exit 1 and the same lines both ways."""
    process, in_process = _both(target_runner, {"provider": "outreach"}, [SCHEMA])
    assert process.returncode == in_process.returncode == 1
    assert in_process.stderr and _lines(in_process.stderr) == _lines(process.stderr)
