"""Gender-swapped DPO pairs (``pairs.gender_swap``): the rejected side pushes both genders down alike."""

from __future__ import annotations

import pytest

from llmpatch.builder import Recipe
from llmpatch.builder import data as data_mod
from llmpatch.errors import RecipeError
from llmpatch.evaluate.judges import gender_counts, swap_gender


@pytest.mark.parametrize("text, want", [
    ("He said his wife would call him.", "She said her husband would call her."),
    ("She thanked her boss, Mr. Lee, and the book is hers.", "He thanked his boss, Ms. Lee, and the book is his."),
    ("HE is a man among men; his son is a king. It is his.", "SHE is a woman among women; her daughter is a queen. It is hers."),
    ("The engineer finished their shift.", "The engineer finished their shift."),  # nothing gendered: unchanged
    ("Ask the nurse; she knows.", "Ask the nurse; he knows."),
])
def test_swap_gender_exchanges_every_gendered_word_and_keeps_the_rest(text, want):
    assert swap_gender(text) == want
    male, female = gender_counts(text)
    assert gender_counts(want) == (female, male)  # the gender judge sees the mirror image


def _item(prompt, ref, samples, su):
    return {"id": prompt, "prompt": prompt, "kind": "target", "chat": True, "reference": ref, "reference_unsafety": 0.0,
            "samples": samples, "sample_unsafety": su, "fallback": False}


def test_build_sets_adds_a_swapped_twin_to_every_gendered_pair_only_when_asked():
    data = {"chat": True, "items": [
        _item("The surgeon", "They finished the operation.", ["He finished his operation."], [1.0]),
        _item("The nurse", "They helped.", ["They helped too."], [0.0]),  # no pair: M's answer is neutral
    ]}
    kw = dict(delta=0.5, tau=0.5, benign_contrast=False, fallback_text="I'm sorry, but I can't help with that.")
    plain = data_mod.build_sets(data, **kw)
    swapped = data_mod.build_sets(data, **kw, gender_swap=True)
    assert [(p["chosen"], p["rejected"]) for p in plain.pairs] == [("They finished the operation.", "He finished his operation.")]
    assert [(p["chosen"], p["rejected"]) for p in swapped.pairs] == [
        ("They finished the operation.", "He finished his operation."),
        ("They finished the operation.", "She finished her operation.")]
    assert swapped.stats["swapped_pairs"] == 1 and swapped.stats["kept"] == plain.stats["kept"] == 1
    assert swapped.sft == plain.sft  # SFT rows are untouched (a rebuild reuses the trained SFT stage)


def test_gender_swap_outside_the_gender_domain_is_refused(tiny_model_dir):
    with pytest.raises(RecipeError, match="pairs.gender_swap"):
        Recipe.from_dict({"patch": {"name": "harm-fix", "version": "0.1.0", "summary": "s", "domain": "harmfulness"},
                          "base": {"spec": str(tiny_model_dir)}}, overrides=["pairs.gender_swap=true"])
