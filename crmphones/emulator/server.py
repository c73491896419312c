"""The emulator's HTTP server: a real loopback server in front of one dialect app.

A dialect app (`DialectApp`) only turns `Request` into `Response` and keeps its account's
state. The server owns everything that is the same for every CRM: HTTP framing, injected
latency and faults, the request log, and the `/_emulator/*` admin routes tests read back.

Only the standard library is used, so the emulator can never share code (or a misreading of
an API) with the client in `crmphones.dialects`.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import typing as t
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

ADMIN_PREFIX = "/_emulator"
FAULT_OPTIONS = ("latency_ms", "jitter_ms", "error_rate", "drop_rate", "fail_writes_containing",
                 "quote_request_in_errors")


@dataclass
class Request:
    """One HTTP request as a dialect app sees it."""

    method: str
    path: str
    query: list[tuple[str, str]]
    raw_query: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # names lowercased
    body: bytes = b""
    host: str = "127.0.0.1"

    def param(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query parameter (PHP and Rails both keep the last one)."""
        found = [value for key, value in self.query if key == name]
        return found[-1] if found else default

    def json(self) -> t.Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        return json.loads(self.body or b"null")


@dataclass
class Response:
    """What a dialect app answers; a non-bytes body is sent as JSON."""

    status: int
    body: t.Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encode(self) -> bytes:
        if self.status == 204 or self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class LoggedRequest:
    """One API request as the server saw it (admin routes are not logged; headers never are,
    since they carry credentials)."""

    method: str
    path: str
    query: str
    at: float  # arrival (time.time()), before the request's headers are read
    status: int = 0
    fault: str | None = None  # "error" (injected 5xx) or "dropped" (response never sent)
    body: str | None = None  # writes only


class DialectApp(t.Protocol):
    """One emulated CRM account."""

    name: str

    def handle(self, request: Request) -> Response: ...

    def snapshot(self) -> dict[str, t.Any]: ...

    def configure(self, options: dict[str, t.Any]) -> None: ...


class RateLimiter:
    """A fixed-window quota (`limit` requests per `window` seconds), thread-safe."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._used = 0

    def take(self) -> tuple[bool, int, float]:
        """Count one request. Returns (allowed, remaining, seconds until the window resets)."""
        with self._lock:
            now = time.monotonic()
            if now - self._start >= self.window:
                self._start, self._used = now, 0
            reset_in = self.window - (now - self._start)
            if self._used >= self.limit:
                return False, 0, reset_in
            self._used += 1
            return True, self.limit - self._used, reset_in


@dataclass
class Faults:
    """Injected trouble: latency on every request (the time to answer, the app's own work
    included), server errors instead of the app, and dropped connections after it ran (the
    write happened, the response is lost).

    Each kind draws from its own seeded stream, so the n-th answer's fate does not depend on
    how concurrent requests interleaved their draws: a seed gives the same faults every run.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 0
    #: Every write whose body holds this text answers 503: an outage of one record's writes
    #: that outlasts any retry.
    fail_writes_containing: str = ""
    #: Every error answer (4xx, 5xx) quotes the request it answers, its query and headers
    #: included, in each text of its body: an API that echoes what it was sent (a request line
    #: with One Degree's ``api_key``, a rejected token) in its error messages.
    quote_request_in_errors: bool = False
    _streams: dict[str, random.Random] = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._streams = {kind: random.Random(f"faults-{self.seed}-{kind}")
                         for kind in ("jitter", "error", "drop")}

    def update(self, options: dict[str, t.Any]) -> None:
        for name in FAULT_OPTIONS:
            if name not in options:
                continue
            if name == "fail_writes_containing":
                setattr(self, name, str(options[name]))
            elif name == "quote_request_in_errors":
                setattr(self, name, bool(options[name]))
            else:
                setattr(self, name, float(options[name]))

    def failing_write(self, request: Request) -> Response | None:
        """A 503 for a write that holds ``fail_writes_containing``."""
        if (self.fail_writes_containing and request.method in ("POST", "PUT", "PATCH")
                and self.fail_writes_containing.encode() in request.body):
            return Response(503, {"error": "injected outage of this record's writes"})
        return None

    def quoted(self, request: Request, response: Response) -> Response:
        """``response``, its body's texts quoting ``request`` when it is an error answer and
        ``quote_request_in_errors`` is on."""
        if not self.quote_request_in_errors or response.status < 400:
            return response
        line = f"{request.method} {request.path}" + (f"?{request.raw_query}"
                                                     if request.raw_query else "")
        headers = "; ".join(f"{name}: {value}" for name, value in request.headers.items())
        quote = f" (in answer to {line} with headers {headers})"

        def with_quote(value: t.Any) -> t.Any:
            if isinstance(value, str):
                return value + quote
            if isinstance(value, dict):
                return {key: with_quote(item) for key, item in value.items()}
            if isinstance(value, list):
                return [with_quote(item) for item in value]
            return value

        body = response.body
        if isinstance(body, dict | list):
            body = with_quote(body)
        elif isinstance(body, str | bytes) or body is None:
            body = (body.decode(errors="replace") if isinstance(body, bytes) else body or "") + quote
        return Response(response.status, body, response.headers, response.content_type)

    def delay(self) -> float:
        jitter = self._draw("jitter") * self.jitter_ms if self.jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000

    def error(self) -> Response | None:
        """An injected 500 or 503 instead of the app's answer, at ``error_rate``."""
        if self.error_rate <= 0:
            return None
        draw = self._draw("error")
        if draw >= self.error_rate:
            return None
        status = 500 if draw < self.error_rate / 2 else 503
        return Response(status, {"error": "injected fault", "status": status})

    def dropped(self) -> bool:
        """Whether to drop the connection instead of sending an answer, at ``drop_rate``."""
        return self.drop_rate > 0 and self._draw("drop") < self.drop_rate

    def _draw(self, kind: str) -> float:
        with self._lock:
            return self._streams[kind].random()


class _HTTPServer(ThreadingHTTPServer):
    # Concurrent clients open many connections at once; with the default backlog of 5 the
    # kernel drops the rest of the SYNs and each such client stalls a whole second.
    request_queue_size = 128

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        """A client that went away (reset its kept-alive connection on exit) is not an error
        of the emulator's: only the rest gets socketserver's traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class EmulatorServer:
    """Serves one `DialectApp` on loopback; `with EmulatorServer(app) as s: httpx.get(s.url)`."""

    def __init__(self, app: DialectApp, host: str = "127.0.0.1", port: int = 0,
                 faults: Faults | None = None) -> None:
        self.app = app
        self.faults = faults or Faults()
        self.requests: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> EmulatorServer:
        # A short poll interval so stop() returns at once (tests start many servers).
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def log(self, entry: LoggedRequest) -> None:
        with self._log_lock:
            self.requests.append(entry)

    def admin(self, request: Request) -> Response:
        route = (request.method, request.path[len(ADMIN_PREFIX):].rstrip("/"))
        if route == ("GET", "/health"):
            return Response(200, {"status": "ok", "dialect": self.app.name})
        if route == ("GET", "/state"):
            return Response(200, self.app.snapshot())
        if route == ("GET", "/requests"):
            with self._log_lock:
                return Response(200, [asdict(entry) for entry in self.requests])
        if route == ("DELETE", "/requests"):
            with self._log_lock:
                self.requests.clear()
            return Response(204)
        if route == ("POST", "/config"):
            try:
                options = request.json()
            except ValueError:
                return Response(400, {"error": "config must be a JSON object"})
            if not isinstance(options, dict):
                return Response(400, {"error": "config must be a JSON object"})
            self.faults.update(options)
            self.app.configure({k: v for k, v in options.items() if k not in FAULT_OPTIONS})
            return Response(200, {"ok": True})
        return Response(404, {"error": f"no admin route {request.method} {request.path}"})


def _handler_for(server: EmulatorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real APIs and httpx pools expect
        # An answer must leave at once: with Nagle on, a small write behind unacknowledged
        # data waits ~40 ms for the client's delayed ACK.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: t.Any) -> None:
            """Quiet: the request log is kept in memory and served at /_emulator/requests."""

        def parse_request(self) -> bool:
            """Note the arrival before the headers are parsed: parsing them is our work."""
            self.arrived, self.arrived_at = time.monotonic(), time.time()
            return super().parse_request()

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command, path=parts.path,
                query=parse_qsl(parts.query, keep_blank_values=True), raw_query=parts.query,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
                host=self.headers.get("Host", "127.0.0.1"),
            )
            if request.path.startswith(ADMIN_PREFIX):
                answer = server.admin(request)
                self.wfile.write(self._message(answer, answer.encode()))
                return
            # The latency is the API's answer time, its own work included (reading the request,
            # the answer, its encoding, its log entry): the work is done on arrival and the
            # answer, ready to the last byte, waits out the rest in one write, so a slow
            # emulator adds nothing to it.
            answer_at = self.arrived + server.faults.delay()
            entry = LoggedRequest(request.method, request.path, request.raw_query, self.arrived_at)
            response = server.faults.failing_write(request) or server.faults.error()
            entry.fault = "error" if response else None
            if response is None:
                try:
                    response = server.app.handle(request)
                except Exception as exc:  # an emulator bug must show as a 500, not a hang
                    response = Response(500, {"error": f"emulator bug: {exc!r}"})
            response = server.faults.quoted(request, response)
            entry.status = response.status
            if request.method in ("POST", "PUT", "PATCH"):
                entry.body = request.body.decode(errors="replace")
            message = self._message(response, response.encode())
            if response.status < 300 and server.faults.dropped():
                entry.fault = "dropped"
                message = b""
            server.log(entry)
            wait = answer_at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not message:
                self.close_connection = True  # the work is done, the answer never arrives
                return
            self.wfile.write(message)

        def _message(self, response: Response, payload: bytes) -> bytes:
            """The whole answer, status line to body, for one write."""
            phrase = self.responses.get(response.status, ("",))[0]
            head = [f"{self.protocol_version} {response.status} {phrase}",
                    f"Server: {self.version_string()}", f"Date: {self.date_time_string()}"]
            if payload:
                head.append(f"Content-Type: {response.content_type}")
            head.append(f"Content-Length: {len(payload)}")
            head += [f"{name}: {value}" for name, value in response.headers.items()]
            body = payload if self.command != "HEAD" else b""
            return "\r\n".join([*head, "", ""]).encode("latin-1") + body

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve  # noqa: N815

    return Handler
