"""Issue #16: numbers are checked at the edge, bad bytes give one-line errors, and every parser is fuzzed.

Every parser of an on-disk format, given any input, returns a value or raises LlmpatchError, never
another exception (hypothesis, bounded time).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clihelp import refused, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmpatch.errors import LlmpatchError


def cli_run(*args, ok: bool | None = True):
    """Run the CLI; ``ok=False`` asserts a clean refusal (non-zero exit, no traceback)."""
    return refused(*args) if ok is False else run(*args, ok=bool(ok))


# -- item 8: numbers that are not numbers ------------------------------------------------------

@pytest.mark.parametrize("days", ["nan", "inf", "1e308", "-1", "0"])
def test_registry_init_refuses_an_expiry_that_is_not_a_sane_number_of_days(tmp_path, days):
    res = cli_run("registry", "init", tmp_path / "reg", "--expires-days", days, ok=False)
    assert "expires_days" in res.output
    assert not (tmp_path / "reg" / "config.json").exists()


@pytest.mark.parametrize("timeout", [float("nan"), -5.0, float("inf")])
def test_a_lock_timeout_that_is_not_a_sane_number_of_seconds_is_refused(tmp_path, timeout):
    from llmpatch.env.locking import EnvLock

    with pytest.raises(LlmpatchError, match="lock timeout"):
        EnvLock(tmp_path, timeout=timeout)


@pytest.mark.parametrize("rule,message", [
    ('{"metric": "toxicity.mean", "max": NaN}', "not valid JSON"),
    ('{"metric": "toxicity.mean", "min": 0.5, "max": 0.1}', "min 0.5 > max 0.1"),
])
def test_policies_refuse_nan_thresholds_and_empty_ranges(tmp_path, rule, message):
    from llmpatch.verify.policy import load_policy

    p = tmp_path / "policy.json"
    p.write_text('{"schema_version": 1, "thresholds": [' + rule + "]}")
    with pytest.raises(LlmpatchError, match=message):
        load_policy(p)


def test_a_policy_with_an_infinite_tolerance_is_refused(tmp_path):
    from llmpatch.verify.policy import load_policy

    p = tmp_path / "policy.toml"
    p.write_text("schema_version = 1\n[claims]\ntolerance = inf\n")
    with pytest.raises(LlmpatchError, match="tolerance"):
        load_policy(p)


@pytest.mark.parametrize("override", ["sft.lr=nan", "sft.epochs=inf", "sft.lr=-1"])
def test_a_recipe_override_that_is_not_a_finite_positive_number_is_refused(override):
    from llmpatch.builder.recipe import Recipe

    with pytest.raises(LlmpatchError, match="expected a (finite|positive) number|minimum"):
        Recipe.from_dict({"patch": {"name": "tox-fix", "version": "1.0.0", "summary": "s", "domain": "toxicity"}},
                         overrides=[override])


# -- item 11: one-line errors instead of tracebacks -------------------------------------------

@pytest.mark.parametrize("content", [b"\xff\xfe{}", b"[" * 100_000, b'{"a": 1, "a": 2}'])
def test_a_broken_manifest_is_a_one_line_error(make_patch, content):
    patch = make_patch()
    (patch.path / "llmpatch.json").write_bytes(content)
    res = cli_run("inspect", patch.path, ok=False)
    assert "error:" in res.output


def test_a_manifest_that_is_a_directory_is_a_one_line_error(make_patch):
    patch = make_patch()
    (patch.path / "llmpatch.json").unlink()
    (patch.path / "llmpatch.json").mkdir()
    assert "is a directory" in cli_run("inspect", patch.path, ok=False).output


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_prompt_and_policy_files_in_other_encodings_are_one_line_errors(tmp_path, encoding):
    from llmpatch.evaluate.prompts import load_prompts
    from llmpatch.verify.policy import load_policy

    prompts = tmp_path / "p.txt"
    prompts.write_bytes("caf\u00e9 na\u00efve\n".encode(encoding))
    with pytest.raises(LlmpatchError, match="UTF-8"):
        load_prompts("toxicity", str(prompts))
    policy = tmp_path / "policy.toml"
    policy.write_bytes('description = "caf\u00e9"\n'.encode(encoding))
    with pytest.raises(LlmpatchError, match="UTF-8"):
        load_policy(policy)


def test_a_three_megabyte_prompt_line_is_refused_before_tokenizing(tmp_path):
    from llmpatch.evaluate.prompts import load_prompts

    p = tmp_path / "p.txt"
    p.write_text("a" * 3_000_000 + "\n")
    with pytest.raises(LlmpatchError, match="characters"):
        load_prompts("toxicity", str(p))


# -- fuzz: every parser gives a value or an LlmpatchError ------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def _documents(valid: dict) -> st.SearchStrategy[bytes]:
    """Random bytes, random JSON, and a valid document with one field replaced by a random value."""
    def mutate(args):
        key, value = args
        d = json.loads(json.dumps(valid))
        d[key] = value
        return json.dumps(d).encode()

    return st.one_of(
        st.binary(max_size=200),
        _json_values.map(lambda v: json.dumps(v).encode()),
        st.tuples(st.sampled_from(sorted(valid)), _json_values).map(mutate),
        st.just(b"[" * 5000),
    )


def _manifest(tmp_path_factory):
    import torch

    from llmpatch import artifact
    from llmpatch.manifest import BaseRef

    base = BaseRef(id="x/y", revision=None, fingerprint="sha256:" + "a" * 64, hidden_size=8, vocab_size=32,
                   architecture="LlamaForCausalLM")
    patch = artifact.write_patch(tmp_path_factory.mktemp("fuzz") / "p", torch.zeros(2, 8), name="tox-fix",
                                 version="1.0.0", summary="s", domains=["toxicity"], base=base)
    return json.loads((patch.path / "llmpatch.json").read_text())


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


def _only_llmpatch_errors(parse, data: bytes) -> None:
    try:
        parse(data)
    except LlmpatchError:
        pass


@pytest.fixture(scope="module")
def valid_manifest(tmp_path_factory):
    return _manifest(tmp_path_factory)


@FUZZ
@given(data=st.data())
def test_fuzzed_manifests_give_a_manifest_or_an_llmpatch_error(tmp_path, valid_manifest, data):
    from llmpatch.manifest import Manifest

    raw = data.draw(_documents(valid_manifest))
    f = tmp_path / "llmpatch.json"
    f.write_bytes(raw)
    _only_llmpatch_errors(lambda _: Manifest.read(f), raw)


@FUZZ
@given(data=st.data())
def test_fuzzed_indexes_give_an_index_or_an_llmpatch_error(data):
    from llmpatch.registry.index import Index

    valid = {"schema_version": 1, "index_version": 1, "updated": "2024-01-01T00:00:00Z", "expires": None, "patches": {}}
    raw = data.draw(_documents(valid))
    _only_llmpatch_errors(lambda b: list(Index.from_bytes(b, source="fuzz").entries()), raw)


@FUZZ
@given(data=st.data())
def test_fuzzed_lock_files_give_a_lock_or_an_llmpatch_error(tmp_path, data):
    from llmpatch.env.records import LockFile

    valid = {"schema_version": 1, "base": {}, "registry": None, "patches": [], "stack_id": "sha256:" + "0" * 64}
    raw = data.draw(_documents(valid))
    f = tmp_path / "llmpatch.lock"
    f.write_bytes(raw)
    _only_llmpatch_errors(lambda _: LockFile.read(f), raw)


@FUZZ
@given(data=st.data(), suffix=st.sampled_from([".json", ".toml"]))
def test_fuzzed_policies_give_a_policy_or_an_llmpatch_error(tmp_path, data, suffix):
    from llmpatch.verify.policy import load_policy

    valid = {"schema_version": 1, "thresholds": [{"metric": "toxicity.mean", "max": 0.2}], "claims": {"tolerance": 0.05}}
    raw = data.draw(_documents(valid) | st.binary(max_size=100))
    f = tmp_path / f"policy{suffix}"
    f.write_bytes(raw)
    _only_llmpatch_errors(lambda _: load_policy(f), raw)


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_fuzzed_recipes_give_a_recipe_or_an_llmpatch_error(tmp_path, raw):
    from llmpatch.builder.recipe import Recipe

    f = tmp_path / "recipe.toml"
    f.write_bytes(b'[patch]\nname = "tox-fix"\nversion = "1.0.0"\nsummary = "s"\ndomain = "toxicity"\n' + raw)
    _only_llmpatch_errors(lambda _: Recipe.load(f), raw)


@FUZZ
@given(raw=st.binary(max_size=300) | _json_values.map(lambda v: (json.dumps(v) + "\n").encode()),
       suffix=st.sampled_from([".jsonl", ".csv", ".txt"]))
def test_fuzzed_prompt_files_give_prompts_or_an_llmpatch_error(tmp_path, raw, suffix):
    from llmpatch.evaluate.prompts import load_prompts

    f = tmp_path / f"prompts{suffix}"
    f.write_bytes(raw)
    _only_llmpatch_errors(lambda _: load_prompts("toxicity", str(f)), raw)


def _valid_rotation() -> dict:
    from llmpatch import signing

    old, new = signing.SigningKey.generate("old"), signing.SigningKey.generate("new")
    return signing.KeyRotation.create(old, new, reason="r").to_dict()


_ROTATION = _valid_rotation()


@FUZZ
@given(data=st.data())
def test_fuzzed_key_rotation_files_give_a_rotation_or_an_llmpatch_error(tmp_path, data):
    from llmpatch import signing

    def mutate_statement(args):
        key, value = args
        d = json.loads(json.dumps(_ROTATION))
        d["statement"][key] = value
        return json.dumps(d).encode()

    raw = data.draw(_documents(_ROTATION) | st.tuples(st.sampled_from(sorted(_ROTATION["statement"])),
                                                      _json_values).map(mutate_statement))
    f = tmp_path / "rotation.json"
    f.write_bytes(raw)
    _only_llmpatch_errors(lambda _: signing.KeyRotation.read(f), raw)


@FUZZ
@given(data=st.data())
def test_fuzzed_revocation_lists_give_revocations_or_an_llmpatch_error(data):
    from llmpatch import paths, signing

    valid = {"schema_version": 1, "revoked": {"ab" * 32: {"revoked_at": "2026-01-01T00:00:00Z", "reason": None,
                                                          "rotation_sha256": None, "replaced_by": None}}}
    raw = data.draw(_documents(valid))
    paths.trust_dir().mkdir(parents=True, exist_ok=True)
    (paths.trust_dir() / "revoked.json").write_bytes(raw)
    _only_llmpatch_errors(lambda _: signing.revocations(), raw)
