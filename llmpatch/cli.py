"""The ``llmpatch`` command line. The one place where library errors become messages and exit codes.

Each noun/verb lives in its own module under ``llmpatch/commands/`` and registers itself here.
"""

from __future__ import annotations

import errno
import importlib
import logging
import sys

import click

from llmpatch import __version__, ui
from llmpatch.commands.options import JSON_META
from llmpatch.errors import LlmpatchError

#: Modules under llmpatch.commands that define ``register(cli)``. One per area, one owner each.
COMMAND_MODULES = ("core", "registry", "env", "verify", "build", "merge", "serve")


#: Failures of the disk rather than of llmpatch: reported as a message, not a traceback.
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def _disk_error(exc: OSError) -> LlmpatchError | None:
    """A one-line error for a full or read-only disk (None for any other OSError)."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in _FULL:
        return LlmpatchError(f"{exc.strerror or 'the disk is full'}{where}",
                             hint="free some disk space (or raise the file size limit) and run the command again; "
                                  "llmpatch writes atomically, so nothing half-written is used")
    if exc.errno in _READ_ONLY:
        return LlmpatchError(f"{exc.strerror or 'permission denied'}{where}",
                             hint="check that you may read and write there (permissions, a read-only mount); "
                                  "--dry-run shows what a command would change without writing")
    return None


class LlmpatchGroup(click.Group):
    """Turns typed llmpatch errors into one clear message and an exit code, without a traceback."""

    def invoke(self, ctx: click.Context):  # noqa: D102
        try:
            try:
                return super().invoke(ctx)
            except OSError as os_exc:
                converted = _disk_error(os_exc)
                if converted is None:
                    raise
                raise converted from os_exc
        except LlmpatchError as exc:
            # a script reads stdout: give it the error as JSON too, unless the result is already there
            # (verify --json prints its report, then fails on the policy: one JSON document on stdout)
            if ctx.meta.get(JSON_META) and not ui.printed_json():
                ui.print_json({"error": exc.message, "hint": exc.hint, "type": type(exc).__name__,
                               "exit_code": exc.exit_code})
            ui.error(exc.message, exc.hint)
            ctx.exit(exc.exit_code)


@click.group(cls=LlmpatchGroup)
@click.version_option(__version__, prog_name="llmpatch")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only results and errors: no progress, no messages on stderr.")
def cli(verbose: int, quiet: bool) -> None:
    """llmpatch: a package manager for LLM safety patches.

    \b
    Vendors:   llmpatch build RECIPE -o DIR; llmpatch publish DIR
    Customers: llmpatch init --base default; llmpatch install tox-fix@1.2;
               llmpatch verify; llmpatch rollback; llmpatch run "prompt"

    Listings take --json; piped output is plain, one record a line. Shell completion
    (bash, zsh, fish), e.g. in ~/.bashrc:

    \b
      eval "$(_LLMPATCH_COMPLETE=bash_source llmpatch)"
      (zsh: zsh_source in ~/.zshrc; fish: _LLMPATCH_COMPLETE=fish_source llmpatch
       > ~/.config/fish/completions/llmpatch.fish)
    """
    ui.set_quiet(quiet)
    ui.silence_third_party_progress()
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")


for _name in COMMAND_MODULES:
    importlib.import_module(f"llmpatch.commands.{_name}").register(cli)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="llmpatch")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
