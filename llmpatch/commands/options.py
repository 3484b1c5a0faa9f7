"""Options shared by several commands, so each is spelled and explained the same way everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import click

#: ``ctx.meta`` key set when a command runs with ``--json``: cli.py then reports errors as JSON too.
JSON_META = "llmpatch.json"

REGISTRY_HELP = "Registry URL: a directory, file://PATH or hf://ORG/INDEX-REPO (default: $LLMPATCH_REGISTRY or <home>/registry)."


def _mark_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[JSON_META] = True
    return value


def json_option(help: str = "Print JSON (errors too: {\"error\": ..., \"hint\": ...}).") -> Callable:
    """``--json``: machine-readable output on stdout, for results and errors alike."""
    return click.option("--json", "as_json", is_flag=True, callback=_mark_json, help=help)


def registry_option(help: str = REGISTRY_HELP) -> Callable:
    """``-r/--registry URL`` (the same short flag in every command)."""
    return click.option("--registry", "-r", "registry_url", default=None, metavar="URL", help=help)


def env_option(f: Callable) -> Callable:
    return click.option("--env", "env_dir", type=click.Path(path_type=Path),
                        help="Environment directory (default: $LLMPATCH_ENV, else the nearest .llmpatch/ upward).")(f)


def timeout_option(f: Callable) -> Callable:
    return click.option("--lock-timeout", default=120.0, show_default=True,
                        help="Seconds to wait for another llmpatch process working on this environment.")(f)


def dry_run_option(f: Callable) -> Callable:
    return click.option("--dry-run", is_flag=True, help="Show the plan, change nothing.")(f)
