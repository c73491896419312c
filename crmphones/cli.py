"""Console entry points: a user's mistake gets one line saying what to fix, not a traceback."""

from __future__ import annotations

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


def run_plugin(plugin: type[PluginBase]) -> t.NoReturn:
    """Run a tap or target CLI, turning our errors into one-line messages and exit code 1."""
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
