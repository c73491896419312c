"""Faithful emulators of the four CRM APIs, real HTTP servers on loopback (tests, demo, benchmarks).

Standard library only, and never importing the client code: each dialect is written from
`../shared/api/` so the emulator and the client cannot share a misreading of an API.
"""

from __future__ import annotations

from crmphones_emulators.server import DialectApp, EmulatorServer, Faults, LoggedRequest, Request, Response

__all__ = ["DialectApp", "EmulatorServer", "Faults", "LoggedRequest", "Request", "Response"]
