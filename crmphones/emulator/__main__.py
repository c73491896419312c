"""`crmphones-emulator DIALECT [options]`: serve one emulated CRM account on loopback."""

from __future__ import annotations

import argparse
import importlib
import sys
import typing as t

from crmphones.emulator.server import EmulatorServer, Faults

DIALECTS = ("outreach", "activix", "onedegree", "ticketevolution")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="crmphones-emulator", description="Serve an emulated CRM API on 127.0.0.1.")
    dialects = root.add_subparsers(dest="dialect", required=True, metavar="DIALECT")
    for name in DIALECTS:
        module = importlib.import_module(f"crmphones.emulator.{name}")
        sub = dialects.add_parser(name, help=(module.__doc__ or "").splitlines()[0])
        sub.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        sub.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
        sub.add_argument("--records", type=int, default=100, help="phone numbers to seed")
        sub.add_argument("--parents", type=int, default=None,
                         help="parent records (ids 1..N, same for one seed)")
        sub.add_argument("--seed", type=int, default=1, help="seed of the fake data")
        sub.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
        sub.add_argument("--jitter-ms", type=float, default=0.0, help="random extra latency")
        sub.add_argument("--error-rate", type=float, default=0.0,
                         help="share of requests answered 500/503 before the app runs")
        sub.add_argument("--drop-rate", type=float, default=0.0,
                         help="share of successful requests whose response is never sent")
        module.add_arguments(sub)
        sub.set_defaults(module=module)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    module: t.Any = args.module
    try:
        app = module.build(args)
    except ValueError as exc:
        sys.exit(f"crmphones-emulator: {exc}")
    faults = Faults(latency_ms=args.latency_ms, jitter_ms=args.jitter_ms,
                    error_rate=args.error_rate, drop_rate=args.drop_rate, seed=args.seed)
    try:
        server = EmulatorServer(app, host=args.host, port=args.port, faults=faults)
    except OSError as exc:
        sys.exit(f"crmphones-emulator: cannot listen on {args.host}:{args.port}: {exc.strerror}")
    print(f"serving {args.dialect} on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
