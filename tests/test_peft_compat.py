"""Generating with a patch through plain peft/transformers gives llmpatch's output, token for token.

``PeftModel.generate`` cannot be used for this with transformers >= 5.2x and peft 0.21: its
``prepare_inputs_for_generation`` still looks for the cache under ``past_key_values``, which
transformers now passes as ``cache``, so it re-inserts the 50 virtual tokens in front of every
generated token (issue #17). ``generate_with_plain_peft`` below is the work-around the README and
the model cards show: the soft prompt is put in front of the token embeddings by hand and the
*base* model's ``generate`` runs on ``inputs_embeds``. Keep it in step with them.
"""

from __future__ import annotations

import pytest
import torch

import llmpatch

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent
TOX_FIX = ROOT / "examples" / "patches" / "tox-fix"


# --- the snippet (no llmpatch import: plain torch, transformers and peft) --------------------------


def generate_with_plain_peft(base_model, tokenizer, patch_dir, prompts, *, chat=True, max_new_tokens=64):
    from peft import PeftModel

    model = PeftModel.from_pretrained(base_model, str(patch_dir)).eval()
    if chat:  # llmpatch's default when the tokenizer has a chat template
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                 add_generation_prompt=True) for p in prompts]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=not chat)
    n = enc.input_ids.shape[0]
    with torch.no_grad():
        soft = model.get_prompt(batch_size=n).to(base_model.dtype)  # (n, 50, hidden)
        embeds = torch.cat([soft, base_model.get_input_embeddings()(enc.input_ids)], dim=1)
        mask = torch.cat([enc.attention_mask.new_ones(n, soft.shape[1]), enc.attention_mask], dim=1)
        out = model.get_base_model().generate(inputs_embeds=embeds, attention_mask=mask,
                                              max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.batch_decode(out, skip_special_tokens=True)  # only the new tokens


# --------------------------------------------------------------------------------------------------


PROMPTS = ["You are such a stupid", "Write one sentence about the sea.", "My neighbour is a complete"]


@pytest.mark.parametrize("chat", [True, False])
def test_plain_peft_snippet_matches_llmpatch_on_a_tiny_model(make_patch, tiny_model_dir, chat):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    patch = make_patch(tokens=5)
    ours = llmpatch.load(str(tiny_model_dir), [patch.path]).generate(PROMPTS, chat=chat, max_new_tokens=12)
    base_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    got = generate_with_plain_peft(base_model, tokenizer, patch.path, PROMPTS, chat=chat, max_new_tokens=12)
    assert got == ours


def test_peft_generate_itself_on_a_tiny_model(make_patch, tiny_model_dir):
    """Canary for the upstream bug: xfails while ``PeftModel.generate`` feeds the virtual tokens again
    at every decoding step (then the snippet above is still needed); passes once peft is fixed."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    patch = make_patch(tokens=5)
    ours = llmpatch.load(str(tiny_model_dir), [patch.path]).generate(PROMPTS[:1], chat=False, max_new_tokens=6,
                                                                       min_new_tokens=6)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base_model, str(patch.path)).eval()
    fed: list[int] = []  # positions fed to the base model per forward pass

    def record(_module, args, kwargs):
        x = kwargs.get("inputs_embeds")
        fed.append((x if x is not None else kwargs["input_ids"]).shape[1])

    enc = tokenizer(PROMPTS[0], return_tensors="pt")
    handle = base_model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    finally:
        handle.remove()
    assert fed[0] == 5 + enc.input_ids.shape[1]  # prefill: virtual tokens + prompt
    if any(n != 1 for n in fed[1:]):
        pytest.xfail(f"upstream peft/transformers bug: decoding steps fed {fed[1:]} positions, not 1 each "
                     "(the cache comes as `cache`, peft reads `past_key_values`): use the inputs_embeds snippet")
    got = tokenizer.decode(out[0, enc.input_ids.shape[1]:], skip_special_tokens=True)
    assert got == ours[0]


@pytest.mark.slow
def test_plain_peft_snippet_matches_llmpatch_on_smollm2(smollm2):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ours = llmpatch.load(smollm2, [TOX_FIX]).generate(PROMPTS, max_new_tokens=32)
    base_model = AutoModelForCausalLM.from_pretrained(smollm2.info.path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(smollm2.info.path)
    got = generate_with_plain_peft(base_model, tokenizer, TOX_FIX, PROMPTS, max_new_tokens=32)
    assert got == ours
    assert all(ours), ours  # chat replies are not empty
