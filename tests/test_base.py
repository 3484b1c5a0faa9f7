"""Base specs, resolving and fingerprints."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from llmpatch import base
from llmpatch.cli import cli
from llmpatch.errors import BaseModelError, InvalidSpecError, UnsafeFormatError


@pytest.mark.parametrize(
    "text, kind, target, revision",
    [
        ("default", "embedded", base.EMBEDDED_ID, None),
        ("SmolLM2", "embedded", base.EMBEDDED_ID, None),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", "hub", "HuggingFaceTB/SmolLM2-135M-Instruct", None),
        ("HuggingFaceTB/SmolLM2-135M-Instruct@main", "hub", "HuggingFaceTB/SmolLM2-135M-Instruct", "main"),
        ("gpt2@" + "a" * 40, "hub", "gpt2", "a" * 40),
    ],
)
def test_base_specs_parse(text, kind, target, revision):
    s = base.BaseSpec.parse(text)
    assert (s.kind, s.target, s.revision) == (kind, target, revision)


@pytest.mark.parametrize("text, message", [
    ("", "empty base spec"),
    ("org/name@", "invalid base spec"),
    ("org/na me", "invalid base spec"),
    ("./no/such/dir", "does not exist"),
    ("/tmp/nope.gguf", "does not exist"),
])
def test_bad_base_specs_say_what_is_expected(text, message):
    with pytest.raises(InvalidSpecError, match=message) as ei:
        base.BaseSpec.parse(text)
    assert "ORG/NAME" in str(ei.value) or "directory" in str(ei.value)


def test_a_directory_spec_resolves_to_that_directory(tiny_model_dir):
    s = base.BaseSpec.parse(str(tiny_model_dir))
    assert s.kind == "dir"
    path, model_id, rev = base.resolve(s)
    assert path == tiny_model_dir and model_id == tiny_model_dir.name and rev is None


def test_fingerprint_is_stable_and_separates_bases(tiny_model_dir, other_tiny_model_dir, wide_tiny_model_dir):
    a1 = base.identify(str(tiny_model_dir))
    a2 = base.identify(str(tiny_model_dir))
    b = base.identify(str(other_tiny_model_dir))
    w = base.identify(str(wide_tiny_model_dir))
    assert a1.fingerprint == a2.fingerprint and a1.fingerprint.startswith("sha256:")
    assert len({a1.fingerprint, b.fingerprint, w.fingerprint}) == 3
    # same architecture and tokenizer, other weights: only the weights component differs
    assert a1.components["config"] == b.components["config"]
    assert a1.components["tokenizer"] == b.components["tokenizer"]
    assert a1.components["weights"] != b.components["weights"]
    assert (a1.hidden_size, w.hidden_size) == (64, 96)


def test_fingerprint_does_not_depend_on_the_directory_or_cache(tiny_model_dir, tmp_path, monkeypatch):
    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    monkeypatch.setenv("LLMPATCH_HOME", str(tmp_path / "fresh-home"))
    assert base.identify(str(copy)).fingerprint == base.identify(str(tiny_model_dir)).fingerprint


def test_changing_one_weight_changes_the_fingerprint(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    copy = shutil.copytree(tiny_model_dir, tmp_path / "edited")
    f = copy / "model.safetensors"
    tensors = load_file(str(f))
    name = sorted(k for k in tensors if "layers.1" in k)[0]
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1e-3
    save_file(tensors, str(f), metadata={"format": "pt"})
    a, b = base.identify(str(tiny_model_dir)), base.identify(str(copy))
    assert a.fingerprint != b.fingerprint and base.fp.diff_components(a.components, b.components) == ["weights"]


def test_a_base_with_only_pickle_weights_is_refused(tiny_model_dir, tmp_path):
    copy = shutil.copytree(tiny_model_dir, tmp_path / "pickled")
    (copy / "model.safetensors").rename(copy / "pytorch_model.bin")
    with pytest.raises(UnsafeFormatError, match="pytorch_model.bin"):
        base.identify(str(copy))


def test_a_directory_without_config_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BaseModelError, match="no config.json"):
        base.identify(str(tmp_path / "empty"))


def test_unreachable_hub_model_says_so_and_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(BaseModelError) as ei:
        base.identify("some-org/some-model@main")
    assert "some-org/some-model" in str(ei.value)


def test_base_show_prints_identity_as_json(tiny_model_dir):
    r = CliRunner().invoke(cli, ["base", "show", str(tiny_model_dir), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["hidden_size"] == 64 and d["vocab_size"] > 0 and d["fingerprint"].startswith("sha256:")
    assert set(d["components"]) == {"config", "tokenizer", "weights"}


def test_base_show_of_a_bad_spec_exits_2_with_a_message():
    r = CliRunner().invoke(cli, ["base", "show", "./missing-model"])
    assert r.exit_code == 2 and "does not exist" in r.output
