"""The emulator's HTTP server itself, whatever the dialect."""

from __future__ import annotations

import socket
import socketserver
import struct
import time
import typing as t

import httpx

from crmphones_emulators.outreach import OutreachApp
from crmphones_emulators.server import EmulatorServer, Faults

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


def test_the_answer_leaves_whole_after_the_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    """Status line, headers and body go out in one write, once the latency has passed: the
    emulator's own work (the answer, its headers, its log entry) is inside the latency."""
    writes: list[tuple[float, bytes]] = []
    write = socketserver._SocketWriter.write  # type: ignore[attr-defined]

    def recorded(self: t.Any, data: bytes) -> int:
        writes.append((time.monotonic(), bytes(data)))
        return write(self, data)

    monkeypatch.setattr(socketserver._SocketWriter, "write", recorded)  # type: ignore[attr-defined]
    with EmulatorServer(OutreachApp(records=1, parents=1, seed=1, token="k"),
                        faults=Faults(latency_ms=100)) as server:
        started = time.monotonic()
        response = httpx.get(f"{server.url}/api/v2/phoneNumbers",
                             headers={"Authorization": "Bearer k"})
        assert response.status_code == 200
        assert len(server.requests) == 1
    assert len(writes) == 1, [data[:40] for _, data in writes]
    at, data = writes[0]
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(response.content)
    assert at - started >= 0.1


def test_an_api_that_quotes_its_request_in_errors() -> None:
    """``quote_request_in_errors`` (set by /_emulator/config): each error answer's texts end
    with the request line, query and headers as received; a success is left alone."""
    with EmulatorServer(OutreachApp(records=1, parents=1, seed=1, token="k")) as server:
        httpx.post(f"{server.url}/_emulator/config",
                   json={"quote_request_in_errors": True}).raise_for_status()
        refused = httpx.get(f"{server.url}/api/v2/phoneNumbers?page%5Bsize%5D=0&x=a%2Bb",
                            headers={"Authorization": "Bearer k"})
        ok = httpx.get(f"{server.url}/api/v2/phoneNumbers", headers={"Authorization": "Bearer k"})
    assert refused.status_code == 400
    (error,) = refused.json()["errors"]
    quote = "in answer to GET /api/v2/phoneNumbers?page%5Bsize%5D=0&x=a%2Bb with headers"
    assert quote in error["detail"] and "authorization: Bearer k" in error["detail"]
    assert ok.status_code == 200 and "in answer to" not in ok.text
