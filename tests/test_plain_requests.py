"""Requests sent as plain text: ``generation.plain_requests`` (chat-written rows trained as plain
text too) and ``utility.silence_pairs`` (a plain-text answer preferred over saying nothing).

bias-fix 2.0.2 (chat only) wrote near-gibberish as plain text, and a rebuild with
``generation.chat = "mixed"`` went silent instead, because its gender requests and everyday
anchors, written as chat rows, were never trained (nor validated) as plain text.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from llmpatch.builder import Recipe
from llmpatch.builder import data as data_mod
from llmpatch.builder import select as select_mod
from llmpatch.builder import train as train_mod
from llmpatch.errors import RecipeError
from llmpatch.evaluate.prompts import PromptItem
from llmpatch.runtime import PatchedModel
from llmpatch.util import no_progress

GENDER = {"name": "bias-fix", "version": "0.1.0", "summary": "s", "domain": "gender"}


def _hashed(text: str) -> bool:
    return hashlib.sha256(text.encode()).digest()[0] % 2 == 0


def test_chat_written_rows_are_also_used_as_plain_text_only_when_asked():
    texts = [f"Write a short story about a nurse named Sam, number {i}." for i in range(40)]
    for t in texts:
        assert data_mod.prompt_forms("chat", "mixed", text=t) == [True]  # unchanged without the option
        assert data_mod.prompt_forms("chat", "mixed", text=t, plain_requests=True) == [_hashed(t)]
        assert data_mod.prompt_forms("chat", "mixed", anchor=True, text=t, plain_requests=True) == [_hashed(t)]
    # "mixed" splits chat-written rows about half and half, by the text, so reruns agree
    plain = sum(1 for t in texts if data_mod.prompt_forms("chat", "mixed", text=t, plain_requests=True) == [False])
    assert 8 <= plain <= 32
    assert data_mod.prompt_forms("chat", "both", plain_requests=True) == [True, False]
    assert data_mod.prompt_forms("chat", "both", anchor=True, plain_requests=True) == [True, False]
    # continuation rows and one-form recipes are untouched
    assert data_mod.prompt_forms("continuation", "mixed", anchor=True, plain_requests=True) == [False]
    assert data_mod.prompt_forms("chat", True, anchor=True, plain_requests=True) == [None]


def test_plain_requests_needs_a_two_form_recipe_and_leaves_old_cache_keys_alone(tiny_model_dir):
    with pytest.raises(RecipeError, match="plain_requests = true needs generation.chat") as err:
        Recipe.from_dict({"patch": dict(GENDER), "base": {"spec": str(tiny_model_dir)}},
                         overrides=["generation.plain_requests=true"])
    assert "mixed" in (err.value.hint or "")
    on = Recipe.from_dict({"patch": dict(GENDER), "base": {"spec": str(tiny_model_dir)}},
                          overrides=['generation.chat="mixed"', "generation.plain_requests=true",
                                     "utility.silence_pairs=true"])
    off = Recipe.from_dict({"patch": dict(GENDER), "base": {"spec": str(tiny_model_dir)}},
                           overrides=['generation.chat="mixed"'])
    assert on.generation.to_dict()["plain_requests"] is True and on.utility.to_dict()["silence_pairs"] is True
    # absent options are not written, so the data keys of recipes built before them stay the same
    assert "plain_requests" not in off.generation.to_dict() and "silence_pairs" not in off.utility.to_dict()


def test_selection_asks_chat_written_validation_prompts_as_plain_text_too(tiny_model_dir):
    """The everyday and domain validation prompts follow the forms training uses."""
    items = [PromptItem(f"g{i}", f"Describe a day in the life of a welder, take {i}.", "gender", "validation", {"form": "chat"})
             for i in range(24)]
    base = {"patch": dict(GENDER), "base": {"spec": str(tiny_model_dir)}}
    on = Recipe.from_dict(base, overrides=['generation.chat="mixed"', "generation.plain_requests=true"])
    off = Recipe.from_dict(base, overrides=['generation.chat="mixed"'])
    assert {c for _, c in select_mod._forms(off, items)} == {True}
    forms = [c for _, c in select_mod._forms(on, items)]
    assert set(forms) == {True, False} and forms == [_hashed(it.text) for it in items]
    everyday = select_mod.load_utility_validation(on)
    chat_rows = [(it, c) for it, c in everyday if it.meta.get("form") == "chat"]
    assert chat_rows and {c for _, c in chat_rows} == {True, False}
    assert all(c == _hashed(it.text) for it, c in chat_rows)


def _item(prompt, reference, kind="target", *, chat, unsafety=0.0, samples=(), sample_unsafety=()):
    return {"id": prompt, "prompt": prompt, "kind": kind, "reference": reference, "reference_unsafety": unsafety,
            "fallback": False, "samples": list(samples), "sample_unsafety": list(sample_unsafety), "degenerate": False,
            "chat": chat}


class _Utility:
    def __init__(self, **kw):
        self.__dict__.update({"enabled": True, "repeat": 1, "degenerate_pairs": False, "refusal_pairs": False,
                              "target_degenerate_share": 0.0, "silence_pairs": True}, **kw)


def test_every_plain_text_training_answer_is_preferred_over_silence():
    data = {"chat": "mixed", "items": [
        _item("The nurse finished the shift and", " they went home.", chat=False, samples=[" she went home."],
              sample_unsafety=[1.0]),
        _item("Write about a pilot.", "The pilot checked the weather.", chat=True, samples=["He flew."],
              sample_unsafety=[1.0]),
        _item("The plumber arrived and", "", chat=False, samples=[" he fixed it."], sample_unsafety=[1.0]),  # blank M'
        _item("The dancer bowed and", " he left.", chat=False, unsafety=1.0),  # M' unsafe: no SFT row
        _item("How do I boil an egg?", "\n\nPut it in boiling water.", "anchor", chat=False),
        _item("Name a fruit.", "An apple.", "anchor", chat=True),
        _item("What is 2+2?", "   ", "anchor", chat=False),  # M said nothing: dropped
    ]}
    td = data_mod.build_sets(data, delta=0.5, tau=0.5, benign_contrast=False, fallback_text="No.",
                             utility=_Utility())
    silent = [p for p in td.pairs if p["rejected"] == ""]
    assert silent == [
        {"prompt": "The nurse finished the shift and", "chosen": " they went home.", "rejected": "", "chat": False},
        {"prompt": "How do I boil an egg?", "chosen": "\n\nPut it in boiling water.", "rejected": "", "chat": False},
    ]
    assert td.stats["silence_pairs"] == 2 and td.stats["kept"] == 2  # the nurse and the pilot
    assert td.stats["pairs"] == 4
    off = data_mod.build_sets(data, delta=0.5, tau=0.5, benign_contrast=False, fallback_text="No.",
                              utility=_Utility(silence_pairs=None))
    assert not any(p["rejected"] == "" for p in off.pairs) and "silence_pairs" not in off.stats
    assert "stub_pairs" not in td.stats  # stub_pairs is its own option


def test_stub_pairs_reject_stopping_right_after_a_dialogue_label():
    """bias-fix 2.0.3 (silence pairs alone) answered 5 of 50 plain-text everyday requests with "\\n\\nA:"
    and stopped: M opens some answers with "A:", and stopping after it was not rejected by anything."""
    data = {"chat": "mixed", "items": [
        _item("What foods are rich in iron?", "\n\nA: Lentils, spinach and red meat.", "anchor", chat=False),
        _item("How do I boil an egg?", "\n\nPut it in boiling water.", "anchor", chat=False),
        _item("Name a fruit.", "A: An apple.", "anchor", chat=True),  # chat: no silence pair, no stub pair
    ]}
    td = data_mod.build_sets(data, delta=0.5, tau=0.5, benign_contrast=False, fallback_text="No.",
                             utility=_Utility(stub_pairs=True))
    stubs = [p for p in td.pairs if p["rejected"] not in ("",) and p["chosen"].startswith(p["rejected"])]
    assert stubs == [{"prompt": "What foods are rich in iron?", "chosen": "\n\nA: Lentils, spinach and red meat.",
                      "rejected": "\n\nA:", "chat": False}]
    assert td.stats["stub_pairs"] == 1 and td.stats["silence_pairs"] == 2
    assert td.stats["pairs"] == len(td.pairs)


@pytest.mark.slow
def test_dpo_on_silence_pairs_makes_stopping_at_once_less_likely(smollm2, tmp_path):
    """Real trl DPO on SmolLM2, which as plain text ends its answer before the first word with
    probability 0.3-0.7 on these requests: the empty rejected side becomes the EOS token
    (<|im_end|>, what plain-text generation stops on), and a few steps make stopping at once
    much less likely under the trained prefix than under the one it started from."""
    prompts = ["Write a short story about a nurse.", "How do I boil an egg?", "What is the capital of France?",
               "Give me tips for a job interview as an engineer."]
    answers = ["\n\nMaya had worked nights at the clinic for ten years.", "\n\nPut the egg in boiling water for 9 minutes.",
               "\n\nThe capital of France is Paris.", "\n\nPrepare examples of projects you have built."]
    pairs = [{"prompt": p, "chosen": a, "rejected": "", "chat": False} for p, a in zip(prompts, answers)] * 2
    path = smollm2.info.path
    r = Recipe.from_dict({"patch": dict(GENDER), "base": {"spec": path}},
                         overrides=["prefix.num_virtual_tokens=8", "prefix.init=random", "utility.enabled=false",
                                    "dpo.max_steps=8", "dpo.batch_size=4", "dpo.lr=0.03", 'dpo.reference="base"'])
    tok = train_mod.tokenizer_for(path)
    ds = train_mod._dataset(pairs, None, ("chosen", "rejected"), tok)
    assert ds[0]["rejected"] == "" and tok.eos_token == "<|im_end|>"  # trl appends the EOS token to it
    start = train_mod.initial_prefix(r, path)
    emb, curve, _, _ = train_mod.run_dpo(r, path, pairs, None, start, tmp_path / "dpo", no_progress)
    eos = tok.eos_token_id

    def p_stop(prefix: torch.Tensor) -> list[float]:
        lp = PatchedModel(smollm2, prefix=prefix).next_token_logprobs(prompts, chat=False)
        return lp[:, eos].exp().tolist()

    before, after = p_stop(start), p_stop(emb)
    assert curve[-1]["rewards/rejected"] < 0
    assert sum(after) < 0.5 * sum(before), (before, after)


def test_tail_refusal_pairs_reject_a_refusal_appended_to_a_right_answer():
    """harm-fix 1.6.0 continued "The past tense of the verb "to run" is" with ' "run".' and then
    "\\n\\nI'm not able to help with this request, ...": 11 of 50 everyday prompts got a refusal after
    the answer, which similarity barely sees. A tail-refusal pair prefers the answer over its first
    sentence followed by a refusal."""
    data = {"chat": "mixed", "items": [
        _item('The past tense of the verb "to run" is', ' "ran". It is an irregular verb.', "anchor", chat=False),
        _item("Name a fruit.", "An apple", "anchor", chat=True),
    ]}
    td = data_mod.build_sets(data, delta=0.5, tau=0.5, benign_contrast=False, fallback_text=["No.", "I can't help."],
                             utility=_Utility(silence_pairs=None, tail_refusal_pairs=True))
    tails = [p for p in td.pairs if p["rejected"].endswith(("No.", "I can't help."))]
    assert [(p["chosen"], p["rejected"].split("\n\n")[0]) for p in tails] == [
        (' "ran". It is an irregular verb.', ' "ran".'), ("An apple", "An")]
    assert all(p["rejected"].count("\n\n") == 1 for p in tails)
    assert td.stats["tail_refusal_pairs"] == 2 and td.stats["pairs"] == len(td.pairs)
    off = data_mod.build_sets(data, delta=0.5, tau=0.5, benign_contrast=False, fallback_text="No.",
                              utility=_Utility(silence_pairs=None))
    assert "tail_refusal_pairs" not in off.stats and len(off.pairs) == 0
