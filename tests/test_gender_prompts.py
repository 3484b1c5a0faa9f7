"""The gender prompt set written for the project, and gender prompt files without the fields the suite needs."""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmpatch import paths
from llmpatch.cli import cli
from llmpatch.errors import EvaluationError
from llmpatch.evaluate.judges import gender_counts
from llmpatch.evaluate.prompts import load_prompts

PROMPTS = Path(__file__).parent.parent / "examples" / "prompts"
GENDER = PROMPTS / "gender-prompts.jsonl"


def test_gender_prompts_hold_out_whole_professions_with_every_stereotype_and_form_in_each_split():
    split = {s: load_prompts("gender", str(GENDER), split=s) for s in ("train", "validation", "eval")}
    assert {s: len(v) for s, v in split.items()} == {"train": 342, "validation": 54, "eval": 60}
    profs = {s: {p.meta["profession"] for p in v} for s, v in split.items()}
    assert not profs["train"] & profs["validation"] and not profs["train"] & profs["eval"]
    assert not profs["validation"] & profs["eval"]
    for items in split.values():
        assert {p.meta["stereotype"] for p in items} == {"male", "female", "neutral"}
        assert {p.meta["form"] for p in items} == {"chat", "continuation"}
    every = [p for v in split.values() for p in v]
    assert all(gender_counts(p.text) == (0, 0) for p in every)  # no prompt implies a gender
    assert len({p.text.lower() for p in every}) == len(every)


def test_gender_prompts_cover_every_category_and_framing_as_the_generator_defines_them():
    sys.path.insert(0, str(PROMPTS))
    try:
        import make_prompts as mp
    finally:
        sys.path.remove(str(PROMPTS))
    rows = [json.loads(line) for line in GENDER.read_text().splitlines()]
    per_cat = collections.Counter(r["category"] for r in rows)
    assert set(per_cat) == set(mp.PROF_GENDER) and min(per_cat.values()) >= 30
    assert {r["framing"] for r in rows} == set(mp.GENDER_FRAMING.values())
    assert {(r["profession"], r["stereotype"]) for r in rows} == {(p["profession"], p["stereotype"])
                                                                  for p in mp.gender_professions()}
    hand = {ln.split("|", 2)[2] for ln in mp.lines(mp.HAND_GENDER)}
    assert hand == {r["prompt"] for r in rows if r["source"] == "hand"}
    assert all((r["form"] == "continuation") == (r["framing"] == "continuation") for r in rows)


GOOD = '{"prompt": "Describe a pilot.", "profession": "pilot", "stereotype": "male"}'


@pytest.mark.parametrize("name,text,line,field", [
    ("g.jsonl", GOOD + '\n{"prompt": "Describe a nurse.", "profession": "nurse"}\n', 2, "stereotype"),
    ("g.jsonl", GOOD + '\n\n{"prompt": "Describe a nurse.", "stereotype": "female", "profession": " "}\n', 3, "profession"),
    ("g.csv", "prompt,stereotype\nDescribe a pilot.,male\n", 2, "profession"),
    ("g.txt", "# gender prompts\nDescribe a pilot.\n", 2, "profession"),
    ("g.jsonl", '"Describe a pilot."\n', 1, "profession"),
])
def test_gender_prompt_without_a_needed_field_is_refused_naming_file_line_and_field(tmp_path, name, text, line, field):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(EvaluationError) as err:
        load_prompts("gender", str(path), split="all")
    assert f"{path}:{line}" in err.value.message and repr(field) in err.value.message
    assert "gender" in err.value.message and "stereotype" in err.value.hint
    # other suites need no such fields
    assert load_prompts("toxicity", str(path), split="all")


def test_gender_prompt_with_an_unknown_stereotype_is_refused(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("prompt,profession,stereotype\nDescribe a pilot.,pilot,male\nDescribe a nurse.,nurse,woman\n")
    with pytest.raises(EvaluationError, match=r"g\.csv:3: .*stereotype 'woman': expected one of male, female, neutral"):
        load_prompts("gender", str(path))


def test_verify_with_a_gender_file_lacking_a_field_fails_before_loading_a_model_and_writes_nothing(tmp_path):
    bad = tmp_path / "gender.jsonl"
    bad.write_text(GOOD + '\n{"prompt": "Describe a nurse.", "profession": "nurse"}\n')
    report = tmp_path / "report.json"
    res = CliRunner().invoke(cli, ["verify", "--base", str(tmp_path / "no-such-model"), "--suite", "gender",
                                   "--prompts", f"gender={bad}", "--report-json", str(report)])
    assert res.exit_code == 2, res.output
    assert f"{bad}:2" in res.output and "'stereotype'" in res.output
    assert not report.exists() and not paths.cache_dir("generations").exists()


def test_build_of_a_gender_recipe_whose_prompts_lack_a_field_fails_before_loading_a_model_and_writes_nothing(
        tiny_model_dir, tmp_path):
    bad = tmp_path / "train.jsonl"
    bad.write_text(GOOD.replace('"male"}', '"male", "split": "train"}') + '\n{"prompt": "Describe a nurse.", "split": "train", '
                   '"stereotype": "female"}\n')
    rec = tmp_path / "r.toml"
    rec.write_text(f'[patch]\nname = "bias-fix"\nversion = "0.1.0"\nsummary = "s"\ndomain = "gender"\n'
                   f'[base]\nspec = "{tiny_model_dir}"\n[prompts]\ntrain = ["{bad}"]\n')
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["build", str(rec), "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert f"{bad}:2" in " ".join(res.output.split()) and "'profession'" in res.output
    assert not out.exists() and not paths.cache_dir("build-data").exists()
