"""`kloset config`: the configuration a process would start with, every secret masked."""

import argparse
import json
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from kloset.core.config import Settings, env_name

MASK = "********"


def effective_config(settings: Settings) -> dict[str, object]:
    """Every setting by its variable name, as JSON-ready values; secrets and URL passwords masked."""
    return {env_name(name): _shown(getattr(settings, name)) for name in Settings.model_fields}


def explicit_variables(settings: Settings) -> set[str]:
    """The variables set in the environment (or on the command line) rather than left at their defaults."""
    return {env_name(name) for name in settings.model_fields_set}


def _shown(value: object) -> object:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and "://" in value:
        return masked_url(value)
    if hasattr(value, "value"):  # an enum
        return value.value
    return value


def masked_url(url: str) -> str:
    """redis://user:secret@host:6379/0 -> redis://user:********@host:6379/0."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rpartition("@")[2]  # host and port as written, IPv6 brackets included
    return urlunsplit(parts._replace(netloc=f"{user}{MASK}@{host}"))



def register(commands: argparse._SubParsersAction) -> None:
    config = commands.add_parser("config", help="print the effective configuration (secrets masked)")
    config.add_argument("--json", action="store_true")
    config.set_defaults(run=run_config)


def run_config(args, settings: Settings) -> int:
    config = effective_config(settings)
    if args.json:
        print(json.dumps(config, indent=2))
        return 0
    explicit = explicit_variables(settings)
    width = max(map(len, config))
    for name, value in config.items():
        shown = "" if value is None else value
        print(f"{name:<{width}}  {shown}" + ("" if name in explicit else "  (default)"))
    return 0
