"""Build time of a composition-aware build (``[compose]``) vs the same build alone, on a tiny model.

Builds one harmfulness recipe twice per repeat on a tiny random Llama (the tests' model): alone,
and with a co-patch of ``--co-tokens`` virtual tokens stacked in front (``position = "after"``, or
``--position both``). Each build starts from an empty llmpatch home, so data generation, SFT,
DPO, selection and (with ``--eval``) evaluation all run (after one untimed warm-up build). Prints
each stage's seconds and the ratio composed / alone; the fastest repeat counts (``--stat median``
else). The co-prefix makes
every training sequence ``--co-tokens`` longer and, with ``--eval``, adds one evaluation per stack
order; on a real base the training ratio approaches (prefix + co + text) / (prefix + text).

    python benchmarks/bench_compose_build.py [--repeats 3] [--co-tokens 16] [--position after] [--eval] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

STAGES = ("data_s", "train_s", "select_s", "eval_s", "total_s")


@contextlib.contextmanager
def home(path: Path):
    """A fresh llmpatch home: nothing cached from an earlier build."""
    old = os.environ.get("LLMPATCH_HOME")
    os.environ["LLMPATCH_HOME"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LLMPATCH_HOME", None)
        else:
            os.environ["LLMPATCH_HOME"] = old


def recipe(base_dir: Path, args: argparse.Namespace, co_dir: Path | None):
    from llmpatch.builder import Recipe

    raw = {"patch": {"name": "harm-fix", "version": "0.1.0", "summary": "bench", "domain": "harmfulness"},
           "base": {"spec": str(base_dir)}}
    if co_dir is not None:
        raw["compose"] = {"with": [str(co_dir)], "position": args.position}
    overrides = [f"prompts.limit={args.prompts}", "generation.max_new_tokens=16", "reference.best_of=2",
                 f"prefix.num_virtual_tokens={args.tokens}", "sft.epochs=2", "dpo.epochs=2", "sft.max_length=256",
                 "dpo.max_length=256", "training.save_steps=1000", "utility.limit=8", "utility.max_degenerate_increase=1.0",
                 "select.enabled=true", "select.limit=4", "select.snapshots=2", "select.max_new_tokens=8"]
    overrides += (["eval.enabled=true", "eval.limit=8", 'eval.suites=["harmfulness"]', "eval.max_new_tokens=8"]
                  if args.eval else ["eval.enabled=false"])
    return Recipe.from_dict(raw, overrides=overrides)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=16, help="virtual tokens of the patch being built")
    ap.add_argument("--co-tokens", type=int, default=16, help="virtual tokens of the co-patch")
    ap.add_argument("--position", default="after", choices=["after", "before", "both"])
    ap.add_argument("--prompts", type=int, default=12, help="harmful and benign training prompts (each)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--eval", action="store_true", help="also evaluate (alone, and in each stack order)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--stat", choices=["min", "median"], default="min")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from conftest import make_tiny_model

    from llmpatch import artifact, base
    from llmpatch.builder import build

    stat = min if args.stat == "min" else statistics.median
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        base_dir = make_tiny_model(t / "base", hidden_size=args.hidden)
        info = base.identify(str(base_dir))
        emb = torch.randn(args.co_tokens, info.hidden_size, generator=torch.Generator().manual_seed(0)) * 0.5
        co = artifact.write_patch(t / "tox-fix", emb, name="tox-fix", version="1.1.0", summary="co-patch",
                                  domains=["toxicity"], base=info.to_ref())
        runs: dict[str, list[dict[str, float]]] = {"alone": [], "composed": []}
        with home(t / "home-warmup"):  # imports, first model loads and trainer set-up: not counted
            build(recipe(base_dir, args, co.path), t / "out-warmup")
        for r in range(args.repeats):
            for kind, co_dir in (("alone", None), ("composed", co.path)):  # interleaved: load drifts hit both
                with home(t / f"home-{kind}-{r}"):
                    t0 = time.perf_counter()
                    res = build(recipe(base_dir, args, co_dir), t / f"out-{kind}-{r}")
                    timing = dict(res.timing, total_s=time.perf_counter() - t0)
                    timing["sft_s"] = res.training["sft"]["seconds"]
                    timing["dpo_s"] = res.training["dpo"]["seconds"]
                runs[kind].append(timing)
                print(f"repeat {r + 1} {kind:9s} " + "  ".join(f"{k} {timing.get(k, 0):.1f}" for k in ("sft_s", "dpo_s", *STAGES)),
                      flush=True)
    print(f"\n{args.stat} over {args.repeats} repeat(s); patch {args.tokens} + co-patch {args.co_tokens} virtual tokens, "
          f"position {args.position}, hidden {args.hidden}")
    print(f"{'stage':10s} {'alone s':>9s} {'composed s':>11s} {'ratio':>7s}")
    for k in ("sft_s", "dpo_s", *STAGES):
        a = stat([x.get(k, 0.0) for x in runs["alone"]])
        c = stat([x.get(k, 0.0) for x in runs["composed"]])
        if a or c:
            print(f"{k:10s} {a:9.2f} {c:11.2f} {c / a if a else float('nan'):7.2f}")


if __name__ == "__main__":
    main()
