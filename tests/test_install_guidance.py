"""Installer guidance: was the requested stack (names, versions, payloads, order) evaluated together?

The evidence is the ``stacks`` a composition-aware build records in its manifest. A stack no vendor
evaluated together is reported with what was tested instead and a ``--verify`` suggestion; with a
policy configured for the environment (``llmpatch policy set``), it is verified unasked.
"""

from __future__ import annotations

import json

import pytest
import torch

from clihelp import refused, run, run_json
from llmpatch.env import Environment


def stack_of():
    return [p["name"] + "@" + p["version"] for p in run_json("list")["generation"]["patches"]]


def evidence(co, name: str, version: str, *, after: bool = True, payload: str | None = None) -> list[dict]:
    """A manifest ``stacks`` entry: ``name version`` evaluated with ``co`` before it (``after``) or behind it."""
    members = [{"name": co.name, "version": co.version, "payload_sha256": payload or co.payload_sha256},
               {"name": name, "version": version, "self": True}]
    claims = [{"suite": "harmfulness", "metric": "refusal_rate", "value": 0.9, "base_value": 0.1, "direction": "higher"}]
    return [{"order": members if after else members[::-1], "trained": True, "evals": claims}]


@pytest.fixture
def stacked(registry):
    """tox-fix 1.1.0, bias-fix 2.0.0 (no evidence) and harm-fix 1.3.0, evaluated with tox-fix 1.1.0 before it."""
    tox = registry.publish_patch("tox-fix", "1.1.0")
    registry.publish_patch("bias-fix", "2.0.0", domains=["gender_bias"])
    registry.publish_patch("harm-fix", "1.3.0", domains=["harmfulness"], stacks=evidence(tox, "harm-fix", "1.3.0"))
    return registry


@pytest.fixture
def one_thread(request):
    # A hidden-64 model gains nothing from two threads, and OpenMP spinning on a busy 2-core box can
    # make each forward pass 100x slower (see test_env_install).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    request.addfinalizer(lambda: torch.set_num_threads(threads))


def failing_policy(project):
    """A policy no stack can pass (over-refusal rate of at least 2)."""
    p = project / "policy.json"
    p.write_text(json.dumps({"schema_version": 1, "suites": ["over_refusal"], "claims": {"check": False},
                             "thresholds": [{"metric": "over_refusal.refusal_rate", "min": 2.0}]}))
    return p


def test_install_of_a_stack_no_vendor_evaluated_says_so_and_suggests_verify(project, tiny_model_dir, stacked):
    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix")
    res = run("install", "bias-fix")
    assert "no vendor evaluated this stack (tox-fix@1.1.0 -> bias-fix@2.0.0) together" in res.output
    assert "--verify" in res.output
    assert stack_of() == ["tox-fix@1.1.0", "bias-fix@2.0.0"]  # no policy: installed, not verified
    out = run_json("order", "bias-fix")
    assert out["stack_evidence"]["evaluated"] is False and "verified" not in out


def test_a_stack_in_the_order_the_vendor_evaluated_is_reported_as_tested(project, tiny_model_dir, stacked):
    run("init", "--base", tiny_model_dir)
    out = run_json("install", "tox-fix")
    assert "stack_evidence" not in out  # a patch built alone: nothing to say
    run("remove", "tox-fix")
    res = run("install", "harm-fix")  # alone: the stack it was built for is worth knowing
    assert "harm-fix 1.3.0 was tested with tox-fix 1.1.0 before it (tox-fix@1.1.0 -> harm-fix@1.3.0)" in res.output
    assert "no vendor" not in res.output and "--verify" not in res.output
    run("remove", "harm-fix")
    run("install", "tox-fix")
    res = run("install", "harm-fix")
    assert "was evaluated together at build time: harm-fix 1.3.0 was tested with tox-fix 1.1.0 before it" in res.output
    assert "--verify" not in res.output
    out = run_json("order", "tox-fix")  # the same order: nothing changes, nothing is claimed
    assert out["generation"] is None


def test_the_other_order_is_untested_and_the_message_names_the_tested_one(project, tiny_model_dir, stacked):
    run("init", "--base", tiny_model_dir)
    run("install", "harm-fix")
    out = run_json("install", "tox-fix", "--position", "2")
    ev = out["stack_evidence"]
    assert ev["stack"] == ["harm-fix@1.3.0", "tox-fix@1.1.0"] and ev["evaluated"] is False
    assert [t["stack"] for t in ev["tested"]] == ["tox-fix@1.1.0 -> harm-fix@1.3.0"]
    res = run("order", "tox-fix")
    assert "tested with tox-fix 1.1.0 before it" in res.output and "no vendor" not in res.output
    assert stack_of() == ["tox-fix@1.1.0", "harm-fix@1.3.0"]


def test_evidence_for_another_build_of_the_co_patch_does_not_count(project, tiny_model_dir, registry):
    tox = registry.publish_patch("tox-fix", "1.1.0")
    registry.publish_patch("harm-fix", "1.3.0", domains=["harmfulness"],
                           stacks=evidence(tox, "harm-fix", "1.3.0", payload="0" * 64))
    run("init", "--base", tiny_model_dir)
    out = run_json("install", "tox-fix", "harm-fix")
    assert out["plan"]["after"] == ["tox-fix@1.1.0", "harm-fix@1.3.0"]
    assert out["stack_evidence"]["evaluated"] is False and out["stack_evidence"]["tested"] == []


def test_a_dry_run_reports_evidence_when_the_patches_are_stored(project, tiny_model_dir, stacked):
    run("init", "--base", tiny_model_dir)
    run("install", "harm-fix", "tox-fix")
    out = run_json("install", "tox-fix", "--dry-run")  # unchanged plan, every manifest in the store
    assert out["stack_evidence"]["evaluated"] is False
    assert run_json("install", "bias-fix", "--dry-run").get("stack_evidence") is None  # not downloaded yet


def test_with_an_environment_policy_an_untested_stack_is_verified_unasked_and_rolled_back(
        project, tiny_model_dir, stacked, one_thread):
    policy = failing_policy(project)
    run("init", "--base", tiny_model_dir, "--policy", policy)
    assert json.loads((project / ".llmpatch" / "environment.json").read_text())["policy"] == "policy.json"
    run("install", "tox-fix")  # one patch: its own evals cover it, nothing to verify
    res = run("install", "bias-fix", "--verify-limit", "2", ok=False)
    assert res.exit_code == 3, res.output
    assert "verifying it against the environment's policy policy.json" in res.output
    assert "failed verification" in res.output and "rolled back" in res.output
    assert stack_of() == ["tox-fix@1.1.0"]
    out = run_json("install", "bias-fix", "--no-verify")
    assert out["stack_evidence"]["evaluated"] is False and "verified" not in out
    assert stack_of() == ["tox-fix@1.1.0", "bias-fix@2.0.0"]


def test_with_an_environment_policy_a_tested_stack_is_not_verified_unless_asked(
        project, tiny_model_dir, stacked, one_thread):
    run("init", "--base", tiny_model_dir)
    run("policy", "set", failing_policy(project))
    run("install", "tox-fix")
    out = run_json("install", "harm-fix")
    assert out["stack_evidence"]["evaluated"] is True and "verified" not in out
    res = run("install", "bias-fix", "--verify", "--verify-limit", "2", ok=False)  # --verify uses the env's policy
    assert res.exit_code == 3 and "over_refusal.refusal_rate" in res.output
    assert stack_of() == ["tox-fix@1.1.0", "harm-fix@1.3.0"]


def test_a_broken_environment_policy_fails_before_anything_changes(project, tiny_model_dir, stacked):
    policy = failing_policy(project)
    run("init", "--base", tiny_model_dir, "--policy", policy)
    policy.write_text("{not json")
    res = refused("install", "tox-fix")
    assert "the environment's policy (policy.json)" in res.output and "llmpatch policy set" in res.output
    assert Environment(project / ".llmpatch").current_number() == 1


def test_policy_set_validates_the_file_and_unset_forgets_it(project, tiny_model_dir):
    run("init", "--base", tiny_model_dir)
    bad = project / "bad.toml"
    bad.write_text("schema_version = 1\nthresholds = 3\n")
    refused("policy", "set", bad)
    assert run_json("policy", "show")["policy"] is None
    good = failing_policy(project)
    assert run_json("policy", "set", good, "--dry-run") == {"policy": str(good), "dry_run": True}
    assert run_json("policy", "show")["policy"] is None
    run("policy", "set", good)
    shown = run_json("policy", "show")
    assert shown["policy"] == "policy.json" and shown["exists"] is True
    run("policy", "unset")
    assert run_json("policy", "show")["policy"] is None
    refused("install", "tox-fix", "--no-verify", "--policy", good)


def test_show_and_inspect_surface_the_stack_evidence(project, tiny_model_dir, stacked, tmp_path):
    res = run("show", "harm-fix")
    assert "tested in tox-fix@1.1.0 -> harm-fix@1.3.0" in res.output
    assert "tested with tox-fix 1.1.0 before it" in res.output
    assert run_json("show", "harm-fix")["selected"]["stacks"][0]["order"][1] == {
        "name": "harm-fix", "version": "1.3.0", "self": True}
    assert "stacks" not in run_json("show", "tox-fix")["selected"]  # patches built alone keep the old index form
    run("fetch", "harm-fix", tmp_path / "h")
    res = run("inspect", tmp_path / "h")
    assert "stack tox-fix@1.1.0 -> harm-fix@1.3.0" in res.output and "before it" in res.output
    assert "In a stack: tox-fix@1.1.0 -> harm-fix@1.3.0" in (tmp_path / "h" / "README.md").read_text()
