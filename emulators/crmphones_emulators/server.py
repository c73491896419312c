"""The emulator's HTTP server: a real loopback server in front of one dialect app.

A dialect app (`DialectApp`) only turns `Request` into `Response` and keeps its account's
state. The server owns everything that is the same for every CRM: HTTP framing, injected
latency and faults, the request log, and the `/_emulator/*` admin routes tests read back.

Only the standard library is used, so the emulator can never share code (or a misreading of
an API) with the client in `crmphones.dialects`.

What every dialect shares lives here too: the `Router` from method and path to a handler, the
declared `Options` (variant switches) an app is built and reconfigured from, and the
`RateLimiter` counting in an injectable `Clock`.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import sys
import threading
import time
import typing as t
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from crmphones_emulators.clock import SYSTEM_CLOCK

if t.TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable, Mapping

    from crmphones_emulators.clock import Clock

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
    #: Whether the request log keeps the body of the request this answers: not when the body
    #: is credentials (an OAuth token request's form).
    log_body: bool = True

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
    at: float  # arrival (the server clock's epoch seconds), before the headers are read
    done: float = 0.0  # when the answer left (or the connection was dropped), same clock
    status: int = 0
    fault: str | None = None  # "error" (injected 5xx) or "dropped" (response never sent)
    body: str | None = None  # writes only (never a token request's form: credentials)


class DialectApp(t.Protocol):
    """One emulated CRM account."""

    name: str

    def handle(self, request: Request) -> Response: ...

    def snapshot(self) -> dict[str, t.Any]: ...

    def configure(self, options: dict[str, t.Any]) -> None: ...

    def reset(self) -> None:
        """Back to the seeded account and its options as built (a server shared by tests)."""
        ...


class RateLimiter:
    """A fixed-window quota (``options.rate_limit`` requests per ``options.rate_window``
    seconds), thread-safe. It reads the app's options at each request, so a reconfigured
    limit holds at once."""

    def __init__(self, options: RateOptions, clock: Clock = SYSTEM_CLOCK) -> None:
        self.options, self.clock = options, clock
        self._lock = threading.Lock()
        self._start = clock.now()
        self._used = 0

    @property
    def limit(self) -> int:
        return self.options.rate_limit

    @property
    def window(self) -> float:
        return self.options.rate_window

    def take(self) -> tuple[bool, int, float]:
        """Count one request. Returns (allowed, remaining, seconds until the window resets)."""
        with self._lock:
            now = self.clock.now()
            if now - self._start >= self.window:
                self._start, self._used = now, 0
            reset_in = self.window - (now - self._start)
            if self._used >= self.limit:
                return False, 0, reset_in
            self._used += 1
            return True, self.limit - self._used, reset_in

    def peek(self) -> tuple[int, float]:
        """(remaining, seconds until the reset) without counting a request."""
        with self._lock:
            elapsed = self.clock.now() - self._start
            if elapsed >= self.window:
                return self.limit, self.window
            return max(0, self.limit - self._used), self.window - elapsed


Handler = t.Callable[..., Response]


@dataclass(frozen=True)
class Route:
    """The handler a request goes to, with the path segments its pattern captured."""

    handler: Handler
    args: tuple[str, ...]


class Router:
    """Method and path to handler, for every dialect: a table of path patterns (relative to
    the API's version prefix) each with the methods it serves.

    What a miss means differs by API (Laravel answers 405 with `Allow`, Rails 404), so the
    router only says which methods the path allows and the app answers.
    """

    def __init__(self, prefixes: str | Iterable[str],
                 table: Iterable[tuple[str, Mapping[str, Handler]]]) -> None:
        self.prefixes = (prefixes,) if isinstance(prefixes, str) else tuple(prefixes)
        self._table = [(re.compile(pattern), dict(methods)) for pattern, methods in table]

    def match(self, method: str, path: str) -> Route | tuple[str, ...]:
        """The route; else the methods the path allows (empty when no pattern matches)."""
        path = path.rstrip("/")
        prefix = next((p for p in self.prefixes if path == p or path.startswith(p + "/")), None)
        if prefix is None:
            return ()
        sub, method, allowed = path[len(prefix):], method.upper(), []
        for pattern, methods in self._table:
            found = pattern.fullmatch(sub)
            if found:
                if method in methods:
                    return Route(methods[method], found.groups())
                allowed.extend(methods)
        return tuple(allowed)


@dataclass
class Options:
    """An app's runtime switches, declared once: each field is a constructor keyword of the
    app, a key of `POST /_emulator/config` and a command-line option.

    A field's metadata may hold `help`, `flag` (the option's name when not `--field-name`,
    e.g. `--no-touch-lead` for a switch that is on by default), `choices`, and `parse` (how a
    config value or command-line text becomes the field's value).
    """

    def update(self, options: Mapping[str, t.Any]) -> None:
        """Set the known switches (unknown keys are ignored: the apps' contract)."""
        for spec in dataclasses.fields(self):
            if spec.name in options:
                setattr(self, spec.name, _coerce(spec, options[spec.name]))

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One command-line option per field."""
        for spec in dataclasses.fields(cls):
            default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()  # type: ignore[misc]
            flag = spec.metadata.get("flag") or "--" + spec.name.replace("_", "-")
            help_text = spec.metadata.get("help")
            if isinstance(default, bool):
                action = "store_false" if default else "store_true"
                if default and help_text:
                    help_text = f"turn off (on by default): {help_text}"
                parser.add_argument(flag, dest=spec.name, action=action, help=help_text)
            else:
                parser.add_argument(flag, dest=spec.name, default=default, help=help_text,
                                    choices=spec.metadata.get("choices"),
                                    type=lambda raw, spec=spec: _coerce(spec, raw))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> dict[str, t.Any]:
        """The app's keywords from parsed command-line options."""
        return {spec.name: getattr(args, spec.name) for spec in dataclasses.fields(cls)}


def _coerce(spec: dataclasses.Field[t.Any], value: t.Any) -> t.Any:
    parse = spec.metadata.get("parse")
    if parse is not None:
        return parse(value)
    kind = spec.type if isinstance(spec.type, type) else str(spec.type)
    if kind in (bool, "bool"):
        return value.lower() in ("1", "true", "yes") if isinstance(value, str) else bool(value)
    if kind in (int, "int"):
        return int(value)
    if kind in (float, "float"):
        return float(value)
    if kind in ("str | None",):
        return None if value is None else str(value)
    return str(value)


def option(default: t.Any, help: str, **metadata: t.Any) -> t.Any:
    """A declared switch: its default, its help, and any of `flag`, `choices`, `parse`."""
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class RateOptions(Options):
    """The quota every emulated API has (each app declares its own defaults)."""

    rate_limit: int = option(10_000, "requests per window")
    rate_window: float = option(3600.0, "window length in seconds")


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
    #: Every write whose body holds this text answers 502: an outage of one record's writes
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
        """A 502 for a write that holds ``fail_writes_containing``: a gateway's outage (not
        a 503, which Ticket Evolution answers as its throttle)."""
        if (self.fail_writes_containing and request.method in ("POST", "PUT", "PATCH")
                and self.fail_writes_containing.encode() in request.body):
            return Response(502, {"error": "injected outage of this record's writes"})
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
        return Response(response.status, body, response.headers, response.content_type,
                        response.log_body)

    def delay(self) -> float:
        jitter = self._draw("jitter") * self.jitter_ms if self.jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000

    def error(self) -> Response | None:
        """An injected 500 or 502 instead of the app's answer, at ``error_rate``: a server's
        or a gateway's failure (not a 503, which Ticket Evolution answers as its throttle)."""
        if self.error_rate <= 0:
            return None
        draw = self._draw("error")
        if draw >= self.error_rate:
            return None
        status = 500 if draw < self.error_rate / 2 else 502
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
                 faults: Faults | None = None, clock: Clock | None = None) -> None:
        self.app = app
        #: Dates the request log; the app's own clock unless told otherwise.
        self.clock: Clock = clock or getattr(app, "clock", SYSTEM_CLOCK)
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
            self.arrived, self.arrived_at = time.monotonic(), server.clock.time()
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
            if request.method in ("POST", "PUT", "PATCH") and response.log_body:
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
                entry.done = server.clock.time()
                return
            self.wfile.write(message)
            entry.done = server.clock.time()

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
