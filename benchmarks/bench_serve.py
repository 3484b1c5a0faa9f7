"""Throughput through `llmpatch serve` vs direct generation, on the embedded default (SmolLM2-135M-Instruct).

For concurrency 1, 8 and 32: ``c`` client threads (the official ``openai`` client) each send
``--rounds`` chat requests one after another to an in-process server (local engine, dynamic
batching), greedy, exactly ``--new-tokens`` tokens each (``min_tokens``); versus one direct
``PatchedModel.generate`` call on the same ``c`` prompts as one batch. Prints requests/s and
tokens/s of both and their ratio, for the unpatched base and a 50-token patch.

    python benchmarks/bench_serve.py [--new-tokens 32] [--rounds 2] [--concurrency 1,8,32]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import tempfile
import time

import torch

import llmpatch
from llmpatch import artifact, base
from llmpatch.runtime import GenerationConfig, PatchedModel
from llmpatch.serve import create_app, running
from llmpatch.serve.local import LocalBackend

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


def main() -> None:
    import openai

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="default")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--virtual-tokens", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 on a machine shared with other jobs)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = base.load(args.base)
    emb = loaded.model.get_input_embeddings().weight[:args.virtual_tokens].detach().clone()
    with tempfile.TemporaryDirectory() as d:
        patch = artifact.write_patch(f"{d}/bench", emb, name="bench", version="0.0.1", summary="benchmark patch",
                                     domains=["toxicity"], base=loaded.info.to_ref())
        patched = llmpatch.load(loaded, [patch.path])
    plain = PatchedModel(loaded)
    backend = LocalBackend.from_model(patched)
    n = args.new_tokens
    print(f"base {loaded.info.id}, {args.virtual_tokens} virtual tokens, {n} new tokens per request, "
          f"{args.rounds} requests per client, torch threads {torch.get_num_threads()}")
    print(f"{'model':>9} {'conc':>4} {'direct req/s':>12} {'direct tok/s':>12} {'server req/s':>12} "
          f"{'server tok/s':>12} {'server/direct':>13}")
    with running(create_app(backend, model_name="m")) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=600)

        def ask(prompt: str, model: str) -> int:
            r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                               temperature=0, max_tokens=n, extra_body={"min_tokens": n})
            return r.usage.completion_tokens

        for label, model_name, direct in (("unpatched", "m:unpatched", plain), ("patched", "m", patched)):
            ask(PROMPTS[0], model_name)  # warm-up
            for c in (int(x) for x in args.concurrency.split(",")):
                prompts = (PROMPTS * (c // len(PROMPTS) + 1))[:c]
                cfg = GenerationConfig(max_new_tokens=n, min_new_tokens=n, batch_size=c)
                direct.generate(prompts, config=cfg)  # warm-up at this batch size
                start = time.perf_counter()
                for _ in range(args.rounds):
                    direct.generate(prompts, config=cfg)
                dt = time.perf_counter() - start
                d_req, d_tok = c * args.rounds / dt, c * args.rounds * n / dt

                def client_loop(i: int) -> int:
                    return sum(ask(prompts[i], model_name) for _ in range(args.rounds))

                start = time.perf_counter()
                with cf.ThreadPoolExecutor(c) as pool:
                    tokens = sum(pool.map(client_loop, range(c)))
                st = time.perf_counter() - start
                s_req, s_tok = c * args.rounds / st, tokens / st
                print(f"{label:>9} {c:>4} {d_req:>12.2f} {d_tok:>12.1f} {s_req:>12.2f} {s_tok:>12.1f} "
                      f"{s_tok / d_tok:>13.3f}", flush=True)
    backend.engine.close()


if __name__ == "__main__":
    main()
