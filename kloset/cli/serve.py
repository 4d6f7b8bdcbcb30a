"""`kloset serve` and `kloset health`: run roles in this process, and ask running ones how they are."""

import argparse
import logging
import sys

from kloset.client.stubs import Clients
from kloset.core.config import Role, Settings, parse_roles


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the services (every role in one process by default)")
    serve.add_argument("--role", default="all", help="all, or a comma-separated list of roles")
    serve.add_argument("--log-level", help="overrides KLOSET_LOG_LEVEL")
    serve.set_defaults(run=run_serve)
    health = commands.add_parser("health", help="exit 0 only when every role answers SERVING")
    health.add_argument("--role", default="all", help="check only these roles (comma-separated)")
    health.set_defaults(run=run_health)


def run_serve(args, settings: Settings) -> int:
    from kloset.program import Program

    _configure_logging(settings, args.log_level)
    program = Program(settings, parse_roles(args.role))
    program.start()
    print("kloset serving " + ", ".join(f"{s.name} on :{s.port}" for s in program.servers), flush=True)
    program.wait()
    if program.failure:  # a worker or the optimizer died: exit non-zero so a supervisor restarts the process
        print(f"kloset: {program.failure}", file=sys.stderr)
        return 1
    return 0


def _configure_logging(settings, level: str | None) -> None:
    """KLOSET_LOG_FORMAT=json: one JSON object per line (python-json-logger), for log collectors. Every line
    carries the request id (x-request-id) of the call or worker job it belongs to, "-" outside one."""
    from kloset.core.config import LogFormat
    from kloset.core.request_context import RequestIdFilter

    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    fields = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"
    if settings.log_format is LogFormat.JSON:
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(fields, rename_fields={"levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    logging.basicConfig(level=(level or settings.log_level).upper(), handlers=[handler], force=True)


def run_health(args, settings: Settings) -> int:
    clients = Clients(settings)
    statuses = {role.value: clients.health(role) for role in Role if role in parse_roles(args.role)}
    for role, status in statuses.items():
        print(f"{role:<10} {status}")
    return 0 if all(s == "SERVING" for s in statuses.values()) else 1
