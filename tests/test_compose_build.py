"""Composition-aware builds (``[compose]``) on the tiny model: real trl SFT + DPO with frozen co-patches.

The co-patches' prefixes must be in every training forward pass exactly as the runtime composes
the stack, stay bit-identical, reach the DPO reference too, and the manifest must record the
stacks the patch was evaluated in.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clihelp import refused, run
from llmpatch import schemas
from llmpatch.builder import Recipe, build
from llmpatch.builder import costack as costack_mod
from llmpatch.errors import BaseMismatchError, RecipeError
from llmpatch.manifest import Manifest
from llmpatch.util import sha256_file
from test_build import FAST, PATCH

EVAL = ["eval.enabled=true", "eval.limit=2", 'eval.suites=["harmfulness"]', "eval.max_new_tokens=4"]


def compose_recipe(base_dir: Path, with_: list[str], *extra: str, position: str = "after", **compose) -> Recipe:
    return Recipe.from_dict({"patch": dict(PATCH), "base": {"spec": str(base_dir)},
                             "compose": {"with": with_, "position": position, **compose}},
                            overrides=[*FAST, "eval.enabled=false", *extra])


@pytest.fixture(scope="module")
def co_patch(tiny_model_dir, tmp_path_factory):
    """tox-fix 1.1.0 (3 virtual tokens) for the tiny base: the patch the new one is built to run with."""
    from llmpatch import artifact, base

    info = base.identify(str(tiny_model_dir))
    emb = torch.randn(3, info.hidden_size, generator=torch.Generator().manual_seed(7)) * 0.5
    return artifact.write_patch(tmp_path_factory.mktemp("co") / "tox-fix", emb, name="tox-fix", version="1.1.0",
                                summary="co-patch", domains=["toxicity"], base=info.to_ref())


# -- the training forward pass is the runtime's -------------------------------------------------


@pytest.mark.parametrize("order", ["after", "before"])
def test_training_forward_with_the_co_prefix_equals_the_runtime_stack(tiny_model_dir, co_patch, order):
    from peft import PromptTuningConfig, get_peft_model, set_peft_model_state_dict

    from llmpatch import base as base_mod
    from llmpatch.builder.train import fresh_model
    from llmpatch.runtime import PatchedModel

    costack = costack_mod.CoStack((co_patch,), ("dir",), order)
    new = torch.randn(4, 64, generator=torch.Generator().manual_seed(1)) * 0.5
    model = get_peft_model(fresh_model(str(tiny_model_dir)), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    set_peft_model_state_dict(model, {"prompt_embeddings": new})
    hook = costack_mod.CoPrefixHook(costack.prefix(), 4, order).attach(model)
    loaded = base_mod.load(str(tiny_model_dir))
    texts = ["hello world this is a tiny", "the nurse said"]  # different lengths: right padding, as trl pads
    tok = loaded.tokenizer
    tok.padding_side = "right"
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).logits[:, 4:]
        with model.disable_adapter():  # trl's reference for dpo.reference = "base": the co-patches alone
            co_only = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).logits
    want, _ = PatchedModel(loaded, prefix=costack.arrange(new, order)).logits(texts, cached=False)
    want_co, _ = PatchedModel(loaded, costack.stack(loaded.info.to_ref())).logits(texts, cached=False)
    for i, n in enumerate(enc.attention_mask.sum(1).tolist()):  # runtime rows are left-padded: compare real tokens
        assert torch.allclose(logits[i, :n], want[i, -n:], atol=1e-5)
        assert torch.allclose(co_only[i, :n], want_co[i, -n:], atol=1e-5)
    assert hook.counts == {order: 2}
    hook.remove()
    with torch.no_grad():
        alone = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).logits[:, 4:]
    assert not torch.allclose(alone[0], want[0, -alone.shape[1]:], atol=1e-3)  # without the hook: another model


def test_both_orders_are_drawn_per_step_from_the_seed():
    draws = [costack_mod.order_for_step(0, s) for s in range(40)]
    assert draws == [costack_mod.order_for_step(0, s) for s in range(40)]
    assert {"after", "before"} == set(draws)
    assert draws != [costack_mod.order_for_step(1, s) for s in range(40)]


def test_any_draws_alone_and_both_orders_and_alone_is_the_plain_patch(tiny_model_dir, co_patch):
    """``position = "any"``: a step may run without the co-prefix; that forward is the patch alone."""
    from peft import PromptTuningConfig, get_peft_model, set_peft_model_state_dict

    from llmpatch import base as base_mod
    from llmpatch.builder.train import fresh_model
    from llmpatch.runtime import PatchedModel

    costack = costack_mod.CoStack((co_patch,), ("dir",), "any")
    assert costack.orders == ("after", "before")  # the stacks evaluated and recorded in the manifest
    assert costack.trained_orders == ("alone", "after", "before")  # what training draws and selection scores
    draws = [costack_mod.order_for_step(0, s, costack.trained_orders) for s in range(60)]
    assert set(draws) == {"alone", "after", "before"}
    assert [costack_mod.order_for_step(0, s) for s in range(40)] == \
        [costack_mod.order_for_step(0, s, ("after", "before")) for s in range(40)]  # "both" draws as before
    new = torch.randn(4, 64, generator=torch.Generator().manual_seed(1)) * 0.5
    assert torch.equal(costack.arrange(new, "alone"), new)
    model = get_peft_model(fresh_model(str(tiny_model_dir)), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    set_peft_model_state_dict(model, {"prompt_embeddings": new})
    hook = costack_mod.CoPrefixHook(costack.prefix(), 4, "alone").attach(model)
    loaded = base_mod.load(str(tiny_model_dir))
    tok = loaded.tokenizer
    tok.padding_side = "right"
    texts = ["hello world this is a tiny", "the nurse said"]
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        alone = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).logits[:, 4:]
        hook.order = "after"
        stacked = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).logits[:, 4:]
    want, _ = PatchedModel(loaded, prefix=new).logits(texts, cached=False)
    for i, n in enumerate(enc.attention_mask.sum(1).tolist()):
        assert torch.allclose(alone[i, :n], want[i, -n:], atol=1e-5)
    assert not torch.allclose(stacked[0], alone[0], atol=1e-3)
    assert hook.counts == {"alone": 1, "after": 1}
    hook.remove()


def test_recipe_accepts_position_any(tiny_model_dir, co_patch):
    recipe = compose_recipe(tiny_model_dir, [str(co_patch.path)], position="any")
    assert recipe.compose.position == "any" and recipe.compose.orders == ("after", "before")


# -- a real composition-aware build ---------------------------------------------------------------


@pytest.fixture(scope="module")
def composed(tiny_model_dir, co_patch, tmp_path_factory):
    """One evaluated build with tox-fix in both orders; every training hook is kept for inspection."""
    hooks: list[tuple[str, costack_mod.CoPrefixHook, int]] = []
    real_attach = costack_mod.attach

    def spy(trainer, costack, recipe):
        hook = real_attach(trainer, costack, recipe)
        # the new prefix (and, in DPO, trl's frozen "ref" copy of it, which never gets a gradient)
        trainable = {tuple(p.shape) for p in trainer.model.parameters() if p.requires_grad}
        hooks.append((type(trainer).__name__, hook, trainable))
        return hook

    before = {f.name: sha256_file(f) for f in co_patch.path.iterdir()}
    home = tmp_path_factory.mktemp("compose-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMPATCH_HOME", str(home))
        mp.setattr(costack_mod, "attach", spy)
        out = tmp_path_factory.mktemp("compose-out") / "harm-fix"
        recipe = compose_recipe(tiny_model_dir, [str(co_patch.path)], *EVAL, "select.enabled=true", "select.limit=2",
                                "select.snapshots=2", "select.max_new_tokens=4", position="both")
        result = build(recipe, out, report_dir=out.parent / "report")
    return result, hooks, before, home


def test_co_patch_prefixes_stay_bit_identical_through_sft_and_dpo(composed, co_patch):
    result, hooks, before, _ = composed
    assert [name for name, _, _ in hooks] == ["SFTTrainer", "DPOTrainer"]
    for _, hook, trainable in hooks:
        assert torch.equal(hook.co, co_patch.embeddings.float())  # what every forward pass saw, after training
        assert trainable == {(4, 64)}  # only the new prefix's shape: the co-prefix (3 x 64) is no parameter at all
        assert hook.counts.get("after", 0) > 0 and hook.counts.get("before", 0) > 0
    assert {f.name: sha256_file(f) for f in co_patch.path.iterdir()} == before
    tr = result.training
    assert tr["sft"]["forwards_after"] + tr["sft"]["forwards_before"] >= tr["sft"]["steps"]


def test_dpo_reference_sees_the_same_stack_with_the_frozen_sft_prefix(composed):
    result, _, _, _ = composed
    # policy = reference at the first step only if the reference ran through the same stack
    assert result.training["dpo"]["first_margin"] == pytest.approx(0.0, abs=1e-6)


def test_manifest_records_every_trained_stack_with_its_evals_and_validates(composed, co_patch):
    result, _, _, _ = composed
    data = json.loads((result.out_dir / "llmpatch.json").read_text())
    schemas.validate(data, "manifest", what="composition-aware manifest")
    m = Manifest.read(result.out_dir / "llmpatch.json")
    assert [st.label(m.name, m.version) for st in m.stacks] == ["tox-fix@1.1.0 -> harm-fix@0.1.0",
                                                                "harm-fix@0.1.0 -> tox-fix@1.1.0"]
    assert [st.describe() for st in m.stacks] == ["tested with tox-fix 1.1.0 before it",
                                                  "tested with tox-fix 1.1.0 after it"]
    for st in m.stacks:
        assert st.trained and st.others[0].payload_sha256 == co_patch.payload_sha256
        suites = {e.suite for e in st.evals}
        assert {"harmfulness", "toxicity"} <= suites  # its own domain and the co-patch's
    assert {e.suite for e in m.evals} == {"harmfulness"}  # alone: the recipe's suites
    comp = m.build["compose"]
    assert comp["position"] == "both" and comp["with"][0]["payload_sha256"] == co_patch.payload_sha256
    assert m.build["recipe"]["compose"]["with"] == [str(co_patch.path)]
    assert sorted(p.name for p in (result.out_dir.parent / "report").glob("verify-stack-*.json")) == [
        "verify-stack-after.json", "verify-stack-before.json"]
    broken = json.loads(json.dumps(data))
    broken["stacks"][0]["order"][0]["payload_sha256"] = "not a digest"
    with pytest.raises(Exception, match="manifest schema"):
        Manifest.from_dict(broken)


def test_deployed_model_with_the_co_patches_writes_the_data_and_keys_its_cache(composed, co_patch):
    result, _, _, home = composed
    (cached,) = list((home / "cache" / "build-data").glob("*.json"))
    data = json.loads(cached.read_text())
    assert data["deployed"] == [["tox-fix", "1.1.0", co_patch.payload_sha256]]
    assert data["key"] == result.data_key
    assert data["reference"]["with_patches"] == ["tox-fix@1.1.0"]  # the self-reference M' runs in that stack too


def test_selection_scores_candidates_in_every_trained_order(composed):
    result, _, _, _ = composed
    sel = result.selection
    assert "stack order(s) after, before with tox-fix 1.1.0" in sel["objective"]
    assert len(sel["candidates"]) >= 2 and all(c["score"] is not None for c in sel["candidates"])


# -- everything wrong fails before a model is loaded, and writes nothing --------------------------


def test_a_co_patch_for_another_base_fails_early_and_writes_nothing(tiny_model_dir, make_patch, other_tiny_model_dir,
                                                                     tmp_path, llmpatch_home):
    other = make_patch("tox-fix", "1.1.0", base_dir=other_tiny_model_dir)
    out = tmp_path / "out"
    with pytest.raises(BaseMismatchError, match=r"compose\.with\[0\].*built for base") as err:
        build(compose_recipe(tiny_model_dir, [str(other.path)]), out)
    assert "nothing was generated or written" in err.value.hint.lower()
    assert not out.exists()
    assert not (llmpatch_home / "cache" / "build-data").exists() and not (llmpatch_home / "cache" / "build-runs").exists()
    recipe_file = tmp_path / "r.toml"
    recipe_file.write_text(f'[patch]\nname = "harm-fix"\nversion = "0.1.0"\nsummary = "s"\ndomain = "harmfulness"\n'
                           f'[base]\nspec = "{tiny_model_dir}"\n[compose]\nwith = ["{other.path}"]\n')
    res = refused("build", recipe_file, "--check")
    assert "built for base" in res.output


def test_recipe_compose_errors_are_clear(tiny_model_dir, tmp_path, co_patch):
    with pytest.raises(RecipeError, match="names the patch being built"):
        compose_recipe(tiny_model_dir, ["harm-fix@^1"])
    with pytest.raises(RecipeError, match="no such patch directory"):
        compose_recipe(tiny_model_dir, ["./missing-dir"])
    with pytest.raises(RecipeError, match="compose/position"):
        compose_recipe(tiny_model_dir, [str(co_patch.path)], position="middle")
    plain = Recipe.from_dict({"patch": dict(PATCH)})
    assert "compose" not in plain.to_dict()  # other recipes' recorded form and cache keys are unchanged


def test_a_co_patch_that_is_the_patch_itself_or_over_budget_is_refused(tiny_model_dir, make_patch):
    me = make_patch("harm-fix", "0.0.9")
    with pytest.raises(RecipeError, match="the patch being built"):
        build(compose_recipe(tiny_model_dir, [str(me.path)]), Path("unused"))
    big = make_patch("big-fix", "1.0.0", tokens=255)
    with pytest.raises(RecipeError, match="virtual tokens"):
        build(compose_recipe(tiny_model_dir, [str(big.path)]), Path("unused"))


def test_co_patches_resolve_from_a_registry_to_the_newest_build_for_this_base(tiny_model_dir, other_tiny_model_dir,
                                                                              registry):
    from llmpatch import base as base_mod

    registry.publish_patch("tox-fix", "1.0.0")
    want = registry.publish_patch("tox-fix", "1.1.0")
    registry.publish_patch("tox-fix", "1.2.0", base_dir=other_tiny_model_dir)
    ref = base_mod.identify(str(tiny_model_dir)).to_ref()
    cs = costack_mod.resolve(compose_recipe(tiny_model_dir, ["tox-fix@^1"], registry=registry.url), ref)
    (p,) = cs.patches
    assert (p.version, p.payload_sha256) == ("1.1.0", want.payload_sha256)
    assert cs.sources[0].endswith("tox-fix@1.1.0")
    again = costack_mod.resolve(compose_recipe(tiny_model_dir, ["tox-fix@1.1"], registry=registry.url), ref)
    assert again.patches[0].path == p.path  # fetched once, cached by manifest digest
    with pytest.raises(RecipeError, match=r"1\.2\.0 \(another base\)"):
        costack_mod.resolve(compose_recipe(tiny_model_dir, ["tox-fix@^1.2"], registry=registry.url), ref)


def test_cli_check_verifies_the_co_patches(tiny_model_dir, co_patch, tmp_path):
    recipe_file = tmp_path / "r.toml"
    recipe_file.write_text(f'[patch]\nname = "harm-fix"\nversion = "0.1.0"\nsummary = "s"\ndomain = "harmfulness"\n'
                           f'[base]\nspec = "{tiny_model_dir}"\n[compose]\nwith = ["{co_patch.path}"]\n')
    res = run("build", recipe_file, "--check")
    assert "co-patches verified" in res.output and "tox-fix 1.1.0" in res.output and "after them" in res.output
