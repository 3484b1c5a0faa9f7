"""Patched vs unpatched generation throughput on the embedded default (SmolLM2-135M-Instruct).

Prints tokens/s for the unpatched base and the base with a 50-token patch, at batch 1 and 8,
and their ratio (target >= 0.95: the prefix's key/value cache is computed once per stack).
Also shows the cost of recomputing the prefix on every request (what peft's generate does).

    python benchmarks/bench_generation.py [--new-tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import llmpatch
from llmpatch import artifact, base
from llmpatch.runtime import GenerationConfig, PatchedModel

PROMPTS = [
    "Write a short note to a colleague about the meeting.",
    "Describe the ocean in one sentence.",
    "What should I cook tonight?",
    "Tell me about the history of bicycles.",
    "Give me three tips for better sleep.",
    "Explain what a compiler does.",
    "Summarise the plot of a heist movie.",
    "Why is the sky blue?",
]


def tokens_per_second(model: PatchedModel, prompts: list[str], cfg: GenerationConfig, repeats: int) -> float:
    model.generate(prompts[:1], config=GenerationConfig(max_new_tokens=2))  # warm-up (and prefix cache)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        outs = model.generate(prompts, config=cfg)
        elapsed = time.perf_counter() - start
        rates.append(len(outs) * cfg.max_new_tokens / elapsed)
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="default")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--virtual-tokens", type=int, default=50)
    args = ap.parse_args()
    torch.manual_seed(0)
    loaded = base.load(args.base)
    emb = loaded.model.get_input_embeddings().weight[:args.virtual_tokens].detach().clone()
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        patch = artifact.write_patch(f"{d}/bench", emb, name="bench", version="0.0.1", summary="benchmark patch",
                                     domains=["toxicity"], base=loaded.info.to_ref())
        patched = llmpatch.load(loaded, [patch.path])
    plain = PatchedModel(loaded)
    print(f"base {loaded.info.id}, {args.virtual_tokens} virtual tokens, {args.new_tokens} new tokens per prompt, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'batch':>5} {'unpatched tok/s':>16} {'patched tok/s':>14} {'ratio':>6}")
    for bs in (1, 8):
        prompts = PROMPTS[:bs]
        # exactly new_tokens per row (eos suppressed), so both sides generate the same amount
        cfg = GenerationConfig(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, batch_size=bs)
        u = tokens_per_second(plain, prompts, cfg, args.repeats)
        p = tokens_per_second(patched, prompts, cfg, args.repeats)
        print(f"{bs:>5} {u:>16.1f} {p:>14.1f} {p / u:>6.3f}")


if __name__ == "__main__":
    main()
