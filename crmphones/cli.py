"""Console entry points: a user's mistake gets one line saying what to fix, not a traceback."""

from __future__ import annotations

import gc
import sys
import typing as t

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

__all__ = ["run_plugin"]

_SWITCH_INTERVAL = 0.0005  # seconds
_YOUNG_OBJECTS = 50_000  # allocations between two passes of the collector (Python's: 700)


def run_plugin(plugin: type[PluginBase]) -> t.NoReturn:
    """Run a tap or target CLI, turning our errors into one-line messages and exit code 1."""
    # Requests run on threads (the next page fetched ahead, concurrent reads and writes) while
    # the main thread does CPU work: a thread whose answer has arrived waits for the GIL up to
    # the switch interval, 5 ms by default, which is a quarter of a fast API's round trip.
    sys.setswitchinterval(_SWITCH_INTERVAL)
    # The objects made so far (the imports: singer-sdk, DuckDB, pyarrow, httpx...) live as long
    # as the process; frozen, the collector's full passes no longer walk them all. And a pass
    # every 50,000 allocations, not 700: records come and go by the thousand and reference
    # counting frees them; a pass only ever finds the rare cycle. In a 200,000-record target
    # run the collector took 1.4-1.8 s of the target's CPU; it now takes about 0.1 s.
    gc.freeze()
    gc.set_threshold(_YOUNG_OBJECTS, 20, 10)
    try:
        # Outside standalone mode click returns (not raises) the code of a ctx.exit().
        code = plugin.cli.main(prog_name=plugin.name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.stderr.write("Aborted.\n")
        sys.exit(1)
    except (InvalidInputLine, RecordsWithoutSchemaException, MissingKeyPropertiesError) as exc:
        sys.stderr.write(f"{plugin.name}: error: the input breaks the Singer protocol: "
                         f"{' '.join(str(exc).split())[:300]}\n")
        sys.exit(1)
    except (CRMPhonesError, ConfigValidationError) as exc:
        details = "; ".join(getattr(exc, "errors", None) or [])
        sys.stderr.write(f"{plugin.name}: error: {exc}{': ' + details if details else ''}\n")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
