"""Regenerate docs/cli.md from the commands' own --help (python docs/gen_cli_reference.py)."""

from __future__ import annotations

from pathlib import Path

import click

from llmpatch.cli import cli

OUT = Path(__file__).with_name("cli.md")


def _walk(cmd: click.Command, path: list[str]):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.list_commands(click.Context(cmd))):
            yield from _walk(cmd.get_command(click.Context(cmd), name), path + [name])


def render() -> str:
    """The CLI reference as markdown."""
    parts = ["# CLI reference", "", "Generated from `--help` by `python docs/gen_cli_reference.py`; do not edit.", ""]
    for path, cmd in _walk(cli, ["llmpatch"]):
        with click.Context(cmd, info_name=" ".join(path), terminal_width=100, max_content_width=100) as ctx:
            text = cmd.get_help(ctx)
        parts += [f"## {' '.join(path)}", "", "```", text.rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
