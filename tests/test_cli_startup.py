"""Everyday commands start fast: they never import torch, transformers or peft.

Each command runs in a process of its own (forked from one that imported only ``llmpatch.cli``),
which then reports which heavy modules it imported. No wall-clock assertions: the timings are
printed by ``benchmarks/bench_cli.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmpatch.cli import cli

HEAVY = ("torch", "transformers", "peft")
ROOT = Path(__file__).resolve().parent.parent

#: Runs each argv of a JSON list in a forked child (fresh command state, the parent's imports) and
#: prints one JSON line per command: exit code and the heavy modules the command imported.
PROBE = textwrap.dedent("""
    import json, os, sys
    HEAVY = %r
    import llmpatch.cli
    assert not [m for m in HEAVY if m in sys.modules], "importing llmpatch.cli imported a heavy module"
    for argv in json.loads(sys.argv[1]):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0
            try:
                sys.stdout = sys.stderr = open(os.devnull, "w")
                llmpatch.cli.cli.main(argv, prog_name="llmpatch")
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:
                code = repr(exc)
            os.write(w, json.dumps({"argv": argv, "code": code,
                                    "heavy": [m for m in HEAVY if m in sys.modules]}).encode())
            os._exit(0)
        os.close(w)
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
        os.waitpid(pid, 0)
        print(data.decode(), flush=True)
""") % (HEAVY,)


def probe(commands: list[list[str]], env: dict[str, str], cwd: Path) -> list[dict]:
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(commands)], capture_output=True, text=True,
                         env=env, cwd=cwd, timeout=300)
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def all_command_paths(group=cli, prefix=()) -> list[tuple[str, ...]]:
    out = [prefix]
    for name, cmd in sorted(getattr(group, "commands", {}).items()):
        out += all_command_paths(cmd, (*prefix, name)) if hasattr(cmd, "commands") else [(*prefix, name)]
    return out


@pytest.fixture
def scenario(tmp_path, make_patch, tiny_model_dir, llmpatch_home, monkeypatch):
    """A signed local registry with tox-fix 1.0.0 and 1.1.0, and an environment at generation 3."""
    reg = tmp_path / "registry"
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)

    def run(*args):
        res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert res.exit_code == 0, res.output

    run("registry", "init", reg)
    run("key", "generate")
    for v in ("1.0.0", "1.1.0"):
        run("publish", make_patch("tox-fix", v, summary="Lowers toxicity").path, "-r", reg)
    run("init", "--base", tiny_model_dir, "-r", reg)
    run("install", "tox-fix@1.0.0")
    run("install", "tox-fix@1.1.0")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LLMPATCH_HOME": str(llmpatch_home)}
    return {"registry": str(reg), "project": project, "env": env, "home": llmpatch_home}


def test_everyday_commands_import_no_torch_transformers_or_peft(scenario):
    reg, home = scenario["registry"], scenario["home"]
    commands = [
        ["list"], ["list", "--json"], ["history"], ["history", "--json"],
        ["search", "tox", "-r", reg], ["search", "--json", "-r", reg], ["show", "tox-fix", "-r", reg],
        ["show", "tox-fix@^1", "--json", "-r", reg],
        ["lock"], ["lock", "--json"],
        ["install", "tox-fix@1.0.0", "--dry-run"], ["install", "tox-fix@1.0.0", "--dry-run", "--json"],
        ["upgrade", "--dry-run"], ["remove", "tox-fix", "--dry-run"], ["gc", "--dry-run"],
        ["rollback", "--dry-run"], ["rollback"], ["rollback", "--to", "4", "--json"],
        ["key", "list", "-r", reg], ["key", "generate", "second", "--json"],
        ["key", "trust", str(home / "keys" / "second.pub"), "-r", reg],
        ["key", "untrust", "--json", "-r", reg, "x"],  # an error (no such key) must be fast too
        ["key", "forget-index", "-r", reg], ["registry", "init", str(scenario["project"] / "another-registry")],
        ["list", "--env", "/nonexistent"],
    ]
    results = probe(commands, scenario["env"], scenario["project"])
    assert [r["argv"] for r in results] == commands
    failed = [r for r in results if r["code"] != 0 and r["argv"][:2] not in (["key", "untrust"], ["list", "--env"])]
    assert not failed, failed
    heavy = {" ".join(r["argv"]): r["heavy"] for r in results if r["heavy"]}
    assert heavy == {}, f"these commands imported {HEAVY}: {heavy}"


def test_help_of_every_command_imports_no_heavy_module(scenario):
    paths = all_command_paths()
    assert ("base", "show") in paths and ("key", "trust") in paths and ("run",) in paths
    results = probe([[*p, "--help"] for p in paths], scenario["env"], scenario["project"])
    assert [r for r in results if r["code"] != 0 or r["heavy"]] == []


@pytest.mark.parametrize("path", sorted((ROOT / "registry_schema").glob("*.schema.json")), ids=lambda p: p.name)
def test_every_shipped_schema_is_valid_against_its_metaschema(path):
    # checked here rather than on each run (schemas._validator), which kept every command slower
    import jsonschema

    schema = json.loads(path.read_text())
    jsonschema.validators.validator_for(schema).check_schema(schema)
