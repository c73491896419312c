"""`crmphones-emulator DIALECT [options]`: serve one emulated CRM account on loopback."""

from __future__ import annotations

import argparse
import importlib
import sys
import typing as t

from crmphones_emulators.server import EmulatorServer, Faults

DIALECTS = ("outreach", "activix", "onedegree", "ticketevolution")


def dialect_parser(name: str, module: t.Any) -> argparse.ArgumentParser:
    """Options shared by every dialect, then the dialect's own."""
    sub = argparse.ArgumentParser(prog=f"crmphones-emulator {name}",
                                  description=(module.__doc__ or "").splitlines()[0])
    sub.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    sub.add_argument("--records", type=int, default=100, help="phone numbers to seed")
    sub.add_argument("--parents", type=int, default=None,
                     help="parent records (ids 1..N, the same for one seed)")
    sub.add_argument("--seed", type=int, default=1, help="seed of the fake data")
    sub.add_argument("--latency-ms", type=float, default=0.0,
                     help="time to answer every request (the app's own work included)")
    sub.add_argument("--jitter-ms", type=float, default=0.0, help="random extra latency")
    sub.add_argument("--error-rate", type=float, default=0.0,
                     help="share of requests answered 500/503 before the app runs")
    sub.add_argument("--drop-rate", type=float, default=0.0,
                     help="share of successful requests whose response is never sent")
    module.APP.options_type.add_arguments(sub)
    return sub


def build(app_type: t.Any, args: argparse.Namespace) -> t.Any:
    """The app from parsed command-line options: the shared ones, then its declared switches."""
    return app_type(records=args.records, parents=args.parents, seed=args.seed,
                    **app_type.options_type.from_args(args))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in DIALECTS:
        top = argparse.ArgumentParser(
            prog="crmphones-emulator", description="Serve an emulated CRM API on 127.0.0.1. "
            "`crmphones-emulator DIALECT --help` lists a dialect's options.")
        top.add_argument("dialect", choices=DIALECTS)
        top.parse_args(argv[:1])  # prints help, or the error listing the dialects, and exits
    name = argv[0]
    # Only the chosen dialect is imported: each is independent of the others.
    module: t.Any = importlib.import_module(f"crmphones_emulators.{name}")
    args = dialect_parser(name, module).parse_args(argv[1:])
    try:
        app = build(module.APP, args)
    except ValueError as exc:
        sys.exit(f"crmphones-emulator: {exc}")
    faults = Faults(latency_ms=args.latency_ms, jitter_ms=args.jitter_ms,
                    error_rate=args.error_rate, drop_rate=args.drop_rate, seed=args.seed)
    try:
        server = EmulatorServer(app, host=args.host, port=args.port, faults=faults)
    except OSError as exc:
        sys.exit(f"crmphones-emulator: cannot listen on {args.host}:{args.port}: {exc.strerror}")
    print(f"serving {name} on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
