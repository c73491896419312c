"""Console entry points: a user's mistake gets one line saying what to fix, not a traceback."""

from __future__ import annotations

import sys
import typing as t
import weakref

import click
from singer_sdk.exceptions import (
    ConfigValidationError,
    MissingKeyPropertiesError,
    RecordsWithoutSchemaException,
)
from singer_sdk.singerlib.exceptions import InvalidInputLine

from crmphones.errors import CRMPhonesError

if t.TYPE_CHECKING:
    from singer_sdk.plugin_base import PluginBase

__all__ = ["on_failure", "run_plugin"]

# Weak: a plugin made in-process (tests) must not be kept alive by a hook never called.
_on_failure: list[weakref.WeakMethod[t.Callable[[str], None]]] = []


def on_failure(hook: t.Callable[[str], None]) -> None:
    """Have a bound method called with the error's one line if the run fails (any error,
    raised anywhere under the CLI): a target ends its run's ledger row with it."""
    _on_failure.append(weakref.WeakMethod(hook))


def _run_failed(line: str) -> None:
    """Tell each hook once; a failing hook must not hide the error being reported."""
    while _on_failure:
        hook = _on_failure.pop(0)()
        if hook is not None:
            try:
                hook(line)
            except Exception as exc:
                sys.stderr.write(f"could not record the failure in the ledger: {exc}\n")


def run_plugin(plugin: type[PluginBase]) -> t.NoReturn:
    """Run a tap or target CLI, turning our errors into one-line messages and exit code 1
    (a stop by a signal: 128 + its number)."""
    try:
        # Outside standalone mode click returns (not raises) the code of a ctx.exit().
        code = plugin.cli.main(prog_name=plugin.name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        _run_failed(exc.format_message())
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        _run_failed("aborted")
        sys.stderr.write("Aborted.\n")
        sys.exit(1)
    except (InvalidInputLine, RecordsWithoutSchemaException, MissingKeyPropertiesError) as exc:
        line = f"the input breaks the Singer protocol: {' '.join(str(exc).split())[:300]}"
        _run_failed(line)
        sys.stderr.write(f"{plugin.name}: error: {line}\n")
        sys.exit(1)
    except (CRMPhonesError, ConfigValidationError) as exc:
        details = "; ".join(getattr(exc, "errors", None) or [])
        line = f"{exc}{': ' + details if details else ''}"
        _run_failed(line)
        sys.stderr.write(f"{plugin.name}: error: {line}\n")
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception as exc:
        # Not ours to word: the traceback follows, but the run's row still ends.
        _run_failed(f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        raise
    sys.exit(code if isinstance(code, int) else 0)
