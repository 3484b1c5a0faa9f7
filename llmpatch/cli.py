"""The ``llmpatch`` command line. The one place where library errors become messages and exit codes.

Each noun/verb lives in its own module under ``llmpatch/commands/`` and registers itself here.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from llmpatch import __version__
from llmpatch.errors import LlmpatchError

#: Modules under llmpatch.commands that define ``register(cli)``. One per area, one owner each.
COMMAND_MODULES = ("core", "registry", "env", "verify", "build", "serve")


class LlmpatchGroup(click.Group):
    """Turns typed llmpatch errors into one clear message and an exit code, without a traceback."""

    def invoke(self, ctx: click.Context):  # noqa: D102
        try:
            return super().invoke(ctx)
        except LlmpatchError as exc:
            click.secho(f"error: {exc.message}", fg="red", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=LlmpatchGroup)
@click.version_option(__version__, prog_name="llmpatch")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """llmpatch: a package manager for LLM safety patches.

    \b
    Vendors:   llmpatch build RECIPE -o DIR; llmpatch publish DIR
    Customers: llmpatch init --base default; llmpatch install tox-fix@1.2;
               llmpatch verify; llmpatch rollback; llmpatch run "prompt"
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")


for _name in COMMAND_MODULES:
    importlib.import_module(f"llmpatch.commands.{_name}").register(cli)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="llmpatch")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
