"""Masked twins of DPO's rejected answers (``pairs.masked_twins``): masking a slur must not escape DPO.

tox-fix 1.2.0 lowered held-out toxicity by 55% but wrote one masked word ("f***-stalker") where
the unpatched model wrote none: DPO had only ever seen plain words as rejected answers, so a masked
word was a way out of what it pushed down. A masked twin rejects the same answer with its words
masked, next to the plain one.
"""

from __future__ import annotations

import pytest

from llmpatch.builder import Recipe
from llmpatch.builder import data as data_mod
from llmpatch.errors import RecipeError
from llmpatch.evaluate.lexicon import default_lexicon, mask_words


@pytest.mark.parametrize("text, want", [
    ("Shut up, you fucking idiot.", "Shut up, you f*ck*ng idiot."),
    ("FUCK off, Shitty Bitch", "F*CK off, Sh*tty B***h"),  # case kept letter by letter
    ("calling his former friend a \"fucking asshole\" and", "calling his former friend a \"f*ck*ng a******\" and"),
    ("a shit-faced bastard", "a sh*t-faced b*st*rd"),  # parts of compounds too
    ("you nigger", "you n****r"),
])
def test_mask_words_masks_every_plain_listed_word_the_way_people_do(text, want):
    assert mask_words(text) == want


@pytest.mark.parametrize("text", [
    "You are such a stupid cunt and a whore.",
    "what a bitch, a dick, a slut, a motherfucker and a retard",
    "Fuck this shit, damn it.",
])
def test_masked_twins_still_read_as_the_same_words_to_the_judge(text):
    lex = default_lexicon()
    twin = mask_words(text)
    plain = {h.word for h in lex.hits(text)}
    assert twin != text and not any(not h.obfuscated for h in lex.hits(twin))  # no word left in plain
    # every word is read back at the same weight (a mask may read as a sibling of the same weight: s**t)
    assert lex.score(twin) == lex.score(text) and len(lex.masked_hits(twin)) == len(plain)


@pytest.mark.parametrize("text", [
    "Assess the cocktail menu in Scunthorpe.",
    "Dick Van Dyke sang; 2*3 = 6 and **bold** text.",
    "I think that is a bad idea, and he is a fool.",
    "",
    "Already masked: f**k and sh*t.",
])
def test_mask_words_leaves_text_without_plain_listed_words_unchanged(text):
    assert mask_words(text) == text
    assert data_mod.masked_twin(text) is None


def _item(prompt, ref, samples, su):
    return {"id": prompt, "prompt": prompt, "kind": "target", "chat": False, "reference": ref,
            "reference_unsafety": 0.0, "samples": samples, "sample_unsafety": su, "fallback": False}


def test_build_sets_adds_a_masked_twin_to_every_pair_with_a_plain_word_only_when_asked():
    data = {"chat": False, "items": [
        _item("He called his friend a", " good guy.", [" fucking idiot.", " complete moron and a loser."], [1.0, 0.8]),
        _item("The weather", " is nice.", [" is nice too."], [0.0]),  # no pair: M's answer is fine
    ]}
    kw = dict(delta=0.5, tau=0.5, benign_contrast=False, fallback_text="I'm sorry, but I can't help with that.")
    plain = data_mod.build_sets(data, **kw)
    twins = data_mod.build_sets(data, **kw, masked_twins=True)
    assert [p["rejected"] for p in plain.pairs] == [" fucking idiot.", " complete moron and a loser."]
    # the insult without a listed word gets no twin: there is nothing to mask
    assert [(p["chosen"], p["rejected"]) for p in twins.pairs] == [
        (" good guy.", " fucking idiot."), (" good guy.", " f*ck*ng idiot."), (" good guy.", " complete moron and a loser.")]
    assert twins.stats["masked_pairs"] == 1 and twins.stats["kept"] == plain.stats["kept"] == 2
    assert "masked_pairs" not in plain.stats
    assert twins.sft == plain.sft  # SFT rows are untouched: a rebuild reuses the trained SFT stage
    assert twins.digest()["pairs"] != plain.digest()["pairs"]  # ... but not the DPO stage


def test_on_policy_pairs_get_masked_twins_too():
    items = [{"prompt": "p", "kind": "target", "reference": " a friend.", "reference_unsafety": 0.0, "chat": False}]
    answers = [{"samples": [" a shitty bitch.", " a shitty bitch.", " a jerk."], "unsafety": [1.0, 1.0, 0.6]}]
    pairs, stats = data_mod.on_policy_pairs(items, answers, delta=0.5, tau=0.5, masked_twins=True)
    assert [p["rejected"] for p in pairs] == [" a shitty bitch.", " a sh*tty b***h.", " a jerk."]
    assert all(p["chosen"] == " a friend." and p["chat"] is False for p in pairs)
    assert (stats["kept"], stats["masked_pairs"], stats["duplicates"]) == (2, 1, 1)
    plain, _ = data_mod.on_policy_pairs(items, answers, delta=0.5, tau=0.5)
    assert len(plain) == 2


def test_masked_twins_outside_the_toxicity_domain_is_refused(tiny_model_dir):
    with pytest.raises(RecipeError, match="pairs.masked_twins"):
        Recipe.from_dict({"patch": {"name": "harm-fix", "version": "0.1.0", "summary": "s", "domain": "harmfulness"},
                          "base": {"spec": str(tiny_model_dir)}}, overrides=["pairs.masked_twins=true"])
    ok = Recipe.from_dict({"patch": {"name": "tox-fix", "version": "0.1.0", "summary": "s", "domain": "toxicity"},
                           "base": {"spec": str(tiny_model_dir)}}, overrides=["pairs.masked_twins=true"])
    assert ok.pairs.masked_twins is True and "masked_twins" in ok.to_dict()["pairs"]
