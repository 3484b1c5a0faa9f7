"""llmpatch generation vs plain transformers ``model.generate`` on the embedded default (SmolLM2-135M-Instruct).

Prints tokens/s at batch 1, 8 and 32 for: plain ``model.generate`` on the unpatched base (the
reference), llmpatch's runtime unpatched, and llmpatch's runtime with a 50-token patch; and the
ratios of both llmpatch columns to plain ``generate`` (target >= 0.98). Greedy, exactly
``--new-tokens`` per row (EOS suppressed) so every column does the same work; chat-templated
prompts, left-padded. All in one process, columns interleaved per repeat; the fastest of the
repeats counts (the least disturbed by other load on a shared machine; ``--stat median`` else).
On a machine shared with other jobs, ``--threads 1`` avoids OpenMP threads spinning on a
descheduled sibling, which otherwise dominates the timings.

    python benchmarks/bench_generation.py [--new-tokens 32] [--repeats 5] [--batches 1,8,32] [--threads N]
                                          [--kv-cache auto|static|dynamic]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
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


def plain_generate(loaded, prompts: list[str], new_tokens: int) -> None:
    """Plain transformers: chat template, left padding, ``model.generate`` greedy."""
    tok, model = loaded.tokenizer, loaded.model
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]
    side = tok.padding_side
    tok.padding_side = "left"
    try:
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tok.padding_side = side
    with torch.no_grad():
        model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                       pad_token_id=tok.pad_token_id, top_p=None, top_k=None, temperature=None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="default")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--virtual-tokens", type=int, default=50)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--stat", choices=["min", "median"], default="min")
    ap.add_argument("--kv-cache", choices=["auto", "static", "dynamic"], default="auto",
                    help="llmpatch's decoding cache (GenerationConfig.kv_cache)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    loaded = base.load(args.base)
    emb = loaded.model.get_input_embeddings().weight[:args.virtual_tokens].detach().clone()
    with tempfile.TemporaryDirectory() as d:
        patch = artifact.write_patch(f"{d}/bench", emb, name="bench", version="0.0.1", summary="benchmark patch",
                                     domains=["toxicity"], base=loaded.info.to_ref())
        patched = llmpatch.load(loaded, [patch.path])
    plain = PatchedModel(loaded)
    n = args.new_tokens
    print(f"base {loaded.info.id}, {args.virtual_tokens} virtual tokens, {n} new tokens per prompt, "
          f"torch threads {torch.get_num_threads()}, {args.stat} of {args.repeats}, kv_cache {args.kv_cache}")
    print(f"{'batch':>5} {'generate tok/s':>15} {'unpatched tok/s':>16} {'patched tok/s':>14} "
          f"{'unpatched/gen':>14} {'patched/gen':>12}")
    for bs in (int(b) for b in args.batches.split(",")):
        prompts = (PROMPTS * (bs // len(PROMPTS) + 1))[:bs]
        cfg = GenerationConfig(max_new_tokens=n, min_new_tokens=n, batch_size=bs, kv_cache=args.kv_cache)
        runs = {
            "generate": lambda: plain_generate(loaded, prompts, n),
            "unpatched": lambda: plain.generate(prompts, config=cfg),
            "patched": lambda: patched.generate(prompts, config=cfg),
        }
        for fn in runs.values():  # warm-up (and the prefix cache)
            fn()
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.repeats):
            for k, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - start)
        stat = min if args.stat == "min" else statistics.median
        rate = {k: bs * n / stat(v) for k, v in times.items()}
        print(f"{bs:>5} {rate['generate']:>15.1f} {rate['unpatched']:>16.1f} {rate['patched']:>14.1f} "
              f"{rate['unpatched'] / rate['generate']:>14.3f} {rate['patched'] / rate['generate']:>12.3f}", flush=True)


if __name__ == "__main__":
    main()
