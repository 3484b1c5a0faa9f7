"""Install, compose order, upgrade, remove, rollback, gc and locked installs against a real local registry."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from llmpatch.env import Environment, LockFile, current_stack
from clihelp import run, run_json


def stack_of(project):
    return [p["name"] + "@" + p["version"] for p in run_json("list")["generation"]["patches"]]


def test_install_partial_spec_picks_the_newest_patch_release(project, tiny_model_dir, scenario_registry):
    run("init", "--base", tiny_model_dir)
    out = run_json("install", "tox-fix@1.2")
    assert out["plan"]["changes"] == [{"op": "add", "name": "tox-fix", "version": "1.2.1", "position": 1}]
    gen = out["generation"]
    assert gen["number"] == 2 and gen["action"] == "install"
    env = Environment(project / ".llmpatch")
    (entry,) = env.current().patches
    assert env.store.path(entry.manifest_sha256).name == entry.manifest_sha256
    assert entry.requested == "tox-fix@1.2" and entry.registry == scenario_registry.url
    assert env.check() == []
    lock = LockFile.read(project / "llmpatch.lock")
    assert [(p.name, p.version) for p in lock.patches] == [("tox-fix", "1.2.1")]
    assert lock.base.ref.fingerprint == env.base_ref.fingerprint


def test_dry_run_shows_the_plan_and_changes_nothing(project, tiny_model_dir, scenario_registry):
    run("init", "--base", tiny_model_dir)
    out = run_json("install", "tox-fix@~1.1.0", "bias-fix", "--dry-run")
    assert out["dry_run"] is True and out["generation"] is None
    assert out["plan"]["after"] == ["tox-fix@1.1.0", "bias-fix@2.0.0"]
    assert Environment(project / ".llmpatch").current_number() == 1
    human = run("install", "tox-fix", "--dry-run").stdout
    assert "dry run" in human and "tox-fix" in human


def test_a_prerelease_is_installed_only_with_pre_and_the_history_records_the_flag(project, tiny_model_dir, scenario_registry):
    scenario_registry.publish_patch("bias-fix", "2.1.0-rc.1", domains=["gender_bias"])
    run("init", "--base", tiny_model_dir)
    assert run_json("install", "bias-fix@^2", "--dry-run")["plan"]["after"] == ["bias-fix@2.0.0"]
    assert run_json("install", "bias-fix@^2")["generation"]["patches"][0]["version"] == "2.0.0"
    assert run_json("upgrade", "bias-fix")["plan"]["unchanged"] is True
    gen = run_json("upgrade", "bias-fix", "--pre")["generation"]
    assert [p["version"] for p in gen["patches"]] == ["2.1.0-rc.1"]
    assert gen["command"] == "llmpatch upgrade bias-fix --pre"
    run("rollback", "--to", "1")
    assert run_json("install", "bias-fix@^2", "--pre")["generation"]["command"] == "llmpatch install bias-fix@^2 --pre"
    assert stack_of(project) == ["bias-fix@2.1.0-rc.1"]


def test_a_patch_built_for_another_base_is_refused_naming_its_base(project, tiny_model_dir, other_tiny_model_dir, registry):
    registry.publish_patch("tox-fix", "1.0.0", base_dir=other_tiny_model_dir)
    run("init", "--base", tiny_model_dir)
    res = run("install", "tox-fix", ok=False)
    assert res.exit_code == 1
    assert "1.0.0: built for base" in res.output and "not this environment's" in res.output
    assert Environment(project / ".llmpatch").current_number() == 1


def test_order_is_explicit_and_the_composed_prefix_follows_it(project, tiny_model_dir, scenario_registry):
    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix@1.2")
    run("install", "bias-fix", "--position", "1")
    assert stack_of(project) == ["bias-fix@2.0.0", "tox-fix@1.2.1"]
    run("order", "tox-fix")
    assert stack_of(project) == ["tox-fix@1.2.1", "bias-fix@2.0.0"]
    env = Environment(project / ".llmpatch")
    stack = env.load_stack()
    parts = [p.embeddings for p in stack.patches]
    assert torch.equal(stack.prefix(), torch.cat(parts))
    assert [p.name for p in stack.patches] == ["tox-fix", "bias-fix"]
    assert [p.name for p in LockFile.read(project / "llmpatch.lock").patches] == ["tox-fix", "bias-fix"]
    spec, dirs = current_stack()
    assert dirs == [env.store.path(p.manifest_sha256) for p in env.current().patches]


def test_install_keeps_installed_versions_and_upgrade_moves_within_the_spec(project, tiny_model_dir, registry):
    registry.publish_patch("tox-fix", "1.1.0")
    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix@1")
    registry.publish_patch("tox-fix", "1.3.0")
    registry.publish_patch("tox-fix", "2.0.0")
    registry.publish_patch("bias-fix", "2.0.0")
    run("install", "bias-fix")
    assert stack_of(project) == ["tox-fix@1.1.0", "bias-fix@2.0.0"]
    out = run_json("upgrade")
    assert {"op": "change", "name": "tox-fix", "from": "1.1.0", "to": "1.3.0", "position": 1} in out["plan"]["changes"]
    run("upgrade", "tox-fix@^2")
    assert stack_of(project) == ["tox-fix@2.0.0", "bias-fix@2.0.0"]
    assert run_json("upgrade")["generation"] is None  # nothing newer: no new generation


def test_remove_refuses_to_break_a_requirement_and_names_it(project, tiny_model_dir, registry):
    registry.publish_patch("tox-fix", "1.0.0")
    registry.publish_patch("bias-fix", "2.0.0", requires={"tox-fix": "^1.0"})
    run("init", "--base", tiny_model_dir)
    run("install", "bias-fix")
    assert stack_of(project) == ["bias-fix@2.0.0", "tox-fix@1.0.0"]
    res = run("remove", "tox-fix", ok=False)
    assert "bias-fix 2.0.0 requires tox-fix ^1.0" in res.output
    run("remove", "bias-fix", "tox-fix")
    assert stack_of(project) == []
    assert "not installed" in run("remove", "nope", ok=False).output


def test_rollback_walks_back_through_generations_offline(project, tiny_model_dir, scenario_registry, tmp_path):
    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix@1.2")
    run("install", "bias-fix")
    shutil.rmtree(tmp_path / "registry")  # rollback must not need the registry
    out = run_json("rollback")
    assert out["generation"]["restores"] == 2 and out["generation"]["number"] == 4
    assert stack_of(project) == ["tox-fix@1.2.1"]
    run("rollback")
    assert stack_of(project) == []
    run("rollback", "--to", "3")
    assert stack_of(project) == ["tox-fix@1.2.1", "bias-fix@2.0.0"]
    run("rollback", "--to", "1")
    assert stack_of(project) == []
    hist = run_json("history")
    assert [g["action"] for g in hist["generations"]] == ["init", "install", "install", "rollback", "rollback", "rollback", "rollback"]
    assert "generation 99 does not exist" in run("rollback", "--to", "99", ok=False).output


def test_gc_keeps_what_kept_generations_need(project, tiny_model_dir, scenario_registry):
    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix@1.1")
    run("upgrade", "tox-fix@1.2")
    env = Environment(project / ".llmpatch")
    assert len(env.store.entries()) == 2
    assert run_json("gc") == {"generations": [], "payloads": [], "dry_run": False}  # generation 2 still needs 1.1.0
    planned = run_json("gc", "--keep-last", "1", "--dry-run")
    assert planned["dry_run"] and planned["generations"] == ["1", "2"] and len(planned["payloads"]) == 1
    assert len(env.store.entries()) == 2 and len(env.generations()) == 3  # a dry run deletes nothing
    out = run_json("gc", "--keep-last", "1")
    assert out["generations"] == ["1", "2"] and len(out["payloads"]) == 1
    assert len(env.store.entries()) == 1 and env.check() == []


def test_install_locked_reproduces_the_stack_byte_for_byte_elsewhere(project, tiny_model_dir, scenario_registry, tmp_path,
                                                                      monkeypatch):
    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix@1.2", "bias-fix")
    run("order", "bias-fix")
    lock_text = (project / "llmpatch.lock").read_text()
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(project / "llmpatch.lock", other / "llmpatch.lock")
    monkeypatch.chdir(other)
    out = run_json("install", "--locked")
    assert out["plan"]["after"] == ["bias-fix@2.0.0", "tox-fix@1.2.1"]
    a = Environment(project / ".llmpatch").load_stack().prefix()
    b = Environment(other / ".llmpatch").load_stack().prefix()
    assert a.numpy().tobytes() == b.numpy().tobytes()
    assert (other / "llmpatch.lock").read_text() == lock_text
    assert run_json("sync")["generation"] is None  # already in sync


def test_install_locked_fails_on_another_base_or_a_digest_mismatch(project, tiny_model_dir, other_tiny_model_dir,
                                                                  scenario_registry, tmp_path, monkeypatch):
    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix@1.2")
    data = json.loads((project / "llmpatch.lock").read_text())
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    run("init", "--base", other_tiny_model_dir)
    res = run("install", "--locked", "--lockfile", project / "llmpatch.lock", ok=False)
    assert "the lock file is for base" in res.output and "init --base" in res.output
    run("init", "--base", tiny_model_dir, "--force")
    data["patches"][0]["manifest_sha256"] = "0" * 64  # stack_id covers payloads, so this stays well-formed
    (other / "llmpatch.lock").write_text(json.dumps(data))
    res = run("install", "--locked", ok=False)
    assert "the lock file says " + "0" * 64 in res.output
    assert Environment(other / ".llmpatch").current_number() == 1


def test_a_tampered_store_entry_is_detected_before_use(project, tiny_model_dir, scenario_registry):
    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix")
    env = Environment(project / ".llmpatch")
    weights = env.patch_dirs()[0] / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    problems = env.check()
    assert problems and "sha256 of adapter_model.safetensors" in problems[0]


def test_load_env_gives_the_patched_model_of_the_current_generation(project, tiny_model_dir, scenario_registry):
    import llmpatch

    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix", "bias-fix")
    model = llmpatch.load(env=project)
    assert model.stack.describe() == "tox-fix@1.2.1 -> bias-fix@2.0.0"
    assert model.stack.id == Environment(project / ".llmpatch").current().stack_id


@pytest.mark.parametrize("limit, passes", [({"max": 1.0}, True), ({"min": 2.0}, False)])
def test_install_verify_keeps_a_passing_stack_and_rolls_back_a_failing_one(project, tiny_model_dir, scenario_registry,
                                                                           limit, passes, request):
    # A hidden-64 model gains nothing from two threads, and OpenMP spinning on a busy 2-core CI
    # box can make each forward pass 100x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    policy = project / "policy.json"
    policy.write_text(json.dumps({"schema_version": 1, "suites": ["over_refusal"], "claims": {"check": False},
                                  "thresholds": [{"metric": "over_refusal.refusal_rate", **limit}]}))
    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix@1.1")
    res = run("install", "tox-fix@1.2", "--verify", "--policy", policy, "--verify-limit", "4", ok=passes)
    hist = run_json("history")["generations"]
    if passes:
        assert stack_of(project) == ["tox-fix@1.2.1"] and hist[-1]["action"] == "install"
    else:
        assert res.exit_code == 3
        assert "failed verification" in res.output and "rolled back" in res.output
        assert stack_of(project) == ["tox-fix@1.1.0"]
        assert [g["action"] for g in hist[-2:]] == ["install", "verify-rollback"]
