"""``llmpatch build`` on a tiny random model: real trl SFT + DPO, real peft, real judges.

The harmfulness domain makes the data deterministic on a random model: the model never refuses
(unsafety 1), and the self-reference falls back to a refusal (unsafety 0), so every prompt gives
a pair, and benign prompts give contrast pairs.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from llmpatch.builder import Recipe, build
from llmpatch.builder import data as data_mod
from llmpatch.cli import cli
from llmpatch.errors import BaseModelError, RecipeError

PATCH = {"name": "harm-fix", "version": "0.1.0", "summary": "tiny test patch", "domain": "harmfulness"}
FAST = ["prompts.limit=6", "generation.max_new_tokens=6", "reference.best_of=2", "prefix.num_virtual_tokens=4",
        "sft.lr=0.05", "sft.epochs=4", "sft.max_length=256", "dpo.lr=0.05", "dpo.epochs=3", "dpo.max_length=256",
        "training.save_steps=2", "utility.limit=4",
        "utility.max_degenerate_increase=1.0"]  # a random model loops as it likes; the threshold has its own tests


def recipe(base_dir: Path, *extra: str, eval_enabled: bool = False) -> Recipe:
    """A small harmfulness recipe on the tiny model."""
    ev = ["eval.enabled=true", "eval.limit=2", 'eval.suites=["harmfulness"]', "eval.max_new_tokens=4"] if eval_enabled \
        else ["eval.enabled=false"]
    return Recipe.from_dict({"patch": dict(PATCH), "base": {"spec": str(base_dir)}}, overrides=[*FAST, *ev, *extra])


@pytest.fixture(scope="module")
def build_home(tmp_path_factory) -> Path:
    """One llmpatch home for the module, so later builds can reuse the first build's data and stages."""
    return tmp_path_factory.mktemp("build-home")


@pytest.fixture(scope="module")
def built(tiny_model_dir, tmp_path_factory, build_home):
    """One evaluated build, shared by the tests that only read its outputs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMPATCH_HOME", str(build_home))
        out = tmp_path_factory.mktemp("build-out") / "harm-fix"
        return build(recipe(tiny_model_dir, eval_enabled=True), out, report_dir=out.parent / "report")


def test_a_two_form_recipe_is_also_evaluated_in_the_form_each_suite_does_not_use(tiny_model_dir, tmp_path, monkeypatch):
    """generation.chat = "mixed" trains requests as chat and as plain text, so the build evaluates both:
    harm-fix 1.4.0 (chat only) refused 74% of held-out harmful requests as chat and 26% as plain text."""
    monkeypatch.setenv("LLMPATCH_HOME", str(tmp_path / "home"))  # not the module's: `built` must build from scratch
    out = tmp_path / "harm-fix"
    res = build(recipe(tiny_model_dir, 'generation.chat="mixed"', eval_enabled=True), out, report_dir=tmp_path / "report")
    assert set(res.form_reports) == {"plain"}
    plain = res.form_reports["plain"]
    assert [s.name for s in plain.suites] == ["harmfulness"] and plain.suites[0].chat is False
    assert res.report.suites[0].chat is True  # the default evaluation is unchanged
    on_disk = json.loads((tmp_path / "report" / "verify-plain.json").read_text())
    assert on_disk["suites"][0]["chat"] is False
    summary = json.loads((tmp_path / "report" / "build.json").read_text())
    assert {e["metric"] for e in summary["other_forms"]["plain"]} >= {"refusal_rate"}
    # the manifest records both forms, each claim with its own; verify compares a claim only in its form
    from llmpatch.artifact import read_patch as load_patch
    from llmpatch.verify.verify import check_claims

    claims = [(e.id, e.form) for e in load_patch(out).manifest.evals]
    assert ("harmfulness.refusal_rate", "chat") in claims and ("harmfulness.refusal_rate", "plain") in claims
    assert [c.form for c in res.evals if not c.default_form] == ["plain"] * len(plain.eval_claims())
    patch = load_patch(out)
    checks = {(c.metric, c.status == "other form") for c in check_claims(plain.suites, [patch], None)}
    assert ("harmfulness.refusal_rate", True) in checks and ("harmfulness.refusal_rate", False) in checks
    one_form = build(recipe(tiny_model_dir, eval_enabled=True), tmp_path / "one", report_dir=tmp_path / "r1")
    assert one_form.form_reports == {} and not (tmp_path / "r1" / "verify-plain.json").exists()


def test_sft_lowers_its_loss(built):
    rows = json.loads((built.out_dir.parent / "report" / "curves.json").read_text())["curves"]["sft"]
    assert len(rows) >= 4
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_dpo_reward_margin_rises_above_zero(built):
    rows = json.loads((built.out_dir.parent / "report" / "curves.json").read_text())["curves"]["dpo"]
    margins = [r["rewards/margins"] for r in rows]
    assert margins[0] == pytest.approx(0.0, abs=1e-6)  # policy = reference at the first step
    assert margins[-1] > 0.0
    assert built.training["dpo"]["last_margin"] > 0.0


def test_only_the_prefix_is_trainable_and_base_weights_stay_bit_identical(built, tiny_model_dir):
    from llmpatch.builder import train as train_mod

    model = train_mod._peft_with(recipe(tiny_model_dir), str(tiny_model_dir), built.patch.embeddings)
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert sum(trainable.values()) == 4 * 64
    on_disk = {}
    for f in Path(tiny_model_dir).glob("*.safetensors"):
        on_disk.update(load_file(str(f)))
    base_sd = model.get_base_model().state_dict()
    for name, tensor in on_disk.items():
        assert torch.equal(base_sd[name], tensor), name


def test_prefix_moved_away_from_its_text_initialisation(built):
    assert built.training["prefix_change_norm"] > 0.01


def test_output_loads_with_read_patch_and_plain_peft(built, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from llmpatch.artifact import read_patch

    patch = read_patch(built.out_dir)
    assert tuple(patch.embeddings.shape) == (4, 64)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    peft_model = PeftModel.from_pretrained(base, str(built.out_dir))
    assert torch.equal(peft_model.get_prompt_embedding_to_save("default"), patch.embeddings)


def test_manifest_records_recipe_data_hashes_pairs_curves_seeds_reference_and_evals(built):
    m = built.patch.manifest
    b = m.build
    assert b["recipe"]["sft"]["lr"] == 0.05
    assert b["data"]["sft"].startswith("sha256:") and b["data"]["pairs"].startswith("sha256:")
    stats = b["data"]["pair_stats"]
    assert stats["pairs"] == stats["kept"] + stats["contrast_pairs"] and stats["kept"] == 6
    assert stats["fallbacks"] == 6  # the random model's best sample never refuses: fixed refusal used
    assert b["training"]["sft"]["steps"] >= 4 and "last_margin" in b["training"]["dpo"]
    assert b["seeds"] == {"data": 0, "train": 0}
    assert b["reference_policy"]["kind"] == "self" and b["reference_policy"]["refusal_fallback"] is True
    assert m.init.startswith("text:")
    assert m.domains == ("harmfulness",)
    metrics = {(e.suite, e.metric) for e in m.evals}
    assert ("harmfulness", "refusal_rate") in metrics
    assert all("base_value" in e.to_dict() and e.n == 2 for e in m.evals)


def test_report_directory_holds_curves_png_build_and_verify_json(built):
    report = built.out_dir.parent / "report"
    assert (report / "curves.png").stat().st_size > 1000
    assert json.loads((report / "build.json").read_text())["pairs"]["pairs"] > 0
    assert json.loads((report / "verify.json").read_text())["columns"] == ["base", "baseline", "patched"]


def test_rerun_with_the_same_recipe_reuses_cached_data_and_trained_stages(built, build_home, tiny_model_dir, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("LLMPATCH_HOME", str(build_home))
    assert built.data_cached is False
    again = build(recipe(tiny_model_dir, eval_enabled=True), tmp_path / "again")
    assert again.data_cached is True
    assert again.training["sft"].get("resumed_from") == "final"
    assert again.training["dpo"].get("resumed_from") == "final"
    assert torch.equal(built.patch.embeddings, again.patch.embeddings)
    # another pair filter re-filters the cached data without regenerating it
    other = build(recipe(tiny_model_dir, "pairs.benign_contrast=false"), tmp_path / "other", data_only=True)
    assert other.data_cached is True and other.stats["contrast_pairs"] == 0


def test_interrupted_build_resumes_from_the_last_checkpoint(tiny_model_dir, tmp_path):
    r = recipe(tiny_model_dir, "dpo.enabled=false", "sft.max_steps=3", "training.save_steps=2")
    first = build(r, tmp_path / "a")
    sft_dir = first.work_dir / "sft"
    # simulate a crash after the checkpoint at step 2, before the stage finished
    (sft_dir / "final.safetensors").unlink()
    shutil.rmtree(sft_dir / "checkpoint-3")
    assert (sft_dir / "checkpoint-2").is_dir()
    second = build(r, tmp_path / "b")
    assert second.training["sft"]["resumed_from"] == "checkpoint-2"
    assert second.training["sft"]["steps"] == 3
    assert torch.allclose(first.patch.embeddings, second.patch.embeddings, atol=1e-5)


def test_dpo_against_the_unpatched_base_also_trains(tiny_model_dir, tmp_path):
    res = build(recipe(tiny_model_dir, "dpo.reference=base", "sft.max_steps=1", "dpo.max_steps=1"), tmp_path / "out")
    assert res.patch.manifest.build["training"]["dpo_reference"] == "base"
    # the reference is the base, not the SFT prefix, so the first margin is already non-zero
    assert res.training["dpo"]["first_margin"] != pytest.approx(0.0, abs=1e-7)


def test_dpo_with_an_sft_term_trains_and_changes_the_result(built, build_home, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMPATCH_HOME", str(build_home))
    plain = build(recipe(tiny_model_dir, "dpo.max_steps=2"), tmp_path / "plain")
    rpo = build(recipe(tiny_model_dir, "dpo.max_steps=2", "dpo.sft_weight=1.0"), tmp_path / "rpo")
    assert rpo.work_dir == plain.work_dir  # SFT shared, DPO retrained
    assert rpo.training["dpo"]["steps"] == 2 and rpo.training["dpo"]["last_margin"] is not None
    # the NLL term on the chosen responses is added to the DPO loss: larger first loss, other prefix
    assert rpo.training["dpo"]["first_loss"] > plain.training["dpo"]["first_loss"] + 0.1
    assert not torch.equal(rpo.patch.embeddings, plain.patch.embeddings)


def test_judge_that_rejects_every_pair_fails_before_training_and_writes_nothing(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RecipeError) as e:
        build(recipe(tiny_model_dir, "pairs.delta=2.0", "pairs.benign_contrast=false"), out)
    assert "0 DPO pair(s)" in e.value.message and "delta=2.0" in e.value.message
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["llmpatch-home"]  # only the test's home (caches)


def test_base_that_does_not_fit_in_memory_fails_before_loading(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(BaseModelError, match="needs about .* GB"):
        build(recipe(tiny_model_dir, "base.max_memory_gb=0.001"), out)
    assert not out.exists()


def test_existing_output_directory_is_refused_unless_forced(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(RecipeError, match="already exists"):
        build(recipe(tiny_model_dir), out)
    assert (out / "keep.txt").exists()


def test_cli_build_with_missing_prompts_file_fails_early_and_writes_nothing(tiny_model_dir, tmp_path):
    rec = tmp_path / "r.toml"
    rec.write_text(f'[patch]\nname = "harm-fix"\nversion = "0.1.0"\nsummary = "s"\ndomain = "harmfulness"\n'
                   f'[base]\nspec = "{tiny_model_dir}"\n[prompts]\ntrain = ["missing.jsonl"]\neval = ["builtin"]\n')
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["build", str(rec), "-o", str(out)])
    assert res.exit_code == 2
    assert "missing.jsonl" in res.output and "does not exist" in res.output
    assert not out.exists()


def test_cli_build_data_only_prints_pair_statistics_as_json(tiny_model_dir, tmp_path):
    rec = tmp_path / "r.toml"
    rec.write_text(f'[patch]\nname = "harm-fix"\nversion = "0.1.0"\nsummary = "s"\ndomain = "harmfulness"\n'
                   f'[base]\nspec = "{tiny_model_dir}"\n')
    res = CliRunner().invoke(cli, ["build", str(rec), "--data-only", "--json", *sum((["--set", s] for s in FAST), [])])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.stdout)["stats"]  # progress lines go to stderr
    assert stats["prompts"] == 6 and stats["benign_prompts"] == 6


def test_custom_prompt_file_is_used_for_training(tiny_model_dir, tmp_path):
    f = tmp_path / "mine.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": f"how do I hurt person number {i}"}) for i in range(3)) + "\n")
    r = recipe(tiny_model_dir, f'prompts.train=["{f}"]', "prompts.benign=[]")
    prompts = data_mod.load_train_prompts(r)
    assert [p.text for p in prompts if p.kind == "target"] == [f"how do I hurt person number {i}" for i in range(3)]
    assert {p.kind for p in prompts} == {"target", "anchor"}  # the utility anchor's everyday prompts follow


def test_pair_filters_keep_only_safe_reference_with_enough_margin():
    data = {"chat": True, "items": [
        {"id": "a", "prompt": "p1", "kind": "target", "reference": "safe", "reference_unsafety": 0.1, "fallback": False,
         "samples": ["bad", "meh"], "sample_unsafety": [0.9, 0.15]},
        {"id": "b", "prompt": "p2", "kind": "target", "reference": "also bad", "reference_unsafety": 0.8, "fallback": False,
         "samples": ["worse"], "sample_unsafety": [1.0]},
    ]}
    td = data_mod.build_sets(data, delta=0.2, tau=0.5, benign_contrast=False, fallback_text="")
    assert td.pairs == [{"prompt": "p1", "chosen": "safe", "rejected": "bad"}]
    assert td.sft == [{"prompt": "p1", "completion": "safe"}]
    assert (td.stats["small_margin"], td.stats["unsafe_reference"]) == (1, 1)


def test_benign_repeat_upsamples_only_benign_sft_rows_and_changes_only_the_sft_stage(built, build_home,
                                                                                    tiny_model_dir, tmp_path, monkeypatch):
    data = {"chat": True, "items": [
        {"id": "a", "prompt": "harm", "kind": "target", "reference": "No.", "reference_unsafety": 0.0, "fallback": True,
         "samples": ["Sure."], "sample_unsafety": [1.0]},
        {"id": "b", "prompt": "kill a process", "kind": "benign", "reference": "Run kill.", "reference_unsafety": 0.0,
         "fallback": False, "samples": ["Run kill -9."], "sample_unsafety": [0.0]},
        {"id": "c", "prompt": "refused", "kind": "benign", "reference": "Sorry, no.", "reference_unsafety": 1.0,
         "fallback": False, "samples": ["x"], "sample_unsafety": [1.0]},
    ]}
    once = data_mod.build_sets(data, delta=0.5, tau=0.5, benign_contrast=True, fallback_text="No.")
    thrice = data_mod.build_sets(data, delta=0.5, tau=0.5, benign_contrast=True, fallback_text="No.", benign_repeat=3)
    assert thrice.sft == [{"prompt": "harm", "completion": "No."}] + [{"prompt": "kill a process", "completion": "Run kill."}] * 3
    assert thrice.pairs == once.pairs  # DPO data unchanged
    monkeypatch.setenv("LLMPATCH_HOME", str(build_home))
    res = build(recipe(tiny_model_dir, "sft.benign_repeat=2", "sft.max_steps=2", "dpo.max_steps=1"), tmp_path / "out")
    b = res.patch.manifest.build
    assert b["data"]["pairs"] == built.patch.manifest.build["data"]["pairs"]
    assert b["data"]["sft"] != built.patch.manifest.build["data"]["sft"]
    assert res.work_dir != built.work_dir and b["recipe"]["sft"]["benign_repeat"] == 2
    assert built.stats["sft_rows"] < b["data"]["pair_stats"]["sft_rows"] <= built.stats["sft_rows"] + built.stats["benign_prompts"]


def test_contrast_pairs_can_reject_only_the_opening_of_the_refusal_and_keep_the_sft_stage(built, build_home,
                                                                                          tiny_model_dir, tmp_path,
                                                                                          monkeypatch):
    assert data_mod.contrast_refusal("I'm sorry, but I can't help.", 2) == "I'm sorry,"
    assert data_mod.contrast_refusal("I'm sorry, but I can't help.", 0) == "I'm sorry, but I can't help."
    assert data_mod.contrast_refusal("No.", 5) == "No."
    monkeypatch.setenv("LLMPATCH_HOME", str(build_home))
    r = recipe(tiny_model_dir, "pairs.contrast_words=2", "dpo.max_steps=1")
    info = build(r, tmp_path / "out", data_only=True)
    assert info.stats["contrast_pairs"] == built.stats["contrast_pairs"] > 0
    td = data_mod.build_sets(data_mod.read_cached(info.data_key), delta=0.5, tau=0.5, benign_contrast=True,
                             fallback_text=r.reference.fallback_text, contrast_words=2)
    assert sum(p["rejected"] == "I'm sorry," for p in td.pairs) == info.stats["contrast_pairs"]
    res = build(r, tmp_path / "out")
    assert res.work_dir == built.work_dir and res.training["sft"].get("resumed_from") == "final"  # same SFT rows
    assert res.patch.manifest.build["data"]["pairs"] == td.digest()["pairs"] != built.patch.manifest.build["data"]["pairs"]
    assert res.patch.manifest.build["data"]["sft"] == built.patch.manifest.build["data"]["sft"]


def test_on_policy_pairs_reject_what_the_sft_patch_says_when_the_judge_prefers_m_prime():
    items = [
        {"prompt": "harm", "kind": "target", "reference": "I can't help.", "reference_unsafety": 0.0},
        {"prompt": "benign", "kind": "benign", "reference": "Here is how.", "reference_unsafety": 0.0},
        {"prompt": "ref-bad", "kind": "benign", "reference": "Sorry, no.", "reference_unsafety": 1.0},
    ]
    answers = [
        {"samples": ["Sure: step 1", "Sure: step 1", "I can't help."], "unsafety": [1.0, 1.0, 0.0]},
        {"samples": ["I'm sorry, I can't.", "Here is how."], "unsafety": [1.0, 0.0]},
        {"samples": ["I'm sorry, I can't."], "unsafety": [1.0]},
    ]
    pairs, stats = data_mod.on_policy_pairs(items, answers, delta=0.5, tau=0.5)
    assert pairs == [{"prompt": "harm", "chosen": "I can't help.", "rejected": "Sure: step 1"},
                     {"prompt": "benign", "chosen": "Here is how.", "rejected": "I'm sorry, I can't."}]
    assert (stats["kept_target"], stats["kept_benign"], stats["duplicates"]) == (1, 1, 1)
    assert (stats["small_margin"], stats["unsafe_reference"]) == (2, 1)
    assert (stats["greedy_unsafe_target"], stats["greedy_refused_benign"]) == (1, 2)


def test_build_with_on_policy_pairs_samples_the_sft_patch_and_adds_its_mistakes(tiny_model_dir, tmp_path, monkeypatch,
                                                                                build_home):
    monkeypatch.setenv("LLMPATCH_HOME", str(build_home))
    r = recipe(tiny_model_dir, "pairs.on_policy=2", "dpo.max_steps=2")
    res = build(r, tmp_path / "out")
    onp = res.patch.manifest.build["data"]["pair_stats"]["on_policy"]
    prompts = data_mod.load_train_prompts(r)
    items = len([p for p in prompts if p.kind != "anchor"])  # utility anchors are M's own answers: not resampled
    assert onp["per_prompt"] == 2 and onp["answers"] == 2 * items and onp["cached"] is False
    # a random tiny model never refuses: its harmful answers are mistakes the pairs reject, its benign ones are fine
    assert onp["kept"] + onp["small_margin"] + onp["duplicates"] + onp["unsafe_reference"] == onp["answers"]
    assert onp["greedy_unsafe_target"] == onp["targets"] and onp["kept_target"] > 0 and onp["kept_benign"] == 0
    assert onp["pairs_digest"].startswith("sha256:")
    assert res.training["dpo"]["examples"] == res.stats["pairs"] + onp["kept"]  # DPO trained on both sets
    cache = list(res.work_dir.glob("on-policy-*.json"))
    assert len(cache) == 1 and len(json.loads(cache[0].read_text())["answers"]) == len(prompts)
    # the rerun reads the answers from the work dir and trains on the same pairs (DPO resumes from its final stage)
    again = build(r, tmp_path / "again")
    assert again.patch.manifest.build["data"]["pair_stats"]["on_policy"]["cached"] is True
    assert again.patch.manifest.build["data"]["pair_stats"]["on_policy"]["pairs_digest"] == onp["pairs_digest"]
    assert torch.equal(again.patch.embeddings, res.patch.embeddings)


def test_another_model_can_be_the_reference_policy_only_its_text_is_used(tiny_model_dir, wide_tiny_model_dir, tmp_path):
    from llmpatch import base as base_mod

    r = recipe(tiny_model_dir, "reference.kind=model", f'reference.model="{wide_tiny_model_dir}"',
               "reference.best_of=1", "reference.refusal_fallback=false", "pairs.delta=0.0", "pairs.min_pairs=1")
    res = build(r, tmp_path / "out", data_only=True)
    cached = data_mod.read_cached(res.data_key)
    assert cached["reference"]["kind"] == "model"
    assert cached["reference"]["fingerprint"] == base_mod.identify(str(wide_tiny_model_dir)).fingerprint
    assert cached["reference"]["fingerprint"] != cached["base"]
    assert all(it["fallback"] is False for it in cached["items"])


def test_fallback_always_gives_every_harmful_request_the_fallback_and_samples_only_benign_ones(
        tiny_model_dir, tmp_path, monkeypatch, build_home):
    monkeypatch.setenv("LLMPATCH_HOME", str(build_home))
    default = build(recipe(tiny_model_dir), tmp_path / "a", data_only=True)
    res = build(recipe(tiny_model_dir, 'reference.fallback_when="always"'), tmp_path / "b", data_only=True)
    assert res.data_key != default.data_key  # a different M', so different data
    cached = data_mod.read_cached(res.data_key)
    assert cached["reference"]["fallback_when"] == "always"
    fallback = recipe(tiny_model_dir).reference.fallback_text
    targets = [it for it in cached["items"] if it["kind"] == "target"]
    benign = [it for it in cached["items"] if it["kind"] == "benign"]
    assert targets and all(it["fallback"] and it["reference"] == fallback for it in targets)
    assert benign and not any(it["fallback"] for it in benign)
    assert res.stats["fallbacks"] == len(targets)
    # the default keeps recording no fallback_when, so data generated before the option keeps its key
    assert "fallback_when" not in data_mod.read_cached(default.data_key)["reference"]
    with pytest.raises(RecipeError, match="fallback_when"):
        recipe(tiny_model_dir, 'reference.fallback_when="sometimes"')


REFUSALS = ["I'm sorry, but I can't help with that.", "I won't help with this; it could hurt someone.",
            "I can't assist with that request.", "Sorry, but that is something I must decline."]


def test_several_fallback_refusals_are_spread_over_prompts_by_their_text_and_reused_by_contrast_pairs():
    from llmpatch.builder.reference import pick_fallback

    prompts = [f"request number {i}" for i in range(64)]
    picked = [pick_fallback(REFUSALS, p) for p in prompts]
    assert set(picked) == set(REFUSALS)                       # all of them are used
    assert picked == [pick_fallback(REFUSALS, p) for p in reversed(prompts)][::-1]  # order does not matter
    assert pick_fallback(REFUSALS[0], "x") == REFUSALS[0] == pick_fallback([REFUSALS[0]], "y")
    items = [{"id": str(i), "prompt": p, "kind": "benign", "reference": "Sure: here is how.", "reference_unsafety": 0.0,
              "fallback": False, "samples": ["Sure."], "sample_unsafety": [0.0]} for i, p in enumerate(prompts)]
    td = data_mod.build_sets({"items": items, "chat": True}, delta=0.5, tau=0.5, benign_contrast=True,
                             fallback_text=REFUSALS)
    assert [pr["rejected"] for pr in td.pairs] == picked
    opening = data_mod.build_sets({"items": items, "chat": True}, delta=0.5, tau=0.5, benign_contrast=True,
                                  fallback_text=REFUSALS, contrast_words=2)
    assert [pr["rejected"] for pr in opening.pairs] == [" ".join(t.split()[:2]) for t in picked]


def test_fixed_refusals_after_a_plain_text_prompt_start_a_paragraph_and_chat_rows_keep_them_as_written():
    """A plain training row "How do I pick a lock?I'm sorry" (no space) is a sequence the model never
    writes; as plain text it continues with a new paragraph, so every fixed refusal does too."""
    from llmpatch.builder.reference import as_reply, pick_fallback

    assert as_reply("No.", "Why?", chat=False) == "\n\nNo."
    assert as_reply("No.", "Why?", chat=True) == "No."
    assert as_reply("No.", "Why? ", chat=False) == "No." == as_reply(" No.", "Why?", chat=False).strip()
    assert as_reply("", "Why?", chat=False) == ""
    harm = ["How do I pick my neighbour's lock?", "How do I make a fake ID?"]
    benign = ["How do I pick a ripe melon?", "How do I kill a stuck process?"]
    items = ([{"id": f"h{i}", "prompt": p, "kind": "target", "reference": pick_fallback(REFUSALS, p),
               "reference_unsafety": 0.0, "fallback": True, "samples": ["Sure, first get a tension wrench."],
               "sample_unsafety": [1.0], "chat": chat} for i, p in enumerate(harm) for chat in (True, False)]
             + [{"id": f"b{i}", "prompt": p, "kind": "benign", "reference": "\n\nPress it gently.",
                 "reference_unsafety": 0.0, "fallback": False, "samples": [], "sample_unsafety": [], "chat": chat}
                for i, p in enumerate(benign) for chat in (True, False)])
    td = data_mod.build_sets({"items": items, "chat": "mixed"}, delta=0.5, tau=0.5, benign_contrast=True,
                             fallback_text=REFUSALS)
    refusals = [r for r in td.sft if r["prompt"] in harm]
    assert len(refusals) == 4
    for r in refusals:
        assert r["completion"] == ("" if r["chat"] else "\n\n") + pick_fallback(REFUSALS, r["prompt"])
    harm_pairs = [p for p in td.pairs if p["prompt"] in harm]
    assert {p["chosen"].startswith("\n\n") for p in harm_pairs if not p["chat"]} == {True}
    assert {p["chosen"] in REFUSALS for p in harm_pairs if p["chat"]} == {True}
    contrast = [p for p in td.pairs if p["prompt"] in benign]
    assert len(contrast) == 4
    for p in contrast:  # the rejected refusal of a plain benign row is the one the patch would write there
        assert p["rejected"] == ("" if p["chat"] else "\n\n") + pick_fallback(REFUSALS, p["prompt"])
        assert p["chosen"] == "\n\nPress it gently."  # M's own answer is kept as M wrote it
    on_policy, _ = data_mod.on_policy_pairs(
        [it for it in items if it["kind"] == "target"], [{"samples": ["Sure, here is how."], "unsafety": [1.0]}] * 4,
        delta=0.5, tau=0.5)
    assert [p["chosen"].startswith("\n\n") for p in on_policy] == [False, True, False, True]
    plain, _ = data_mod.on_policy_pairs([{k: v for k, v in items[0].items() if k != "chat"}],
                                        [{"samples": ["Sure."], "unsafety": [1.0]}], delta=0.5, tau=0.5, chat=False)
    assert plain[0]["chosen"] == "\n\n" + items[0]["reference"]


def test_silence_is_never_the_answer_a_build_trains_or_prefers():
    """SmolLM2 often stops at once after a plain-text question, and every judge scores silence as
    safe: best-of-n must prefer a safe answer that says something, and a blank reference trains nothing."""
    from llmpatch.builder.reference import best_sample

    assert best_sample([("", 0.0), ("  ", 0.0), ("Use a melon baller.", 0.2)], 0.5) == ("Use a melon baller.", 0.2)
    assert best_sample([("", 0.0), ("Sure, steal it like this.", 1.0)], 0.5) == ("", 0.0)  # no safe words: the least unsafe
    assert best_sample([("I'm sorry, I can't.", 1.0), ("Press Ctrl+C.", 0.0)], 0.5) == ("Press Ctrl+C.", 0.0)
    assert best_sample([("\n\nA:", 0.0), ("\n\nA: Press Ctrl+C.", 0.1)], 0.5) == ("\n\nA: Press Ctrl+C.", 0.1)  # a bare label says nothing
    items = [{"id": "b0", "prompt": "How do I kill a stuck process?", "kind": "benign", "reference": "",
              "reference_unsafety": 0.0, "fallback": False, "samples": ["I'm sorry, I can't help."], "sample_unsafety": [1.0]},
             {"id": "b1", "prompt": "How do I pick a ripe melon?", "kind": "benign", "reference": "Press the end gently.",
              "reference_unsafety": 0.0, "fallback": False, "samples": ["I'm sorry, I can't help."], "sample_unsafety": [1.0]},
             {"id": "b2", "prompt": "What foods are rich in iron?", "kind": "benign", "reference": "\n\nA:",
              "reference_unsafety": 0.0, "fallback": False, "samples": ["I'm sorry, I can't help."], "sample_unsafety": [1.0]}]
    td = data_mod.build_sets({"items": items, "chat": False}, delta=0.5, tau=0.5, benign_contrast=True,
                             fallback_text=REFUSALS)
    assert [r["prompt"] for r in td.sft] == [items[1]["prompt"]]  # neither "" nor a bare "\n\nA:" is a target
    assert {p["prompt"] for p in td.pairs} == {items[1]["prompt"]} and all(p["chosen"].strip() for p in td.pairs)
    assert td.stats["blank_reference"] == 2 and td.stats["benign_prompts"] == 3
    pairs, stats = data_mod.on_policy_pairs(items, [{"samples": ["I'm sorry."], "unsafety": [1.0]}] * 3, delta=0.5, tau=0.5)
    assert [p["prompt"] for p in pairs] == [items[1]["prompt"]] and stats["blank_reference"] == 2


def test_blank_plain_chat_answers_a_silent_plain_text_request_with_m_primes_chat_answer(tiny_model_dir, monkeypatch):
    """``reference.blank_plain = "chat"``: a benign request used as plain text that M' leaves blank is
    answered again as a chat message (real generation), and that answer, as a new paragraph, is its target."""
    from llmpatch import base as base_mod
    from llmpatch.builder import reference as ref_mod
    from llmpatch.runtime import PatchedModel

    real = ref_mod.generate_forms
    seen: list[list[bool]] = []

    def silent_as_plain_text(model, prompts, chats, **kw):  # SmolLM2's habit, on a tiny random model
        seen.append(list(chats))
        outs = real(model, prompts, chats, **kw)
        return [o if c else "" for o, c in zip(outs, chats)]

    monkeypatch.setattr(ref_mod, "generate_forms", silent_as_plain_text)
    model = PatchedModel(base_mod.load(str(tiny_model_dir)))
    prompts = ["How do I kill a stuck process?", "How do I pick a ripe melon?", "How do I pick a lock?"]
    kinds, chats = ["benign", "benign", "target"], [False, True, False]

    def policy(**kw):
        return ref_mod.SampledPolicy(model, lambda texts, ps, kind: [0.0] * len(texts), best_of=2, max_new_tokens=6,
                                     refusal_fallback=True, fallback_text=REFUSALS, **kw)

    keep = policy().respond(prompts, kinds, chats=chats)
    assert keep[0].text == "" and keep[1].text.strip() and keep[2].text == ""  # the default leaves silence (trains nothing)
    seen.clear()
    chat = policy(blank_plain="chat")
    got = chat.respond(prompts, kinds, chats=chats)
    assert got[0].text.startswith("\n\n") and got[0].text.strip() and got[0].candidates == 4
    assert got[1].text == keep[1].text and got[2].text == ""  # chat rows and harmful requests are left alone
    assert seen[-1] == [True, True] and chat.stats["blank_plain_chat"] == 1  # only the blank benign one, twice
    assert chat.describe()["blank_plain"] == "chat" and "blank_plain" not in policy().describe()


def test_fallback_list_gives_harmful_requests_varied_refusals_and_changes_the_data_key(
        tiny_model_dir, tmp_path, monkeypatch, build_home):
    from llmpatch.builder.reference import pick_fallback

    monkeypatch.setenv("LLMPATCH_HOME", str(build_home))
    one = build(recipe(tiny_model_dir, 'reference.fallback_when="always"'), tmp_path / "a", data_only=True)
    many = build(recipe(tiny_model_dir, 'reference.fallback_when="always"', f"reference.fallback_text={json.dumps(REFUSALS)}"),
                 tmp_path / "b", data_only=True)
    assert many.data_key != one.data_key
    cached = data_mod.read_cached(many.data_key)
    assert cached["reference"]["fallback_text"] == REFUSALS
    targets = [it for it in cached["items"] if it["kind"] == "target"]
    assert targets and all(it["fallback"] and it["reference"] == pick_fallback(REFUSALS, it["prompt"]) for it in targets)
    assert len({it["reference"] for it in targets}) > 1
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("value,where", [('"Here is how to do it."', r"reference.fallback_text 'Here is how"),
                                         ('["I can\'t help with that.", "Sure thing!"]', r"reference.fallback_text\[1\] 'Sure thing!'")])
def test_fallback_that_is_not_a_refusal_is_refused_before_anything_runs(tiny_model_dir, tmp_path, value, where):
    with pytest.raises(RecipeError, match=where) as e:
        recipe(tiny_model_dir, f"reference.fallback_text={value}")
    assert "not a refusal" in e.value.message
    for bad in ("[]", '["I can\'t.", "I can\'t."]', '[""]'):
        with pytest.raises(RecipeError, match="fallback_text"):
            recipe(tiny_model_dir, f"reference.fallback_text={bad}")
    out = tmp_path / "p.toml"
    out.write_text(f'schema_version = 1\n[patch]\nname = "harm-fix"\nversion = "0.1.0"\nsummary = "x"\n'
                   f'domain = "harmfulness"\n[base]\nspec = "{tiny_model_dir}"\n[reference]\nkind = "self"\n'
                   f'fallback_text = "Sure thing!"\n[prompts]\ntrain = ["builtin"]\neval = ["builtin"]\n')
    r = CliRunner().invoke(cli, ["build", str(out), "--check"])
    assert r.exit_code != 0 and "not a refusal" in r.output


# -- checkpoint selection on validation prompts -----------------------------------------------


@pytest.mark.parametrize("total,n,steps", [(18, 4, [5, 9, 14, 18]), (3, 5, [1, 2, 3]), (1, 1, [1]), (10, 1, [10])])
def test_snapshot_steps_are_evenly_spaced_and_end_at_the_final_step(total, n, steps):
    from llmpatch.builder.train import snapshot_steps

    assert snapshot_steps(total, n) == steps


def test_selection_chooses_the_lowest_score_and_ties_go_to_the_later_candidate():
    from llmpatch.builder.select import Candidate, choose

    t = torch.zeros(1, 2)
    a, b, c, d = (Candidate(n, "dpo", i, t) for i, n in enumerate("abcd"))
    a.target, a.benign = 0.2, 0.3   # 0.5
    b.target, b.benign = 0.1, 0.2   # 0.3
    c.target, c.benign = 0.3, 0.0   # 0.3, later: wins the tie
    d.target, d.benign = 0.0, 0.4   # 0.4
    assert choose([a, b, c, d]) is c
    assert choose([a, b, d]) is b
    e = Candidate("e", "dpo", 9, t)  # not scored: never chosen
    assert choose([a, e]) is a


def test_build_with_selection_scores_sft_and_dpo_snapshots_and_writes_the_chosen_one(tiny_model_dir, tmp_path,
                                                                                    monkeypatch, build_home):
    from llmpatch.builder.train import _load_prefix, snapshot_steps

    monkeypatch.setenv("LLMPATCH_HOME", str(build_home))
    # a random model loops as it likes: the loop threshold is tested on its own below
    r = recipe(tiny_model_dir, "select.enabled=true", "select.snapshots=3", "select.limit=3", "select.max_new_tokens=4",
               "utility.max_degenerate_increase=1.0", "utility.weight=0.5")
    res = build(r, tmp_path / "out")
    sel = res.patch.manifest.build["selection"]
    dpo_steps = res.training["dpo"]["steps"]
    names = [c["name"] for c in sel["candidates"]]
    assert names == ["sft"] + [f"dpo step {s}" for s in snapshot_steps(dpo_steps, 3)]
    assert sel["prompts"]["target"] == 3 and sel["prompts"]["benign"] == 3 and sel["prompts"]["utility"] > 0
    assert 0.0 <= sel["unpatched"]["degenerate_rate"] <= 1.0
    for c in sel["candidates"]:
        assert 0.0 <= c["target_unsafety"] <= 1.0 and 0.0 <= c["benign_refusal"] <= 1.0
        assert 0.0 <= c["degenerate_rate"] <= 1.0 and -1.0 <= c["similarity"] <= 1.0 + 1e-6 and c["rejected"] is None
        drift = 0.5 * (1.0 - c["similarity"])
        assert c["score"] == pytest.approx(c["target_unsafety"] + c["benign_refusal"] + drift, abs=1e-3)
    best = min(c["score"] for c in sel["candidates"])
    assert sel["name"] == [c["name"] for c in sel["candidates"] if c["score"] <= best + 1e-9][-1]
    assert res.training["selected"]["name"] == sel["name"]
    # the written prefix is the chosen candidate's, bit for bit
    if sel["stage"] == "sft":
        chosen = _load_prefix(res.work_dir / "sft" / "final.safetensors")
    else:
        chosen = _load_prefix(next(res.work_dir.glob(f"dpo-*/snapshots/step-{sel['step']:05d}.safetensors")))
    assert torch.equal(res.patch.embeddings, chosen)


def test_only_dpo_settings_changed_reuses_the_trained_sft_stage(built, build_home, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMPATCH_HOME", str(build_home))
    res = build(recipe(tiny_model_dir, "dpo.beta=0.2", "dpo.max_steps=2"), tmp_path / "out")
    assert res.training["sft"].get("resumed_from") == "final"
    assert "resumed_from" not in res.training["dpo"] and res.training["dpo"]["steps"] == 2
    assert res.work_dir == built.work_dir  # one SFT stage, two DPO stages beside each other
    assert len(list(res.work_dir.glob("dpo-*"))) >= 2


def test_selection_without_validation_prompts_fails_before_training_and_writes_nothing(tiny_model_dir, tmp_path):
    only_train = tmp_path / "val.jsonl"
    only_train.write_text('{"prompt": "a harmful request", "split": "train"}\n')
    out = tmp_path / "out"
    with pytest.raises(RecipeError, match="select.prompts source .*no prompts in split 'validation'"):
        build(recipe(tiny_model_dir, "select.enabled=true", f'select.prompts=["{only_train}"]'), out)
    assert not out.exists()


def test_selection_on_training_prompts_is_refused(tiny_model_dir, tmp_path):
    from llmpatch.evaluate.prompts import load_prompts

    trained = load_prompts("harmfulness", None, "train")[0].text
    f = tmp_path / "val.txt"
    f.write_text(trained + "\n")
    out = tmp_path / "out"
    with pytest.raises(RecipeError, match="also training prompts"):
        build(recipe(tiny_model_dir, "select.enabled=true", f'select.prompts=["{f}"]'), out)
    assert not out.exists()


def test_cli_build_prints_the_checkpoint_selection_table(tiny_model_dir, tmp_path, monkeypatch, build_home):
    monkeypatch.setenv("LLMPATCH_HOME", str(build_home))
    rec = tmp_path / "r.toml"
    rec.write_text(f'[patch]\nname = "harm-fix"\nversion = "0.1.0"\nsummary = "s"\ndomain = "harmfulness"\n'
                   f'[base]\nspec = "{tiny_model_dir}"\n[select]\nenabled = true\nsnapshots = 2\nlimit = 2\n'
                   f'max_new_tokens = 4\n[eval]\nenabled = false\n')
    res = CliRunner().invoke(cli, ["build", str(rec), "-o", str(tmp_path / "out"), *sum((["--set", s] for s in FAST), [])],
                             terminal_width=200)
    assert res.exit_code == 0, res.output
    assert re.search(r"checkpoint selection on 2 \+ 2 \+ \d+ everyday validation prompts \(chosen: ", res.output)
    assert "similarity" in res.output and "loops" in res.output
    chosen = json.loads((tmp_path / "out" / "llmpatch.json").read_text())["build"]["selection"]["name"]
    assert f"* {chosen}" in res.output and "sft" in res.output
