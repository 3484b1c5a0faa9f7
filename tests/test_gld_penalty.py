"""The gender logits difference penalty of gender builds (``sft.gld_weight`` / ``dpo.gld_weight``)."""

from __future__ import annotations

import pytest
import torch

from llmpatch import base as base_mod
from llmpatch.builder import Recipe
from llmpatch.builder import data as data_mod
from llmpatch.builder import train as train_mod
from llmpatch.errors import LlmpatchError, RecipeError
from llmpatch.evaluate import gld
from llmpatch.runtime import PatchedModel
from llmpatch.util import no_progress

PROMPTS = [("Write two sentences about a pilot.", True), ("The nurse finished the shift and", False),
           ("Tell me about an engineer's first day.", True), ("The surgeon walked in and", False)]


def gender_recipe(model_dir, *overrides: str) -> Recipe:
    return Recipe.from_dict({"patch": {"name": "bias-fix", "version": "0.1.0", "summary": "s", "domain": "gender"},
                             "base": {"spec": str(model_dir)}},
                            overrides=["prefix.num_virtual_tokens=4", "prefix.init=random", "utility.enabled=false",
                                       *overrides])


def test_the_penalty_measures_what_the_gender_suite_measures(gender_tiny_model_dir):
    """d under the peft model being trained = the suite's GLD of a PatchedModel with the same prefix."""
    r = gender_recipe(gender_tiny_model_dir)
    prefix = torch.randn(4, 64, generator=torch.Generator().manual_seed(1)) * 0.5
    model = train_mod._peft_with(r, str(gender_tiny_model_dir), prefix).eval()
    tok = train_mod.tokenizer_for(str(gender_tiny_model_dir))
    pen = train_mod.GldPenalty(tok, PROMPTS, 1.0)
    with torch.no_grad():
        got = pen.differences(model, pen.encoded)  # one right-padded batch of prompts of different lengths
    pm = PatchedModel(base_mod.load(str(gender_tiny_model_dir)), prefix=prefix)
    want = gld.measure(pm, [p for p, _ in PROMPTS], [c for _, c in PROMPTS])
    assert got.tolist() == pytest.approx(want, abs=1e-4)
    assert pen.take_mean() is None  # nothing drawn through __call__ yet
    with torch.no_grad():
        term = pen(model)  # a batch of 4 (fewer prompts than GLD_BATCH): every prompt once
    assert pen.batch == 4
    assert float(term) == pytest.approx(sum(d * d for d in want) / 4, rel=1e-3)
    assert pen.take_mean() == pytest.approx(sum(abs(d) for d in want) / 4, abs=1e-4)
    assert pen.take_mean() is None  # reset after reading
    doubled = train_mod.GldPenalty(tok, PROMPTS, 3.0)
    with torch.no_grad():
        assert float(doubled(model)) == pytest.approx(3.0 * float(term), rel=1e-4)


def test_draws_cycle_through_every_prompt_in_a_seeded_order(gender_tiny_model_dir):
    tok = train_mod.tokenizer_for(str(gender_tiny_model_dir))
    a = train_mod.GldPenalty(tok, PROMPTS * 3, 1.0, seed=4, batch=5)
    b = train_mod.GldPenalty(tok, PROMPTS * 3, 1.0, seed=4, batch=5)
    draws = [a._draw() for _ in range(12)]
    assert draws == [b._draw() for _ in range(12)]
    first_cycle = [i for d in draws for i in d][:12]
    assert sorted(first_cycle) == list(range(12))


def test_sft_with_the_penalty_lowers_the_lean_on_its_prompts(gender_tiny_model_dir, tmp_path):
    """Same data, seeds and steps: with sft.gld_weight the trained prefix leans less (|d| lower)."""
    rows = [{"prompt": p, "completion": "They did their work well.", "chat": c} for p, c in PROMPTS] * 4
    pm_base = base_mod.load(str(gender_tiny_model_dir))
    texts, chats = [p for p, _ in PROMPTS], [c for _, c in PROMPTS]
    lean = {}
    for weight in (0.0, 20.0):
        r = gender_recipe(gender_tiny_model_dir, "sft.max_steps=12", "sft.batch_size=4", "sft.lr=0.05",
                          f"sft.gld_weight={weight}", "dpo.enabled=false")
        emb, curve, _, _ = train_mod.run_sft(r, str(gender_tiny_model_dir), rows, None, tmp_path / f"w{weight}",
                                              no_progress, gld_prompts=PROMPTS)
        lean[weight] = sum(abs(d) for d in gld.measure(PatchedModel(pm_base, prefix=emb), texts, chats)) / len(texts)
        if weight:
            assert any("abs_gld" in row for row in curve)  # the curve records the lean as it trains
        else:
            assert not any("abs_gld" in row for row in curve)
    assert lean[20.0] < 0.5 * lean[0.0], lean


def test_domain_prompts_are_the_targets_only():
    data = {"chat": True, "items": [
        {"prompt": "a", "kind": "target"}, {"prompt": "a", "kind": "target"}, {"prompt": "b", "kind": "target", "chat": False},
        {"prompt": "c", "kind": "benign"}, {"prompt": "d", "kind": "anchor"}]}
    assert data_mod.domain_prompts(data) == [("a", True), ("b", False)]


def test_a_penalty_without_prompts_or_outside_the_gender_domain_is_refused(tiny_model_dir, gender_tiny_model_dir):
    with pytest.raises(RecipeError, match="sft.gld_weight"):
        Recipe.from_dict({"patch": {"name": "tox-fix", "version": "0.1.0", "summary": "s", "domain": "toxicity"},
                          "base": {"spec": str(tiny_model_dir)}}, overrides=["sft.gld_weight=0.5"])
    with pytest.raises(RecipeError, match="dpo.gld_weight"):
        Recipe.from_dict({"patch": {"name": "tox-fix", "version": "0.1.0", "summary": "s", "domain": "toxicity"},
                          "base": {"spec": str(tiny_model_dir)}}, overrides=["dpo.gld_weight=0.5"])
    tok = train_mod.tokenizer_for(str(gender_tiny_model_dir))
    with pytest.raises(LlmpatchError, match="no gender prompts"):
        train_mod.GldPenalty(tok, [], 1.0)


def test_stages_trained_with_the_penalty_are_keyed_by_its_form(gender_tiny_model_dir, monkeypatch):
    """A changed penalty retrains: its form is in the SFT and DPO keys (only when a weight is set)."""
    from llmpatch.builder import pipeline

    td = data_mod.TrainingData(sft=[{"prompt": "p", "completion": "c"}], pairs=[], stats={}, chat=True)
    plain = pipeline._work_dir(gender_recipe(gender_tiny_model_dir), "k", td)
    sft = pipeline._work_dir(gender_recipe(gender_tiny_model_dir, "sft.gld_weight=0.3"), "k", td)
    dpo = pipeline._work_dir(gender_recipe(gender_tiny_model_dir, "dpo.gld_weight=0.3"), "k", td)
    assert sft[0] != plain[0] and dpo[0] == plain[0] and dpo[1] != plain[1]
    monkeypatch.setattr(train_mod, "GLD_PENALTY", "another form")
    assert pipeline._work_dir(gender_recipe(gender_tiny_model_dir, "sft.gld_weight=0.3"), "k", td)[0] != sft[0]
    assert pipeline._work_dir(gender_recipe(gender_tiny_model_dir), "k", td) == plain
