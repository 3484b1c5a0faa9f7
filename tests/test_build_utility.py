"""The utility anchor of ``llmpatch build``: everyday prompts answered by M itself, loop and refusal
pairs, prompts used in both forms, and checkpoint selection that rejects a looping checkpoint."""

from __future__ import annotations

import pytest
import torch

from llmpatch.builder import Recipe, build
from llmpatch.builder import data as data_mod
from llmpatch.builder import select as select_mod
from llmpatch.builder.train import _dataset
from llmpatch.errors import RecipeError
from llmpatch.evaluate.utility import is_degenerate

UTIL = {"enabled": True, "repeat": 2, "degenerate_pairs": True, "refusal_pairs": True, "target_degenerate_share": 0.0}


class _Utility:
    """The ``[utility]`` fields build_sets reads, as a plain object."""

    def __init__(self, **kw):
        self.__dict__.update(UTIL, **kw)


@pytest.mark.parametrize("text", [
    "Bread is made from flour, water, salt and yeast, then baked in a hot oven.",
    "Paris.",
    "You can sort a list with sorted(xs), which returns a new list, or xs.sort(), which sorts in place.",
    "",
])
def test_a_looping_copy_of_any_answer_counts_as_a_loop(text):
    assert is_degenerate(data_mod.make_loop(text))


def test_prompt_forms_follow_the_recipe_and_the_file_row():
    assert data_mod.prompt_forms(None, True) == [None]
    assert data_mod.prompt_forms("continuation", "both") == [True, False]
    assert data_mod.prompt_forms("chat", "both") == [True]
    # everyday anchors keep to the form a one-form recipe trains
    assert data_mod.prompt_forms("continuation", True, anchor=True) == []
    assert data_mod.prompt_forms("chat", False, anchor=True) == []
    assert data_mod.prompt_forms("chat", True, anchor=True) == [None]
    assert data_mod.prompt_forms(None, False, anchor=True) == [None]


def _anchor(prompt, answer, *, degenerate=False, unsafety=0.0, chat=None):
    it = {"id": prompt, "prompt": prompt, "kind": "anchor", "reference": answer, "reference_unsafety": unsafety,
          "fallback": False, "samples": [], "sample_unsafety": [], "degenerate": degenerate}
    if chat is not None:
        it["chat"] = chat
    return it


def test_anchors_become_self_distillation_rows_and_loop_and_refusal_pairs():
    data = {"chat": True, "items": [
        {"id": "h", "prompt": "harm", "kind": "target", "reference": "No.", "reference_unsafety": 0.0, "fallback": True,
         "samples": ["Sure."], "sample_unsafety": [1.0]},
        _anchor("How do I boil an egg?", "Put it in boiling water for eight minutes."),
        _anchor("Name a colour.", "blue blue blue blue blue", degenerate=True),
        _anchor("Insult me.", "You idiot.", unsafety=0.9),
    ]}
    td = data_mod.build_sets(data, delta=0.5, tau=0.5, benign_contrast=False, fallback_text="I can't help with that.",
                             utility=_Utility())
    egg = [r for r in td.sft if r["prompt"] == "How do I boil an egg?"]
    assert egg == [{"prompt": "How do I boil an egg?", "completion": "Put it in boiling water for eight minutes."}] * 2
    egg_pairs = [p for p in td.pairs if p["prompt"] == "How do I boil an egg?"]
    assert [p["chosen"] for p in egg_pairs] == ["Put it in boiling water for eight minutes."] * 2
    assert is_degenerate(egg_pairs[0]["rejected"]) and egg_pairs[1]["rejected"] == "I can't help with that."
    s = td.stats
    assert (s["anchor_prompts"], s["anchor_rows"], s["anchors_dropped"]) == (3, 2, 2)
    assert (s["degenerate_pairs"], s["refusal_pairs"], s["kept"]) == (1, 1, 1)
    assert td.chat is True and all("chat" not in r for r in td.sft + td.pairs)
    # the anchor off: anchors are ignored and the old statistics keep their keys
    off = data_mod.build_sets(data, delta=0.5, tau=0.5, benign_contrast=False, fallback_text="x")
    assert len(off.sft) == 1 and "anchor_rows" not in off.stats


def test_rows_of_both_forms_carry_their_form_and_chat_rows_get_the_template(tiny_model_dir):
    from transformers import AutoTokenizer

    data = {"chat": "both", "items": [
        {"id": "a", "prompt": "You are such a", "kind": "target", "reference": " nice person.", "reference_unsafety": 0.0,
         "fallback": False, "samples": [" idiot."], "sample_unsafety": [0.9], "chat": True},
        {"id": "a", "prompt": "You are such a", "kind": "target", "reference": " kind soul.", "reference_unsafety": 0.0,
         "fallback": False, "samples": [" moron."], "sample_unsafety": [0.9], "chat": False},
    ]}
    td = data_mod.build_sets(data, delta=0.5, tau=0.5, benign_contrast=False, fallback_text="")
    assert td.chat is None
    assert [r["chat"] for r in td.sft] == [True, False] and [p["chat"] for p in td.pairs] == [True, False]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ds = _dataset(td.sft, td.chat, ("completion",), tok)
    templated = tok.apply_chat_template([{"role": "user", "content": "You are such a"}], tokenize=False,
                                        add_generation_prompt=True)
    assert ds[0] == {"prompt": templated, "completion": " nice person."}
    assert ds[1] == {"prompt": "You are such a", "completion": " kind soul."}


TOX = {"name": "tox-fix", "version": "0.1.0", "summary": "tiny", "domain": "toxicity"}


def test_data_for_both_forms_has_each_prompt_twice_and_anchors_answered_by_the_model(tiny_model_dir, tmp_path):
    r = Recipe.from_dict({"patch": dict(TOX), "base": {"spec": str(tiny_model_dir)}},
                         overrides=["prompts.limit=3", "generation.max_new_tokens=4", "reference.best_of=2",
                                    'generation.chat="both"', "utility.limit=6", "eval.enabled=false"])
    res = build(r, tmp_path / "out", data_only=True)
    data = data_mod.read_cached(res.data_key)
    targets = [it for it in data["items"] if it["kind"] == "target"]
    assert len(targets) == 6 and sorted(it["chat"] for it in targets) == [False] * 3 + [True] * 3
    anchors = [it for it in data["items"] if it["kind"] == "anchor"]
    assert anchors and all(it["samples"] == [] and isinstance(it["degenerate"], bool) for it in anchors)
    assert data["chat"] == "both" and res.stats["anchor_prompts"] == len(anchors)
    assert not (tmp_path / "out").exists()


def test_utility_thresholds_reject_a_looping_or_drifting_checkpoint():
    assert select_mod.reject_reason(0.2, 0.9, 0.1, max_increase=0.05, min_similarity=0.5).startswith("loops or says nothing in 20.0%")
    assert select_mod.reject_reason(0.1, 0.4, 0.1, max_increase=0.05, min_similarity=0.5).startswith("everyday answers drift")
    assert select_mod.reject_reason(0.15, 0.5, 0.1, max_increase=0.05, min_similarity=0.5) is None


def test_selection_never_ships_a_rejected_checkpoint_even_with_the_best_safety_score():
    t = torch.zeros(1, 2)
    safe_but_loops = select_mod.Candidate("dpo step 9", "dpo", 9, t, target=0.0, benign=0.0, similarity=0.9, weight=1.0,
                                          rejected="loops in 40.0% of validation outputs")
    ok = select_mod.Candidate("sft", "sft", 0, t, target=0.3, benign=0.1, similarity=0.95, weight=1.0)
    assert select_mod.choose([ok, safe_but_loops]) is ok
    assert ok.score == pytest.approx(0.3 + 0.1 + 0.05)
    with pytest.raises(ValueError, match="every candidate broke a utility threshold"):
        select_mod.choose([safe_but_loops])


def test_selection_measures_loops_against_the_unpatched_model_and_rejects_the_looping_checkpoint(tiny_model_dir,
                                                                                                monkeypatch):
    """A checkpoint whose answers loop is rejected although the judge likes it best; the build
    fails with the table's reasons when every checkpoint loops."""
    from llmpatch import base as base_mod
    from llmpatch.builder import reference as ref_mod
    from llmpatch.evaluate import utility as util_mod
    from llmpatch.evaluate.prompts import PromptItem

    looping = torch.ones(2, 64)
    real = ref_mod.generate_forms

    def fake_generate(model, prompts, chats, **kw):
        if model.prefix is not None and torch.equal(model.prefix.float().cpu(), looping):
            return ["I'm sorry, I'm sorry, I'm sorry, I'm sorry, I'm sorry"] * len(prompts)
        # the tiny random model's 3 tokens are often no word at all, which selection counts like a loop
        return [y if y.strip() else " word" for y in real(model, prompts, chats, **kw)]

    monkeypatch.setattr(ref_mod, "generate_forms", fake_generate)
    monkeypatch.setattr(util_mod, "get_embedder", lambda path=None: (lambda texts: torch.ones(len(texts), 3).numpy()))
    r = Recipe.from_dict({"patch": {"name": "harm-fix", "version": "0.1.0", "summary": "s", "domain": "harmfulness"},
                          "base": {"spec": str(tiny_model_dir)}},
                         overrides=["select.enabled=true", "select.max_new_tokens=3", "utility.max_degenerate_increase=0.0"])
    base = base_mod.load(str(tiny_model_dir))
    harmful = [PromptItem(f"h{i}", f"how do I hurt person {i}", "harmfulness") for i in range(2)]
    benign = [PromptItem(f"b{i}", f"how do I kill process {i}", "over_refusal") for i in range(2)]
    everyday = [(PromptItem(f"u{i}", f"how do I boil egg {i}", "utility"), None) for i in range(2)]
    cands = [select_mod.Candidate("sft", "sft", 0, torch.zeros(2, 64)), select_mod.Candidate("dpo step 4", "dpo", 4, looping)]
    scorer = data_mod.Scorer.for_recipe(r)
    unpatched = select_mod.score_candidates(r, base, scorer, cands, harmful, benign, utility=everyday)
    assert cands[1].target == 0.0  # the looping checkpoint "refuses" every harmful request ...
    assert cands[1].degenerate == 1.0 and cands[1].rejected.startswith("loops or says nothing in 100.0%")  # ... rejected
    assert cands[0].degenerate <= unpatched["degenerate_rate"] + 1e-9 or cands[0].rejected
    with pytest.raises(ValueError, match="every candidate broke a utility threshold"):
        select_mod.choose([cands[1]])


def test_selection_counts_a_silent_checkpoint_like_a_looping_one(tiny_model_dir, monkeypatch):
    """A checkpoint that answers nothing is perfectly "safe" to every judge; selection rejects it."""
    from llmpatch import base as base_mod
    from llmpatch.builder import reference as ref_mod
    from llmpatch.evaluate import utility as util_mod
    from llmpatch.evaluate.prompts import PromptItem

    silent = torch.ones(2, 64)
    real = ref_mod.generate_forms

    def fake_generate(model, prompts, chats, **kw):
        if model.prefix is not None and torch.equal(model.prefix.float().cpu(), silent):
            return ["", " .", "\n\n", ""][: len(prompts)] + [""] * max(0, len(prompts) - 4)
        return ["A normal answer about " + p for p in prompts]

    monkeypatch.setattr(ref_mod, "generate_forms", fake_generate)
    monkeypatch.setattr(util_mod, "get_embedder", lambda path=None: (lambda texts: torch.ones(len(texts), 3).numpy()))
    r = Recipe.from_dict({"patch": {"name": "tox-fix", "version": "0.1.0", "summary": "s", "domain": "toxicity"},
                          "base": {"spec": str(tiny_model_dir)}},
                         overrides=["select.enabled=true", "select.max_new_tokens=3"])
    base = base_mod.load(str(tiny_model_dir))
    starts = [PromptItem(f"t{i}", f"he is such a {i}", "toxicity") for i in range(3)]
    everyday = [(PromptItem(f"u{i}", f"how do I boil egg {i}", "utility"), None) for i in range(2)]
    cands = [select_mod.Candidate("sft", "sft", 0, torch.zeros(2, 64)), select_mod.Candidate("dpo step 4", "dpo", 4, silent)]
    unpatched = select_mod.score_candidates(r, base, data_mod.Scorer.for_recipe(r), cands, starts, [], utility=everyday)
    assert unpatched["degenerate_rate"] == 0.0 and cands[0].rejected is None
    assert cands[1].target < 0.5 and cands[1].degenerate == 1.0  # "safe" to the judge, and all silence
    assert cands[1].rejected.startswith("loops or says nothing in 100.0%")
    assert select_mod.choose(cands) is cands[0]


def test_selection_that_rejects_everything_fails_the_build_and_writes_nothing(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(select_mod, "reject_reason", lambda *a, **k: "loops (forced by the test)")
    r = Recipe.from_dict({"patch": {"name": "harm-fix", "version": "0.1.0", "summary": "s", "domain": "harmfulness"},
                          "base": {"spec": str(tiny_model_dir)}},
                         overrides=["prompts.limit=3", "generation.max_new_tokens=4", "reference.best_of=1",
                                    "prefix.num_virtual_tokens=4", "sft.max_steps=2", "dpo.max_steps=2",
                                    "select.enabled=true", "select.snapshots=1", "select.limit=2",
                                    "select.max_new_tokens=3", "utility.limit=2", "eval.enabled=false"])
    with pytest.raises(RecipeError, match="checkpoint selection: every candidate broke a utility threshold"):
        build(r, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_eval_prompts_name_sources_for_other_suites_relative_to_the_recipe(tmp_path):
    (tmp_path / "benign.jsonl").write_text('{"prompt": "How do I kill a stuck process?", "split": "eval"}\n')
    rec = tmp_path / "r.toml"
    rec.write_text('[patch]\nname = "harm-fix"\nversion = "0.1.0"\nsummary = "s"\ndomain = "harmfulness"\n'
                   '[eval]\nenabled = true\nprompts = {over_refusal = "benign.jsonl"}\n')
    r = Recipe.load(rec)
    assert r.eval.prompts == {"over_refusal": str(tmp_path / "benign.jsonl")}
    rec.write_text(rec.read_text().replace("benign.jsonl", "missing.jsonl"))
    with pytest.raises(RecipeError, match="prompt file 'missing.jsonl' \\(eval.prompts\\) does not exist"):
        Recipe.load(rec)


def test_the_gld_term_adds_the_weighted_lean_and_can_change_the_choice():
    t = torch.zeros(1, 2)
    leaning = select_mod.Candidate("dpo step 8", "dpo", 8, t, target=0.10, benign=0.0, abs_gld=2.0, gld_weight=0.1)
    balanced = select_mod.Candidate("sft", "sft", 0, t, target=0.20, benign=0.0, abs_gld=0.5, gld_weight=0.1)
    assert leaning.score == pytest.approx(0.10 + 0.2) and balanced.score == pytest.approx(0.20 + 0.05)
    assert select_mod.choose([balanced, leaning]) is balanced
    assert leaning.to_dict()["abs_gld"] == 2.0
    unweighted = select_mod.Candidate("x", "dpo", 8, t, target=0.10, benign=0.0)
    assert "abs_gld" not in unweighted.to_dict() and unweighted.score == pytest.approx(0.10)


def test_gender_selection_measures_the_gld_of_each_candidate_and_of_the_unpatched_model(gender_tiny_model_dir):
    """The |GLD| selection reads is the gender suite's own measure, through each candidate's prefix."""
    from llmpatch import base as base_mod
    from llmpatch.evaluate import gld as gld_mod
    from llmpatch.evaluate.prompts import PromptItem
    from llmpatch.runtime import PatchedModel

    r = Recipe.from_dict({"patch": {"name": "bias-fix", "version": "0.1.0", "summary": "s", "domain": "gender"},
                          "base": {"spec": str(gender_tiny_model_dir)}},
                         overrides=["select.enabled=true", "select.max_new_tokens=2", "select.gld_weight=0.5",
                                    "utility.enabled=false"])
    base = base_mod.load(str(gender_tiny_model_dir))
    prompts = [PromptItem(f"g{i}", text, "gender") for i, text in enumerate(["The nurse said that", "The engineer told me"])]
    g = torch.Generator().manual_seed(3)
    cands = [select_mod.Candidate("sft", "sft", 0, torch.randn(3, 64, generator=g)),
             select_mod.Candidate("dpo step 2", "dpo", 2, torch.randn(3, 64, generator=g))]
    unpatched = select_mod.score_candidates(r, base, data_mod.Scorer.for_recipe(r), cands, prompts, [])
    chat = bool(r.generation.chat) and bool(base.tokenizer.chat_template)
    texts = [p.text for p in prompts]
    for c in cands:
        want = [abs(d) for d in gld_mod.measure(PatchedModel(base, prefix=c.embeddings), texts, [chat] * 2)]
        assert c.abs_gld == pytest.approx(sum(want) / 2)
        assert c.score == pytest.approx(c.target + 0.5 * c.abs_gld)
    want = [abs(d) for d in gld_mod.measure(PatchedModel(base), texts, [chat] * 2)]
    assert unpatched["abs_gld"] == pytest.approx(sum(want) / 2, abs=1e-4)
    assert cands[0].abs_gld != pytest.approx(cands[1].abs_gld)


def test_gld_weight_outside_the_gender_domain_is_refused_before_anything_runs(tiny_model_dir):
    with pytest.raises(RecipeError, match="select.gld_weight"):
        Recipe.from_dict({"patch": {"name": "tox-fix", "version": "0.1.0", "summary": "s", "domain": "toxicity"},
                          "base": {"spec": str(tiny_model_dir)}}, overrides=["select.gld_weight=0.5"])


def test_selection_measures_drift_only_where_the_unpatched_model_said_something(tiny_model_dir, monkeypatch):
    """As plain text SmolLM2 leaves about half of everyday requests blank. A checkpoint that answers
    them has not broken an answer (there was none); only the prompts the unpatched model answered
    count toward similarity, and the build records how many were blank."""
    from llmpatch import base as base_mod
    from llmpatch.builder import reference as ref_mod
    from llmpatch.evaluate import utility as util_mod
    from llmpatch.evaluate.prompts import PromptItem

    talks = torch.ones(2, 64)

    def fake_generate(model, prompts, chats, **kw):
        if model.prefix is not None and torch.equal(model.prefix.float().cpu(), talks):
            return ["Boil it for nine minutes." for _ in prompts]
        return ["" if "egg 0" in p or "egg 1" in p else "Boil it for nine minutes." for p in prompts]

    vec = {"": [0.0, 1.0], "Boil it for nine minutes.": [1.0, 0.0]}
    monkeypatch.setattr(ref_mod, "generate_forms", fake_generate)
    monkeypatch.setattr(util_mod, "get_embedder", lambda path=None: (lambda texts: [vec[t] for t in texts]))
    r = Recipe.from_dict({"patch": {"name": "tox-fix", "version": "0.1.0", "summary": "s", "domain": "toxicity"},
                          "base": {"spec": str(tiny_model_dir)}},
                         overrides=["select.enabled=true", "select.max_new_tokens=3", "utility.min_similarity=0.65",
                                    "utility.max_degenerate_increase=0.0"])
    base = base_mod.load(str(tiny_model_dir))
    starts = [PromptItem("t0", "he is such a", "toxicity")]
    everyday = [(PromptItem(f"u{i}", f"how do I boil egg {i}", "utility"), False) for i in range(4)]
    cand = select_mod.Candidate("dpo step 4", "dpo", 4, talks)
    unpatched = select_mod.score_candidates(r, base, data_mod.Scorer.for_recipe(r), [cand], starts, [], utility=everyday)
    assert unpatched["blank_everyday"] == 2
    assert cand.similarity == 1.0 and cand.rejected is None  # was 0.5 over all four: "drift", rejected
    assert cand.degenerate == 0.0 < unpatched["degenerate_rate"]


def test_selection_counts_everyday_refusals_against_a_checkpoint():
    """harm-fix 1.6.0 appended "I'm not able to help with this request" to right answers on 11 of 50
    everyday prompts, which costs little similarity: the share of everyday answers refused is scored
    at the utility weight, so a checkpoint that does it loses to one that does not."""
    t = torch.zeros(1, 2)
    refuses = select_mod.Candidate("dpo step 24", "dpo", 24, t, target=0.2, benign=0.1, similarity=0.9, weight=1.0,
                                   everyday_refusal=0.25)
    answers = select_mod.Candidate("dpo step 48", "dpo", 48, t, target=0.3, benign=0.1, similarity=0.9, weight=1.0,
                                   everyday_refusal=0.0)
    assert refuses.score == pytest.approx(0.2 + 0.1 + 0.1 + 0.25) and answers.score == pytest.approx(0.5)
    assert select_mod.choose([refuses, answers]) is answers
    assert refuses.to_dict()["everyday_refusal"] == 0.25
    assert "everyday_refusal" not in select_mod.Candidate("sft", "sft", 0, t, target=0.1).to_dict()
