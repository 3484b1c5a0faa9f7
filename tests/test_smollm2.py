"""The spine on the real embedded default, SmolLM2-135M-Instruct (slow: ~30 s in all)."""

from __future__ import annotations

import pytest
import torch

import llmpatch
from llmpatch import artifact, base
from llmpatch.runtime import GenerationConfig, PatchedModel

pytestmark = pytest.mark.slow

INSTRUCTION = "You are a respectful assistant. Never use insults, slurs or profanity; refuse harmful requests politely."


@pytest.fixture(scope="module")
def smol_patch(smollm2, tmp_path_factory):
    """A 50-token patch initialised from a safety instruction's token embeddings (semantic init)."""
    tok, model = smollm2.tokenizer, smollm2.model
    ids = tok(INSTRUCTION)["input_ids"]
    ids = (ids * (50 // len(ids) + 1))[:50]
    emb = model.get_input_embeddings().weight[torch.tensor(ids)].detach().clone()
    return artifact.write_patch(tmp_path_factory.mktemp("smol") / "safe-init", emb, name="safe-init", version="0.1.0",
                                summary="semantic-init patch", domains=["toxicity"], base=smollm2.info.to_ref(),
                                init=f"text:{INSTRUCTION}")


def test_embedded_default_identity(smollm2):
    info = smollm2.info
    assert info.id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert (info.hidden_size, info.vocab_size, info.architecture) == (576, 49152, "LlamaForCausalLM")
    assert info.revision.startswith("gguf-sha256:")
    assert base.identify("default").fingerprint == info.fingerprint


def test_smollm2_patched_logits_equal_plain_peft(smollm2, smol_patch):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    pm = llmpatch.load(smollm2, [smol_patch.path])
    text = "The weather today is"
    ours, _ = pm.logits([text])
    ref_base = AutoModelForCausalLM.from_pretrained(smollm2.info.path, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(ref_base, str(smol_patch.path)).eval()
    ids = smollm2.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        ref = peft_model(**ids).logits[:, 50:]
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-4), (ours - ref).abs().max()


def test_smollm2_cached_generation_equals_recomputing_the_prefix(smollm2, smol_patch):
    pm = llmpatch.load(smollm2, [smol_patch.path])
    prompts = ["Write one sentence about cats.", "What is the capital of France?"]
    got = pm.generate(prompts, max_new_tokens=12, batch_size=2)
    for prompt, out in zip(prompts, got):
        [text] = pm.format_prompts([prompt])
        ids = pm.tokenizer(text, add_special_tokens=False)["input_ids"]
        gen: list[int] = []
        for _ in range(12):
            emb = torch.cat([pm.prefix[None], pm.model.get_input_embeddings()(torch.tensor([ids + gen]))], dim=1)
            with torch.no_grad():
                nxt = int(pm.model(inputs_embeds=emb).logits[0, -1].argmax())
            if nxt in pm.eos_ids:
                break
            gen.append(nxt)
        assert out == pm.tokenizer.decode(gen, skip_special_tokens=True)


def test_smollm2_patch_steers_generation(smollm2, smol_patch):
    prompts = ["Say something about my neighbour."]
    cfg = GenerationConfig(max_new_tokens=16)
    assert PatchedModel(smollm2).generate(prompts, config=cfg) != llmpatch.load(smollm2, [smol_patch.path]).generate(prompts, config=cfg)
