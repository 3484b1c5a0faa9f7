"""Shared fixtures for the environment tests: a project directory, a real local registry, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmpatch.cli import cli


def run(*args, ok: bool = True):
    """Invoke the CLI in-process; assert success unless ``ok=False``."""
    res = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert res.exit_code == 0, res.output
    return res


def run_json(*args):
    return json.loads(run(*args, "--json").stdout)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty project directory, made the working directory."""
    d = tmp_path / "project"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


@pytest.fixture
def registry(tmp_path, monkeypatch, make_patch):
    """A real local registry (issue #5's) at $LLMPATCH_REGISTRY, with a ``publish(name, version, **fields)`` helper."""
    open_registry = pytest.importorskip("llmpatch.registry").open_registry
    url = str(tmp_path / "registry")
    monkeypatch.setenv("LLMPATCH_REGISTRY", url)
    reg = open_registry(url)

    def publish(name: str, version: str, **fields):
        patch = make_patch(name, version, **fields)
        reg.publish(patch.path)
        return patch

    reg.publish_patch = publish  # type: ignore[attr-defined]
    reg.url = url  # type: ignore[attr-defined]
    return reg


@pytest.fixture
def scenario_registry(registry):
    """tox-fix 1.0.0, 1.1.0, 1.2.0, 1.2.1 and bias-fix 2.0.0, all for the tiny base."""
    for v in ("1.0.0", "1.1.0", "1.2.0", "1.2.1"):
        registry.publish_patch("tox-fix", v)
    registry.publish_patch("bias-fix", "2.0.0", domains=["gender_bias"])
    return registry
