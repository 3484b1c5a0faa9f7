"""Recipes: defaults, --set overrides, schema validation and early, clear failures (no model loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from llmpatch.builder.recipe import Recipe, apply_overrides, defaults, parse_override
from llmpatch.cli import cli
from llmpatch.errors import RecipeError

EXAMPLES = Path(__file__).parent.parent / "examples" / "recipes"
MINIMAL = {"patch": {"name": "tox-fix", "version": "1.0.0", "summary": "test", "domain": "toxicity"}}


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "recipe.toml"
    p.write_text(text)
    return p


MINIMAL_TOML = '[patch]\nname = "tox-fix"\nversion = "1.0.0"\nsummary = "test"\ndomain = "toxicity"\n'


def test_minimal_recipe_gets_every_default_of_its_domain():
    r = Recipe.from_dict(MINIMAL)
    assert r.get("prefix.num_virtual_tokens") == 50
    assert r.get("prefix.init") == "text"
    assert r.get("dpo.reference") == "sft"
    assert r.get("judge.name") == "toxicity"
    assert r.get("generation.chat") is False  # toxicity continues sentence starts
    assert r.get("reference.kind") == "self"


def test_harmfulness_defaults_use_refusal_judge_fallback_and_benign_prompts():
    r = Recipe.from_dict({"patch": {**MINIMAL["patch"], "name": "harm-fix", "domain": "harmfulness"}})
    assert r.get("judge.name") == "refusal"
    assert r.get("reference.refusal_fallback") is True
    assert r.get("prompts.benign") == ["builtin"]
    assert r.get("generation.chat") is True


@pytest.mark.parametrize("text,path,value", [
    ("sft.lr=0.02", ["sft", "lr"], 0.02),
    ("dpo.reference=base", ["dpo", "reference"], "base"),
    ("prefix.num_virtual_tokens=20", ["prefix", "num_virtual_tokens"], 20),
    ("eval.enabled=false", ["eval", "enabled"], False),
    ('prompts.train=["a.txt", "hf:x/y"]', ["prompts", "train"], ["a.txt", "hf:x/y"]),
    ('reference.system_prompt="Be kind. Always."', ["reference", "system_prompt"], "Be kind. Always."),
])
def test_set_override_values_use_toml_syntax_and_bare_words_are_strings(text, path, value):
    assert parse_override(text) == (path, value)


def test_overrides_replace_recipe_values():
    r = Recipe.from_dict(MINIMAL, overrides=["sft.lr=0.03", "dpo.beta=0.5", "dpo.reference=base"])
    assert (r.get("sft.lr"), r.get("dpo.beta"), r.get("dpo.reference")) == (0.03, 0.5, "base")


@pytest.mark.parametrize("bad", ["sft.lr", "=3", "sft..lr=1"])
def test_malformed_override_is_refused(bad):
    with pytest.raises(RecipeError, match="FIELD.PATH=VALUE"):
        parse_override(bad)


def test_override_into_a_value_is_refused():
    with pytest.raises(RecipeError, match="not a table"):
        apply_overrides({"sft": {"lr": 1}}, ["sft.lr.x=2"])


def test_unknown_field_is_named_with_a_suggestion():
    with pytest.raises(RecipeError) as e:
        Recipe.from_dict(MINIMAL, overrides=["sft.lrr=0.01"])
    assert "'sft.lrr'" in e.value.message
    assert "sft.lr" in e.value.hint


def test_unknown_top_level_table_is_refused():
    with pytest.raises(RecipeError, match="unknown recipe field 'training_data'"):
        Recipe.from_dict({**MINIMAL, "training_data": {}})


@pytest.mark.parametrize("override,where", [
    ("sft.lr=-0.01", "sft/lr"),
    ("dpo.beta=0", "dpo/beta"),
    ("dpo.reference=mprime", "dpo/reference"),
    ("prefix.init=zeros", "prefix/init"),
    ("prefix.num_virtual_tokens=0", "prefix/num_virtual_tokens"),
    ("sft.batch_size=0", "sft/batch_size"),
])
def test_out_of_range_values_fail_with_the_field_path(override, where):
    with pytest.raises(RecipeError) as e:
        Recipe.from_dict(MINIMAL, overrides=[override])
    assert where in e.value.message


def test_unknown_domain_is_refused():
    with pytest.raises(RecipeError, match="patch.domain is 'spam'"):
        Recipe.from_dict({"patch": {**MINIMAL["patch"], "domain": "spam"}})


def test_missing_prompt_file_fails_before_anything_is_loaded(tmp_path):
    with pytest.raises(RecipeError, match="prompt file 'nope.jsonl'"):
        Recipe.from_dict(MINIMAL, overrides=['prompts.train=["nope.jsonl"]'], root=tmp_path)


def test_prompt_file_is_found_relative_to_the_recipe(tmp_path):
    (tmp_path / "p.txt").write_text("one\ntwo\n")
    r = Recipe.load(write(tmp_path, MINIMAL_TOML + '[prompts]\ntrain = ["p.txt"]\neval = ["builtin"]\n'))
    assert r.get("prompts.train") == [str(tmp_path / "p.txt")]


def test_model_reference_without_a_model_is_refused():
    with pytest.raises(RecipeError, match="reference.model is not set"):
        Recipe.from_dict(MINIMAL, overrides=["reference.kind=model"])


def test_unknown_judge_is_refused():
    with pytest.raises(RecipeError, match="judge.name"):
        Recipe.from_dict(MINIMAL, overrides=["judge.name=vibes"])


def test_bad_version_is_refused():
    with pytest.raises(RecipeError):
        Recipe.from_dict({"patch": {**MINIMAL["patch"], "version": "one.two"}})


def test_invalid_toml_names_the_file(tmp_path):
    with pytest.raises(RecipeError, match="not valid TOML"):
        Recipe.load(write(tmp_path, "[patch\nname="))


def test_recipe_digest_changes_with_a_hyper_parameter():
    a = Recipe.from_dict(MINIMAL)
    b = Recipe.from_dict(MINIMAL, overrides=["sft.lr=0.5"])
    assert a.digest() != b.digest()
    assert a.digest("prompts") == b.digest("prompts")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_example_recipes_are_valid(path):
    r = Recipe.load(path)
    assert r.get("base.spec") == "default"


def test_every_domain_default_satisfies_the_schema():
    for domain in ("toxicity", "gender", "harmfulness"):
        Recipe.from_dict({"patch": {**MINIMAL["patch"], "domain": domain}})
        assert defaults(domain)["prefix"]["num_virtual_tokens"] == 50


def test_cli_check_validates_and_prints_the_full_recipe_as_json(tmp_path):
    res = CliRunner().invoke(cli, ["build", str(write(tmp_path, MINIMAL_TOML)), "--check", "--json", "--set", "sft.lr=0.2"])
    assert res.exit_code == 0, res.output
    import json

    assert json.loads(res.output)["sft"]["lr"] == 0.2


def test_cli_reports_a_negative_learning_rate_as_a_clear_error(tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["build", str(write(tmp_path, MINIMAL_TOML)), "-o", str(out), "--set", "sft.lr=-1"])
    assert res.exit_code == 2
    assert "error:" in res.output and "sft/lr" in res.output
    assert not out.exists()


def test_cli_reports_a_missing_recipe_file(tmp_path):
    res = CliRunner().invoke(cli, ["build", str(tmp_path / "none.toml"), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "does not exist" in res.output


def test_cli_needs_an_output_directory(tmp_path):
    res = CliRunner().invoke(cli, ["build", str(write(tmp_path, MINIMAL_TOML))])
    assert res.exit_code == 2
    assert "-o DIR" in res.output
