"""Issue #16: every field is checked against what it describes; the environment repairs what breaks."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from clihelp import refused, run
import torch
from safetensors.torch import save_file

from llmpatch import signing
from llmpatch.artifact import read_patch, sha256_file
from llmpatch.env import Environment
from llmpatch.errors import BaseMismatchError, IntegrityError, LlmpatchError, ManifestError, UnsafeFormatError
from llmpatch.registry import open_registry


def cli_run(*args, ok: bool | None = True):
    """Run the CLI; ``ok=False`` asserts a clean refusal (non-zero exit, no traceback)."""
    return refused(*args) if ok is False else run(*args, ok=bool(ok))


def rewrite_manifest(patch_dir: Path, **changes) -> None:
    m = json.loads((patch_dir / "llmpatch.json").read_text())
    for key, value in changes.items():
        target = m
        *path, last = key.split("__")
        for p in path:
            target = target[p]
        target[last] = value
    (patch_dir / "llmpatch.json").write_text(json.dumps(m))


def refresh_digest(patch_dir: Path, rel: str) -> None:
    m = json.loads((patch_dir / "llmpatch.json").read_text())
    f = patch_dir / rel
    m["files"][rel] = {"sha256": sha256_file(f), "size": f.stat().st_size}
    (patch_dir / "llmpatch.json").write_text(json.dumps(m))


@pytest.fixture
def project(tmp_path, monkeypatch):
    d = tmp_path / "project"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


@pytest.fixture
def registry(tmp_path, monkeypatch, make_patch):
    url = str(tmp_path / "registry")
    monkeypatch.setenv("LLMPATCH_REGISTRY", url)
    reg = open_registry(url)
    for v in ("1.0.0", "1.1.0", "1.2.0", "3.0.0"):
        reg.publish(make_patch("tox-fix", v).path)
    return reg


# -- item 3: shapes, token_dim and dtype ------------------------------------------------------

def test_a_patch_whose_manifest_claims_another_hidden_size_than_its_base_is_refused_at_install(
        project, tiny_model_dir, make_patch, registry):
    patch = make_patch("wide-fix", "1.0.0")
    cfg = json.loads((patch.path / "adapter_config.json").read_text())
    cfg["token_dim"] = 32
    (patch.path / "adapter_config.json").write_text(json.dumps(cfg))
    save_file({"prompt_embeddings": torch.zeros(5, 32)}, str(patch.path / "adapter_model.safetensors"))
    rewrite_manifest(patch.path, base__hidden_size=32)
    refresh_digest(patch.path, "adapter_model.safetensors")
    refresh_digest(patch.path, "adapter_config.json")
    registry.publish(patch.path)  # consistent in itself: 5x32 under hidden_size 32
    cli_run("init", "--base", tiny_model_dir)
    res = cli_run("install", "wide-fix", ok=False)
    assert "hidden size 32 vs 64" in res.output


@pytest.mark.parametrize("dtype", [torch.float64, torch.int32, torch.bool, torch.float16])
def test_a_tensor_of_another_dtype_than_the_manifest_says_is_refused(make_patch, dtype):
    patch = make_patch()
    save_file({"prompt_embeddings": torch.zeros(5, 64, dtype=dtype)}, str(patch.path / "adapter_model.safetensors"))
    refresh_digest(patch.path, "adapter_model.safetensors")
    with pytest.raises(IntegrityError, match="the manifest says 'float32'"):
        read_patch(patch.path)


def test_an_adapter_config_without_token_dim_is_refused(make_patch):
    patch = make_patch()
    cfg = json.loads((patch.path / "adapter_config.json").read_text())
    del cfg["token_dim"]
    (patch.path / "adapter_config.json").write_text(json.dumps(cfg))
    refresh_digest(patch.path, "adapter_config.json")
    with pytest.raises(IntegrityError, match="token_dim"):
        read_patch(patch.path)


# -- item 4: anchored patterns, no orphan directories ------------------------------------------

@pytest.mark.parametrize("field,value", [("name", "evil\n"), ("version", "9.9.9\n")])
def test_a_name_or_version_ending_in_a_newline_is_refused_and_publish_leaves_nothing(make_patch, tmp_path, field, value):
    patch = make_patch()
    rewrite_manifest(patch.path, **{field: value})
    assert "does not match" in cli_run("inspect", patch.path, ok=False).output
    reg = tmp_path / "reg"
    cli_run("publish", patch.path, "--registry", reg, ok=False)
    assert not (reg / "patches").exists() or not any((reg / "patches").iterdir())


# -- item 5: symlinks ----------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["payload-outside", "dir-to-etc", "self-loop"])
def test_symlinks_inside_a_patch_are_refused(make_patch, tmp_path, how):
    patch = make_patch()
    if how == "payload-outside":
        outside = tmp_path / "outside.safetensors"
        shutil.move(patch.path / "adapter_model.safetensors", outside)
        (patch.path / "adapter_model.safetensors").symlink_to(outside)
    elif how == "dir-to-etc":
        (patch.path / "extra").symlink_to("/etc")
    else:
        (patch.path / "loop").symlink_to(patch.path / "loop")
    with pytest.raises(IntegrityError, match="symbolic link"):
        read_patch(patch.path)
    assert "symbolic link" in cli_run("publish", patch.path, "--registry", tmp_path / "reg", ok=False).output


# -- item 6: lock labels -----------------------------------------------------------------------

def test_a_lock_entry_relabelled_with_another_versions_digests_is_refused(project, tiny_model_dir, registry):
    cli_run("init", "--base", tiny_model_dir)
    cli_run("install", "tox-fix@1.2.0")
    cli_run("rollback")
    cli_run("install", "tox-fix@1.0.0")
    lock = json.loads((project / "llmpatch.lock").read_text())
    env = Environment(project / ".llmpatch")
    other = next(p for g in env.generations() for p in g.patches if p.version == "1.2.0")
    entry = lock["patches"][0]
    entry["manifest_sha256"], entry["payload_sha256"] = other.manifest_sha256, other.payload_sha256
    from llmpatch.compose import stack_id
    lock["stack_id"] = stack_id([(e["name"], e["version"], e["payload_sha256"]) for e in lock["patches"]])
    cli_run("rollback", "--to", "1")
    (project / "llmpatch.lock").write_text(json.dumps(lock))
    res = cli_run("install", "--locked", ok=False)
    assert "llmpatch.lock says tox-fix@1.0.0" in " ".join(res.output.split())


# -- item 7: other silent acceptances --------------------------------------------------------

@pytest.mark.parametrize("changes,message", [
    ({"created": "yesterday"}, "date-time"),
    ({"summary": "safe\u202eexe.txt"}, r"U\+202E"),
    ({"summary": "zero\u200bwidth"}, r"U\+200B"),
    ({"requires": {"tox-fix": "^1"}}, "lists itself"),
])
def test_manifest_fields_that_were_silently_accepted_are_refused(make_patch, changes, message):
    patch = make_patch()
    rewrite_manifest(patch.path, **changes)
    with pytest.raises(ManifestError, match=message):
        read_patch(patch.path)


@pytest.mark.parametrize("text,message", [
    ('{"evals": [{"suite": "t", "metric": "m", "value": NaN}]}', "NaN"),
    ('{"name": "tox-fix", "name": "harm-fix"}', "duplicate key"),
])
def test_nan_and_duplicate_keys_are_refused(make_patch, text, message):
    patch = make_patch()
    raw = (patch.path / "llmpatch.json").read_text()
    extra = text.strip("{}")
    (patch.path / "llmpatch.json").write_text(raw.rstrip().rstrip("}") + ", " + extra + "}")
    with pytest.raises(ManifestError, match=message):
        read_patch(patch.path)


def test_pickle_bytes_under_an_innocent_name_are_refused(make_patch):
    import pickle

    patch = make_patch()
    (patch.path / "extra.npy").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(UnsafeFormatError, match="extra.npy"):
        read_patch(patch.path)


def test_an_exact_pin_of_a_yanked_version_prints_the_yank_reason(project, tiny_model_dir, registry):
    registry.yank("tox-fix", "1.1.0", reason="regressed on XSTest")
    cli_run("init", "--base", tiny_model_dir)
    res = cli_run("install", "tox-fix@1.1.0")
    assert "yanked: regressed on XSTest" in res.output


def test_a_private_key_readable_by_others_gives_a_warning(caplog):
    signing.generate_key("acme")
    priv, _ = signing.key_paths("acme")
    os.chmod(priv, 0o644)
    with caplog.at_level("WARNING"):
        signing.load_key("acme")
    assert "readable by other users" in caplog.text


@pytest.mark.parametrize("content", ["\u0663\n".encode(), b"\xff\xfe", b"-1", b""])
def test_a_current_pointer_that_is_not_ascii_digits_is_an_error(project, tiny_model_dir, content):
    cli_run("init", "--base", tiny_model_dir)
    (project / ".llmpatch" / "current").write_bytes(content)
    assert "garbled" in cli_run("list", ok=False).output


def test_conflicting_specs_for_one_name_are_an_error(project, tiny_model_dir, registry):
    cli_run("init", "--base", tiny_model_dir)
    res = cli_run("install", "tox-fix@1", "tox-fix@3", ok=False)
    assert "requested twice" in res.output
    assert Environment(project / ".llmpatch").current_number() == 1


# -- item 9: repair --------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["delete", "flip"])
def test_a_damaged_store_is_reported_checked_and_repaired_by_sync(project, tiny_model_dir, registry, damage):
    cli_run("init", "--base", tiny_model_dir)
    cli_run("install", "tox-fix@1.2.0")
    env = Environment(project / ".llmpatch")
    (p,) = env.current().patches
    payload = env.store.path(p.manifest_sha256) / "adapter_model.safetensors"
    if damage == "delete":
        payload.unlink()
    else:
        data = bytearray(payload.read_bytes())
        data[-1] ^= 1
        payload.write_bytes(bytes(data))
    assert "damaged store" in cli_run("list").output
    assert "missing or damaged" in cli_run("check", ok=False).output
    cli_run("sync")
    assert env.damaged() == {}
    cli_run("check")
    assert env.current_number() == 2


# -- item 10: generations once current are kept ----------------------------------------------

def test_moving_current_back_by_hand_never_deletes_later_generations(project, tiny_model_dir, registry):
    cli_run("init", "--base", tiny_model_dir)
    cli_run("install", "tox-fix@1.0.0")
    cli_run("upgrade", "tox-fix@1.2.0")
    (project / ".llmpatch" / "current").write_text("1\n")
    out = cli_run("install", "tox-fix@1.1.0").output
    assert "dropped" not in out
    env = Environment(project / ".llmpatch")
    assert env.numbers() == [1, 2, 3, 4] and env.current_number() == 4
    cli_run("gc")
    assert env.numbers() == [1, 2, 3, 4]
