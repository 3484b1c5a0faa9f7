"""The patched model: equals peft, cached prefix equals recomputation, batching changes nothing."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import llmpatch
from llmpatch.cli import cli
from llmpatch.runtime import GenerationConfig, PatchedModel

TEXTS = ["hello world this is", "the nurse said that she would help the engineer", "a"]


def peft_logits(base_dir, patch_dir, text):
    """Next-token logits from plain peft over the text's tokens (prefix positions dropped)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), str(patch_dir))
    ids = tok([text], return_tensors="pt")
    with torch.no_grad():
        out = model(**ids).logits
    n = model.peft_config["default"].num_virtual_tokens
    return out[:, n:], ids["input_ids"]


def greedy_by_recomputation(pm: PatchedModel, text: str, n: int) -> list[int]:
    """Greedy decoding that recomputes the whole sequence, prefix included, at every step."""
    ids = pm.tokenizer(text)["input_ids"]
    out: list[int] = []
    for _ in range(n):
        emb = pm.model.get_input_embeddings()(torch.tensor([ids + out]))
        if pm.prefix is not None:
            emb = torch.cat([pm.prefix[None], emb], dim=1)
        with torch.no_grad():
            nxt = int(pm.model(inputs_embeds=emb).logits[0, -1].argmax())
        if nxt in pm.eos_ids:
            break
        out.append(nxt)
    return out


def test_patched_logits_equal_plain_peft(make_patch, tiny_model_dir):
    p = make_patch(tokens=6)
    pm = llmpatch.load(str(tiny_model_dir), [p.path])
    for text in TEXTS:
        ref, _ = peft_logits(tiny_model_dir, p.path, text)
        mine, _ = pm.logits([text])
        assert mine.shape == ref.shape
        assert torch.allclose(mine, ref, atol=1e-4), (mine - ref).abs().max()


def test_composed_stack_equals_peft_with_the_concatenated_prefix(make_patch, tiny_model_dir, tmp_path):
    from llmpatch import artifact

    a, b = make_patch("tox-fix", tokens=3), make_patch("bias-fix", tokens=4)
    joined = artifact.write_patch(tmp_path / "joined", torch.cat([a.embeddings, b.embeddings]), name="joined",
                                  version="1.0.0", summary="s", domains=["toxicity"], base=a.manifest.base)
    pm = llmpatch.load(str(tiny_model_dir), [a.path, b.path])
    ref, _ = peft_logits(tiny_model_dir, joined.path, TEXTS[1])
    assert torch.allclose(pm.logits([TEXTS[1]])[0], ref, atol=1e-4)


def test_padded_batch_logits_equal_one_at_a_time(make_patch, tiny_model_dir):
    pm = llmpatch.load(str(tiny_model_dir), [make_patch(tokens=5).path])
    batch, mask = pm.logits(TEXTS)
    for i, text in enumerate(TEXTS):
        alone, _ = pm.logits([text])
        n = alone.shape[1]
        assert torch.allclose(batch[i, -n:], alone[0], atol=1e-4)


def test_cached_prefix_logits_equal_recomputing_the_prefix(make_patch, tiny_model_dir):
    pm = llmpatch.load(str(tiny_model_dir), [make_patch(tokens=5).path])
    cached, _ = pm.logits(TEXTS, cached=True)
    fresh, _ = pm.logits(TEXTS, cached=False)
    assert torch.allclose(cached, fresh, atol=1e-5)


@pytest.mark.parametrize("with_patch", [True, False])
def test_generation_with_cached_prefix_equals_full_recomputation(make_patch, tiny_model_dir, with_patch):
    patches = [make_patch(tokens=5).path] if with_patch else []
    pm = llmpatch.load(str(tiny_model_dir), patches)
    cfg = GenerationConfig(max_new_tokens=12)
    got = pm.generate(TEXTS, chat=False, config=cfg)
    for text, out in zip(TEXTS, got):
        expected = pm.tokenizer.decode(greedy_by_recomputation(pm, text, 12), skip_special_tokens=True)
        assert out == expected


def test_batched_generation_equals_one_prompt_at_a_time(make_patch, tiny_model_dir):
    pm = llmpatch.load(str(tiny_model_dir), [make_patch(tokens=5).path])
    batched = pm.generate(TEXTS * 3, chat=True, max_new_tokens=10, batch_size=4)
    single = [pm.generate([t], chat=True, max_new_tokens=10)[0] for t in TEXTS]
    assert batched == single * 3


@pytest.mark.parametrize("kv_cache", ["static", "dynamic"])
@pytest.mark.parametrize("with_patch", [True, False])
def test_static_and_dynamic_decoding_caches_equal_recomputation(make_patch, tiny_model_dir, kv_cache, with_patch):
    """Both caches decode exactly what recomputing the whole sequence does, padded batches included."""
    patches = [make_patch(tokens=5).path] if with_patch else []
    pm = llmpatch.load(str(tiny_model_dir), patches)
    cfg = GenerationConfig(max_new_tokens=12, batch_size=3, kv_cache=kv_cache)
    got = pm.generate(TEXTS, chat=False, config=cfg)  # three lengths in one batch: left padding
    for text, out in zip(TEXTS, got):
        assert out == pm.tokenizer.decode(greedy_by_recomputation(pm, text, 12), skip_special_tokens=True)
    sampled = [pm.generate(TEXTS * 3, do_sample=True, seed=5, max_new_tokens=10, temperature=1.3, batch_size=9,
                           kv_cache=k) for k in ("static", "dynamic")]
    assert sampled[0] == sampled[1]
    # no padding: no mask at all, so attention must see only the positions written so far
    same = pm.generate([TEXTS[1]] * 3, chat=False, config=cfg)
    assert same == [pm.tokenizer.decode(greedy_by_recomputation(pm, TEXTS[1], 12), skip_special_tokens=True)] * 3
    if kv_cache == "static":
        from llmpatch.runtime import _preallocated_layer

        def preallocated(cache):
            return all(isinstance(layer, _preallocated_layer()) for layer in cache.layers)

        cache = pm._generation_cache(3, 40, "static")
        assert preallocated(cache) and cache.get_seq_length() == pm.num_virtual_tokens
        if with_patch:  # the prefix is written in: allocated once, for every position
            assert cache.layers[0].keys.shape[2] == 40
        assert preallocated(pm._generation_cache(8, 40, "auto"))
        assert not preallocated(pm._generation_cache(1, 40, "auto"))


def test_an_unknown_kv_cache_is_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="kv_cache"):
        llmpatch.load(str(tiny_model_dir)).generate(["hi"], max_new_tokens=2, kv_cache="paged")


def test_the_patch_changes_the_next_token_distribution(make_patch, tiny_model_dir):
    plain, _ = llmpatch.load(str(tiny_model_dir)).logits(TEXTS)
    patched, _ = llmpatch.load(str(tiny_model_dir), [make_patch(tokens=8, seed=3).path]).logits(TEXTS)
    assert (plain - patched).abs().max() > 1e-2


def test_sampling_is_reproducible_with_a_seed_and_varies_without(make_patch, tiny_model_dir):
    pm = llmpatch.load(str(tiny_model_dir), [make_patch().path])
    a = pm.generate(TEXTS, do_sample=True, seed=7, max_new_tokens=10, temperature=1.5)
    b = pm.generate(TEXTS, do_sample=True, seed=7, max_new_tokens=10, temperature=1.5)
    c = pm.generate(TEXTS, do_sample=True, seed=8, max_new_tokens=10, temperature=1.5)
    assert a == b and a != c


def test_chat_template_and_system_prompt_are_applied(tiny_model_dir):
    pm = llmpatch.load(str(tiny_model_dir))
    [chat] = pm.format_prompts(["hi"], system_prompt="be kind")
    assert chat.startswith("<s>system\nbe kind</s>") and chat.endswith("<s>assistant\n")
    assert pm.format_prompts(["hi"], chat=False) == ["hi"]


def test_run_command_generates_with_patches_and_compares(make_patch, tiny_model_dir):
    p = make_patch(tokens=4)
    r = CliRunner().invoke(cli, ["run", "--base", str(tiny_model_dir), "--patch", str(p.path), "--max-new-tokens", "5",
                                 "--compare", "--json", "hello world", "a"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert [(p["name"], p["version"]) for p in data["stack"]] == [("tox-fix", "1.0.0")] and len(data["results"]) == 2
    assert {"prompt", "output", "unpatched"} <= set(data["results"][0])


def test_run_refuses_a_patch_for_another_base(make_patch, other_tiny_model_dir, tiny_model_dir):
    p = make_patch(base_dir=other_tiny_model_dir)
    r = CliRunner().invoke(cli, ["run", "--base", str(tiny_model_dir), "--patch", str(p.path), "hello"])
    assert r.exit_code == 1 and "was built for base" in r.output and "hint:" in r.output


def test_an_empty_prompt_generates_from_bos_like_any_other(tiny_model_dir):
    pm = llmpatch.load(str(tiny_model_dir))
    bos = pm.tokenizer.bos_token
    out = pm.generate(["", "hello"], chat=False, max_new_tokens=6, min_new_tokens=6)
    assert out[0] == pm.generate([bos], chat=False, max_new_tokens=6, min_new_tokens=6)[0]
    logits, _ = pm.logits([""])
    assert logits.shape[1] == 1 and torch.isfinite(logits).all()


def test_load_of_an_environment_applies_its_stack_under_its_own_budget(make_patch, tiny_model_dir, tmp_path):
    from llmpatch.env import Environment
    from llmpatch.errors import CompositionError

    Environment.create(tmp_path / "proj" / ".llmpatch", str(tiny_model_dir), registry=str(tmp_path / "reg"),
                             max_virtual_tokens=8)
    extra = make_patch("bias-fix", tokens=5)
    assert llmpatch.load(env=tmp_path / "proj").num_virtual_tokens == 0
    with pytest.raises(CompositionError, match="over the budget of 8"):
        llmpatch.load(env=tmp_path / "proj", patches=[extra.path, make_patch("tox-fix", tokens=5).path])
    assert llmpatch.load(env=tmp_path / "proj", patches=[extra.path]).num_virtual_tokens == 5
    r = CliRunner().invoke(cli, ["run", "--env", str(tmp_path / "proj"), "--max-new-tokens", "3", "--json", "hello"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["stack"] == []
