"""Plugins' console entry points run in the test's own interpreter, as the interpreter runs
them: argv, stdout, stderr and working folder set as a subprocess has them, the exit code
derived from ``SystemExit``, and the process-wide state a plugin's CLI changes (logging
handlers, signal handlers, warnings, ``sys.excepthook``) put back afterwards. The same code
path from argv to exit code as ``python -m target_crmphones``; ``tests/target/
test_entry_point.py`` holds both ways to the same exit code, STATE and log lines."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import signal
import subprocess
import sys
import threading
import traceback
import typing as t
import warnings

from target_crmphones.target import main as target_main

if t.TYPE_CHECKING:
    import pathlib
    from collections.abc import Iterator


@contextlib.contextmanager
def process_state_restored() -> Iterator[None]:
    """Put back what a plugin's CLI changes for the whole process: each access to the SDK's
    ``cli`` adds a root logging handler (bound to the ``sys.stderr`` of that moment) and sets
    the root level; its command captures warnings into logging, adds a warnings filter and
    replaces ``sys.excepthook``; the plugin takes SIGINT and SIGTERM over."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hook = sys.excepthook
    signals = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with warnings.catch_warnings():
            try:
                yield
            finally:
                logging.captureWarnings(capture=False)
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
        sys.excepthook = hook
        # Only the main thread may set them, and the plugin sets them only there.
        if threading.current_thread() is threading.main_thread():
            for signum, handler in signals.items():
                signal.signal(signum, handler)


def run_entry_point(main: t.Callable[[], None], argv: list[str], cwd: pathlib.Path
                    ) -> subprocess.CompletedProcess[str]:
    """Run a plugin's console entry point in this process as the interpreter would run it:
    ``sys.argv`` set, stdout and stderr captured, in ``cwd``; ``SystemExit`` gives the exit
    code as the interpreter derives it, and an exception that escapes goes to
    ``sys.excepthook`` (the SDK's, which logs it with its traceback) and exits 1."""
    out, err = io.StringIO(), io.StringIO()
    before = set(threading.enumerate())
    with process_state_restored(), contextlib.chdir(cwd), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        saved_argv, sys.argv = sys.argv, argv
        try:
            main()
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except Exception:
            try:
                sys.excepthook(*sys.exc_info())
            except Exception:
                traceback.print_exc()
            code = 1
        finally:
            sys.argv = saved_argv
    # A thread the run left behind would have been joined (or killed) at the subprocess's
    # exit; here it would outlive the run and could act in the next test.
    left = [th for th in threading.enumerate() if th not in before and not th.daemon]
    for th in left:
        th.join(timeout=10)
    assert not [th for th in left if th.is_alive()], f"threads left running: {left}"
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def run_target(config: dict[str, t.Any], lines: list[str], workdir: pathlib.Path, *,
               in_process: bool = True) -> subprocess.CompletedProcess[str]:
    """target-crmphones's console entry point with ``config`` (``workdir/target.json``), fed
    Singer lines: its exit code, stdout (the STATE lines) and stderr (the log and the one-line
    errors). In this process by default (``run_entry_point``; its input comes through
    ``--input``, since the SDK's reader binds ``sys.stdin`` when it is imported);
    ``in_process=False`` runs it as Meltano does, a subprocess fed on stdin, for tests about
    the process itself or everything it writes anywhere."""
    config_file = workdir / "target.json"
    config_file.write_text(json.dumps(config))
    text = "\n".join(lines) + "\n"
    if in_process:
        input_file = workdir / "target-input.jsonl"
        input_file.write_text(text)
        argv = ["target-crmphones", "--config", str(config_file), "--input", str(input_file)]
        return run_entry_point(target_main, argv, workdir)
    return subprocess.run([sys.executable, "-m", "target_crmphones", "--config", str(config_file)],
                          input=text, capture_output=True, text=True, timeout=600, check=False,
                          cwd=workdir)
