"""Batched vs one-prompt-at-a-time generation on the embedded default (SmolLM2-135M-Instruct), CPU.

    python benchmarks/bench_batching.py [--prompts 32] [--tokens 32] [--batch-size 16]

Prints seconds for each mode and the speed-up ratio; exits 1 if the ratio is under --min-ratio
(default 5). Greedy decoding with a fixed number of new tokens, so both modes do the same work,
and the script checks that both modes produced the same texts.
"""

from __future__ import annotations

import argparse
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="default")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--min-ratio", type=float, default=5.0)
    args = ap.parse_args()

    import torch

    import llmpatch
    from llmpatch.evaluate.prompts import load_prompts
    from llmpatch.runtime import GenerationConfig

    pm = llmpatch.load(args.base)
    prompts = [p.text for p in load_prompts("fluency", split="all")][: args.prompts]
    cfg = dict(max_new_tokens=args.tokens, min_new_tokens=args.tokens)
    pm.generate(prompts[:2], config=GenerationConfig(**cfg, batch_size=2))  # warm-up
    timings, outputs = {}, {}
    for bs in (1, args.batch_size):
        t0 = time.perf_counter()
        outputs[bs] = pm.generate(prompts, config=GenerationConfig(**cfg, batch_size=bs))
        timings[bs] = time.perf_counter() - t0
        print(f"batch size {bs}: {timings[bs]:.1f} s", flush=True)
    same = sum(a == b for a, b in zip(outputs[1], outputs[args.batch_size]))
    ratio = timings[1] / timings[args.batch_size]
    print(f"model {pm.info.id}, {len(prompts)} prompts x {args.tokens} new tokens, torch threads {torch.get_num_threads()}")
    print(f"one at a time : {timings[1]:7.1f} s  ({len(prompts) * args.tokens / timings[1]:6.1f} tokens/s)")
    print(f"batch of {args.batch_size:<4} : {timings[args.batch_size]:7.1f} s  "
          f"({len(prompts) * args.tokens / timings[args.batch_size]:6.1f} tokens/s)")
    print(f"identical outputs: {same}/{len(prompts)}")
    print(f"speed-up ratio: {ratio:.1f}x (required >= {args.min_ratio:g}x)")
    return 0 if ratio >= args.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
