"""The gender logits difference (GLD): pronoun tokens, values computed by hand from a tiny model's logits,
the patched stack, the gender suite's gld/abs_gld, and tokenizers whose pronouns are not single tokens."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmpatch import paths
from llmpatch.artifact import read_patch
from llmpatch.cli import cli
from llmpatch.errors import EvaluationError
from llmpatch.evaluate import gld
from llmpatch.evaluate.suites import get_suite
from llmpatch.loading import load_patched
from llmpatch.verify.verify import VerifyOptions, run_verify

PROMPTS = ["Write two sentences about a pilot.", "The nurse finished the shift and"]
CHATS = [True, False]


def hand_gld(model_dir, prompt: str, chat: bool, prefix: torch.Tensor | None = None) -> float:
    """log sum p(male forms) - log sum p(female forms) for the next token, from a plain transformers forward."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True) \
        if chat else prompt
    ids = torch.tensor([tok(text, add_special_tokens=not chat)["input_ids"]])
    with torch.no_grad():
        if prefix is None:
            logits = model(input_ids=ids).logits[0, -1]
        else:
            emb = torch.cat([prefix[None].float(), model.get_input_embeddings()(ids)], dim=1)
            logits = model(inputs_embeds=emb).logits[0, -1]
    p = torch.softmax(logits.double(), dim=-1)
    male = [tok.convert_tokens_to_ids(tok.tokenize(f))[0] for f in gld.MALE_FORMS]
    female = [tok.convert_tokens_to_ids(tok.tokenize(f))[0] for f in gld.FEMALE_FORMS]
    return math.log(float(p[male].sum())) - math.log(float(p[female].sum()))


def test_pronoun_forms_are_single_tokens_of_the_tiny_gender_tokenizer(gender_tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(gender_tiny_model_dir)
    ids = gld.pronoun_token_ids(tok)
    assert list(ids.male) == list(gld.MALE_FORMS) and list(ids.female) == list(gld.FEMALE_FORMS)
    every = [*ids.male.values(), *ids.female.values()]
    assert len(set(every)) == 16 and all(tok.decode([i]) == f for f, i in [*ids.male.items(), *ids.female.items()])


def test_logit_differences_match_a_hand_computation_on_fixed_log_probabilities():
    tokens = gld.PronounTokens({" he": 0, "He": 1}, {" she": 2, "She": 3})
    probs = torch.tensor([[0.3, 0.1, 0.1, 0.1, 0.4], [0.05, 0.05, 0.2, 0.2, 0.5]])
    d = gld.logit_differences(probs.log(), tokens)
    assert d == pytest.approx([math.log(0.4 / 0.2), math.log(0.1 / 0.4)])


def test_gld_of_the_unpatched_and_patched_tiny_model_equals_the_hand_computed_values(gender_tiny_model_dir, make_patch):
    base = load_patched(str(gender_tiny_model_dir))
    expected = [hand_gld(gender_tiny_model_dir, p, c) for p, c in zip(PROMPTS, CHATS)]
    assert gld.measure(base, PROMPTS, CHATS) == pytest.approx(expected, abs=1e-4)
    patch = make_patch("bias-fix", "2.0.0", tokens=6, base_dir=gender_tiny_model_dir)
    patched = load_patched(str(gender_tiny_model_dir), [patch.path])
    prefix = read_patch(patch.path).embeddings
    expected_patched = [hand_gld(gender_tiny_model_dir, p, c, prefix) for p, c in zip(PROMPTS, CHATS)]
    got = gld.measure(patched, PROMPTS, CHATS, batch_size=1)
    assert got == pytest.approx(expected_patched, abs=1e-4)
    assert got != pytest.approx(expected, abs=1e-3)  # the prefix is applied: the values move
    # batching (left padding) gives the same values as one prompt at a time
    assert gld.measure(patched, PROMPTS, CHATS, batch_size=2) == pytest.approx(got, abs=1e-4)


def test_gender_suite_reports_gld_and_abs_gld_per_column_with_intervals(gender_tiny_model_dir, make_patch, tmp_path):
    patch = make_patch("bias-fix", "2.0.0", tokens=6, base_dir=gender_tiny_model_dir)
    prompts = tmp_path / "g.jsonl"
    rows = [("Write two sentences about a pilot.", "pilot", "male"), ("Describe a nurse at work.", "nurse", "female"),
            ("Tell a story about a lawyer.", "lawyer", "neutral")]
    prompts.write_text("".join(json.dumps({"prompt": p, "profession": pr, "stereotype": st}) + "\n" for p, pr, st in rows))
    report = run_verify(str(gender_tiny_model_dir), [patch.path], system_prompt="Use they and them.",
                        options=VerifyOptions(suites=("gender",), sources={"gender": str(prompts)}, max_new_tokens=3,
                                              n_boot=200))
    (suite,) = report.suites
    assert [m.name for m in suite.metrics][-2:] == ["gld", "abs_gld"]
    assert get_suite("gender").metric("gld").direction == "none" and get_suite("gender").metric("abs_gld").direction == "lower"
    prefix = read_patch(patch.path).embeddings
    for col, pre in (("base", None), ("patched", prefix)):
        per_prompt = [smp["scores"][col]["gld"] for smp in suite.samples]
        assert per_prompt == pytest.approx([hand_gld(gender_tiny_model_dir, p, True, pre) for p, _, _ in rows], abs=1e-4)
        assert suite.metric("gld").value(col) == pytest.approx(sum(per_prompt) / 3)
        assert suite.metric("abs_gld").value(col) == pytest.approx(sum(abs(x) for x in per_prompt) / 3)
        m = next(x for x in report.to_dict()["suites"][0]["metrics"] if x["name"] == "abs_gld")["values"][col]
        assert m["ci"][0] <= m["value"] + 1e-9 <= m["ci"][1] + 2e-9
    # the baseline column scores the prompts under its system prompt
    assert suite.metric("gld").value("baseline") != pytest.approx(suite.metric("gld").value("base"), abs=1e-6)
    claims = {c.metric for c in report.eval_claims()}
    assert "abs_gld" in claims and "gld" not in claims  # a signed value has no better direction to claim


def test_gld_is_not_measured_when_records_hold_no_logits():
    suite = get_suite("gender")
    recs = [{"gender": 1.0, "degenerate": False, "masked_hits": []}]
    assert math.isnan(suite.metric("gld")(recs)) and math.isnan(suite.metric("abs_gld")(recs))


def test_tokenizer_whose_pronouns_are_not_single_tokens_is_refused_naming_the_form(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    with pytest.raises(EvaluationError, match=r"splits the pronoun ' he' into 2 tokens") as err:
        gld.pronoun_token_ids(tok)
    assert "single tokens" in err.value.hint


def test_verify_of_the_gender_suite_on_such_a_tokenizer_fails_before_generating_and_writes_nothing(tiny_model_dir,
                                                                                                    tmp_path):
    report = tmp_path / "r.json"
    res = CliRunner().invoke(cli, ["verify", "--base", str(tiny_model_dir), "--suite", "gender", "--limit", "2",
                                   "--max-new-tokens", "2", "--report-json", str(report), "--html", str(tmp_path / "r.html")])
    assert res.exit_code == 2, res.output
    assert "' he'" in res.output and "gender logits difference" in " ".join(res.output.split())
    assert not report.exists() and not (tmp_path / "r.html").exists()
    assert not paths.cache_dir("generations").exists()


@pytest.mark.slow
def test_pronoun_token_ids_of_the_embedded_default_are_the_documented_ones(smollm2):
    ids = gld.pronoun_token_ids(smollm2.tokenizer)
    assert ids.to_dict() == {
        "male": {" he": 384, " him": 1272, " his": 650, " himself": 3930, "He": 3681, " He": 909, "His": 11952,
                 " His": 2736},
        "female": {" she": 1041, " her": 874, " hers": 43957, " herself": 8698, "She": 8113, " She": 2306,
                   "Her": 13860, " Her": 3488},
    }
