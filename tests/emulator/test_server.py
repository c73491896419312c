"""The emulator's HTTP server itself, whatever the dialect."""

from __future__ import annotations

import socket
import struct
import time
import typing as t

import httpx

from crmphones.emulator.outreach import OutreachApp
from crmphones.emulator.server import EmulatorServer, Faults

if t.TYPE_CHECKING:
    import pytest


def test_a_client_that_resets_its_connection_is_no_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A client process that exits holding a kept-alive connection resets it: the server
    drops it quietly and goes on serving (a traceback here only hid real errors)."""
    with EmulatorServer(OutreachApp(records=1, parents=1, seed=1, token="k")) as server:
        host, port = server.url.removeprefix("http://").split(":")
        client = socket.create_connection((host, int(port)))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.sendall(b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(100).startswith(b"HTTP/1.1 200")
        client.close()  # linger 0: a reset, while the server waits for the next request
        time.sleep(0.2)
        assert httpx.get(f"{server.url}/_emulator/health").status_code == 200
    assert "Traceback" not in capsys.readouterr().err


def test_the_answer_leaves_whole_after_the_latency() -> None:
    """Status line, headers and body arrive together, once the latency has passed."""
    faults = Faults(latency_ms=100)
    with EmulatorServer(OutreachApp(records=1, parents=1, seed=1, token="k"),
                        faults=faults) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as client:
            started = time.monotonic()
            client.sendall(b"GET /api/v2/phoneNumbers HTTP/1.1\r\nHost: x\r\n"
                           b"Authorization: Bearer k\r\n\r\n")
            first = client.recv(65536)
            waited = time.monotonic() - started
        head, _, body = first.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        assert head.startswith(b"HTTP/1.1 200")
        assert len(body) == length > 0  # the body came in the same read as the status line
        assert waited >= 0.1
