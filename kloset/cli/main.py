"""The `kloset` console script: parse the command line and run the command's handler.

Each command family registers its parsers and handlers (`set_defaults(run=...)`) in a module of its own; a handler
takes (args, settings) and returns the exit status.
"""

import argparse
import sys

import grpc

from kloset.cli import bench, catalog, config, docs, ingest, models, query, serve
from kloset.client.stubs import CommandError, rpc_message
from kloset.core import request_context
from kloset.core.config import ConfigError, load_settings
from kloset.core.errors import KlosetError

FAMILIES = (serve, ingest, query, catalog, config, models, bench, docs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kloset", description="Garment similarity search over gRPC.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for family in FAMILIES:
        family.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"kloset: bad configuration: {exc}", file=sys.stderr)
        return 2
    # One request id for the whole command: every call it makes (and every job `kloset ingest` queues) carries
    # it, so one id finds the command's work in every service's log.
    request = request_context.new_request_id()
    try:
        with request_context.bound(None if args.command == "serve" else request):
            return args.run(args, settings)
    except (CommandError, KlosetError, ValueError, OSError) as exc:
        print(f"kloset {args.command}: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"kloset {args.command}: {rpc_message(exc)} (request id {request})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
