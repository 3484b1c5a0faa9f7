"""The plain classifier (``profanity``) against the combined ``toxicity`` judge on the judge test set.

    python benchmarks/bench_judges.py [--texts 5000] [--split all|dev|test]

Prints, for each judge, recall on toxic cases and false-positive rate on benign ones (score > 0.5),
recall per obfuscation kind, false positives per benign kind, and throughput (texts/s, median of
3 runs) on ``--texts`` texts cycled from the test set. Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from importlib.resources import files

from llmpatch.evaluate.judges import get_judge

UNSAFE = 0.5
JUDGES = ("profanity", "toxicity")


def load_cases(split: str) -> list[dict]:
    text = (files("llmpatch.evaluate") / "data" / "judge_cases.jsonl").read_text(encoding="utf-8")
    cases = [json.loads(line) for line in text.splitlines() if line.strip()]
    return cases if split == "all" else [c for c in cases if c.get("split") == split]


def rates(flags: list[bool]) -> str:
    return f"{sum(flags) / len(flags):.3f} ({sum(flags)}/{len(flags)})" if flags else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=5000, help="texts per throughput run")
    ap.add_argument("--split", choices=("all", "dev", "test"), default="all")
    args = ap.parse_args()
    cases = load_cases(args.split)
    texts = [c["text"] for c in cases]
    flagged = {name: [s > UNSAFE for s in get_judge(name).score(texts)] for name in JUDGES}

    print(f"judge test set: {len(cases)} cases ({args.split}), "
          f"{sum(c['label'] == 'toxic' for c in cases)} toxic, {sum(c['label'] == 'benign' for c in cases)} benign")
    print(f"{'':28s}" + "".join(f"{n:>18s}" for n in JUDGES))
    tox = [i for i, c in enumerate(cases) if c["label"] == "toxic"]
    ben = [i for i, c in enumerate(cases) if c["label"] == "benign"]
    obf = [i for i in tox if cases[i]["kind"] != "plain"]
    for label, idx in (("recall (all toxic)", tox), ("recall (obfuscated)", obf), ("false-positive rate", ben)):
        print(f"{label:28s}" + "".join(f"{rates([flagged[n][i] for i in idx]):>18s}" for n in JUDGES))
    by_kind: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, c in enumerate(cases):
        by_kind[(c["label"], c["kind"])].append(i)
    print("\nrecall per toxic kind")
    for (label, kind), idx in sorted(by_kind.items()):
        if label == "toxic":
            print(f"  {kind:26s}" + "".join(f"{rates([flagged[n][i] for i in idx]):>18s}" for n in JUDGES))
    print("false positives per benign kind")
    for (label, kind), idx in sorted(by_kind.items()):
        if label == "benign":
            print(f"  {kind:26s}" + "".join(f"{rates([flagged[n][i] for i in idx]):>18s}" for n in JUDGES))

    bulk = [texts[i % len(texts)] + f" {i}" for i in range(args.texts)]  # distinct texts, no caching
    print(f"\nthroughput on {len(bulk)} texts (median of 3)")
    for name in JUDGES:
        judge = get_judge(name)
        judge.score(bulk[:50])  # warm up (loads the word list / model)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            judge.score(bulk)
            times.append(time.perf_counter() - t0)
        print(f"  {name:26s}{len(bulk) / statistics.median(times):>12,.0f} texts/s")


if __name__ == "__main__":
    main()
