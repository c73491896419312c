"""The registry of CRM dialects: ``provider`` setting -> Dialect class."""

from __future__ import annotations

import importlib
import typing as t

from crmphones.errors import ConfigError

if t.TYPE_CHECKING:
    from crmphones.dialects.base import Dialect

__all__ = ["DIALECTS", "get_dialect"]

#: provider name -> "module:Class"; imported lazily so one dialect's import cost is paid alone.
DIALECTS: dict[str, str] = {
    "outreach": "crmphones.dialects.outreach:Outreach",
    "activix": "crmphones.dialects.activix:Activix",
    "onedegree": "crmphones.dialects.onedegree:OneDegree",
    "ticketevolution": "crmphones.dialects.ticketevolution:TicketEvolution",
}


def get_dialect(name: str | None) -> type[Dialect]:
    """Return the dialect class for a ``provider`` setting.

    Raises:
        ConfigError: naming the valid providers when ``name`` is not one.
    """
    if name not in DIALECTS:
        msg = f"provider {name!r} is not supported; valid providers: {', '.join(DIALECTS)}"
        raise ConfigError(msg)
    module, _, cls = DIALECTS[name].partition(":")
    return t.cast("type[Dialect]", getattr(importlib.import_module(module), cls))
