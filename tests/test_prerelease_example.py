"""examples/prerelease.py: a pre-release that re-packages a version's weights unchanged, and says so."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from clihelp import run, run_json
from llmpatch.artifact import read_patch
from llmpatch.errors import InvalidSpecError
from llmpatch.util import sha256_file

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "prerelease.py"


@pytest.fixture(scope="module")
def prerelease():
    spec = importlib.util.spec_from_file_location("llmpatch_example_prerelease", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_prerelease_holds_the_same_weights_and_its_manifest_says_what_it_is(prerelease, make_patch, tmp_path):
    src = make_patch("bias-fix", "2.0.0", domains=["gender_bias"], build={"tool": "llmpatch test"},
                     evals=[{"suite": "gender", "metric": "gas", "value": 0.1, "base_value": 0.4, "direction": "lower"}])
    rc = prerelease.make_prerelease(src.path, "2.1.0-rc.1", tmp_path / "rc")
    again = read_patch(rc.path)  # a verified patch directory
    m, s = again.manifest, src.manifest
    assert (m.name, m.version) == ("bias-fix", "2.1.0-rc.1")
    assert torch.equal(again.embeddings, src.embeddings) and again.payload_sha256 == src.payload_sha256
    assert (m.base, m.domains, m.evals, m.init) == (s.base, s.domains, s.evals, s.init)
    assert m.summary.startswith("Pre-release 2.1.0-rc.1: the weights of bias-fix 2.0.0, re-packaged unchanged")
    assert "no training" in m.description
    assert m.build["tool"] == "llmpatch test"
    assert m.build["repackaged_from"] == {
        "name": "bias-fix", "version": "2.0.0", "manifest_sha256": "sha256:" + sha256_file(src.path / "llmpatch.json"),
        "weights_sha256": "sha256:" + s.files["adapter_model.safetensors"].sha256}


def test_it_is_signed_and_published_like_any_version_and_installed_only_with_pre(prerelease, make_patch, project,
                                                                                tiny_model_dir, tmp_path, llmpatch_home):
    reg = tmp_path / "registry"
    run("key", "generate")
    run("registry", "init", reg, "--require-signatures")
    src = make_patch("bias-fix", "2.0.0", domains=["gender_bias"])
    rc = prerelease.make_prerelease(src.path, "2.1.0-rc.1", tmp_path / "rc")
    for p in (src, rc):
        assert "signed by key" in " ".join(run("publish", p.path, "--registry", reg).stdout.split())
    run("key", "trust", llmpatch_home / "keys" / "default.pub", "--registry", reg)
    run("init", "--base", tiny_model_dir, "--registry", reg)
    assert run_json("install", "bias-fix", "--dry-run")["plan"]["after"] == ["bias-fix@2.0.0"]
    assert run_json("install", "bias-fix", "--pre")["plan"]["after"] == ["bias-fix@2.1.0-rc.1"]


@pytest.mark.parametrize("version, message", [
    ("2.1.0", "'2.1.0' is not a pre-release version"),
    ("2.0.0-rc.1", "pre-release 2.0.0-rc.1 does not sort after bias-fix 2.0.0"),
    ("two", "invalid version 'two': expected a semantic version"),
])
def test_a_version_that_is_not_a_later_prerelease_is_refused_and_nothing_is_written(prerelease, make_patch, tmp_path,
                                                                                      version, message):
    src = make_patch("bias-fix", "2.0.0", domains=["gender_bias"])
    with pytest.raises(InvalidSpecError, match=message) as ei:
        prerelease.make_prerelease(src.path, version, tmp_path / "rc")
    assert ei.value.hint or "expected" in ei.value.message  # what to do next
    assert not (tmp_path / "rc").exists()


def test_the_script_prints_the_error_and_hint_and_exits_2(prerelease, make_patch, tmp_path, capsys):
    src = make_patch("bias-fix", "2.0.0", domains=["gender_bias"])
    assert prerelease.main([str(src.path), "2.1.0", "-o", str(tmp_path / "rc")]) == 2
    err = capsys.readouterr().err
    assert "error: '2.1.0' is not a pre-release version" in err and "hint: give a version with a pre-release part" in err
    assert prerelease.main([str(src.path), "2.1.0-rc.1", "-o", str(tmp_path / "rc")]) == 0
    assert "wrote bias-fix@2.1.0-rc.1" in capsys.readouterr().out
