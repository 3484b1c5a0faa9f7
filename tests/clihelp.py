"""Driving the CLI in-process from tests: ``run("install", "tox-fix")``, ``run_json("list")``."""

from __future__ import annotations

import json

from click.testing import CliRunner

from llmpatch.cli import cli


def run(*args, ok: bool = True, catch_exceptions: bool = True):
    """Invoke the CLI in-process; assert success unless ``ok=False``."""
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=catch_exceptions)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def run_json(*args):
    """Run with ``--json`` and parse stdout."""
    return json.loads(run(*args, "--json").stdout)


def refused(*args):
    """Invoke the CLI and assert a clean refusal: a non-zero exit and no traceback."""
    res = run(*args, ok=False)
    assert res.exit_code != 0, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res
