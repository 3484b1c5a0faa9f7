"""Side-by-side table of several verify reports run with the same options (same prompts).

    python examples/results/compare.py NAME=REPORT.json [NAME=REPORT.json ...] [--samples N]

Columns: the unpatched base and the system-prompt baseline (from the first report), then the
patched column of each report under its NAME (e.g. 1.0.0=old.json 1.1.0=new.json). Prints
markdown: one table per suite (value and 95% interval per column), then N sample prompts per
suite with every column's output and its flags. Reports must come from the same prompts (their
digests are compared) so the columns are comparable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def fmt(e: dict | None) -> str:
    if not e or e.get("value") is None:
        return "—"
    lo, hi = e["ci"]
    ci = "" if lo is None else f" ({lo:.3f}..{hi:.3f})"
    return f"{e['value']:.3f}{ci}"


def main(argv: list[str]) -> None:
    n_samples = 0
    if "--samples" in argv:
        i = argv.index("--samples")
        n_samples = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    named = [(a.split("=", 1)[0], json.loads(Path(a.split("=", 1)[1]).read_text())) for a in argv]
    first = named[0][1]
    cols = [("unpatched", first, "base")] + ([("system prompt", first, "baseline")] if "baseline" in first["columns"] else [])
    cols += [(name, rep, "patched") for name, rep in named]
    for s in first["suites"]:
        others = [next(x for x in rep["suites"] if x["name"] == s["name"]) for _, rep in named]
        if any(o["prompts"]["digest"] != s["prompts"]["digest"] for o in others):
            raise SystemExit(f"suite {s['name']}: the reports were run on different prompts")
        mode = "chat" if s.get("chat") else "plain continuation"
        print(f"\n**{s['name']}** ({s['prompts']['n']} prompts, {mode}, {s['prompts']['source']})\n")
        print("| metric | better | " + " | ".join(c[0] for c in cols) + " |")
        print("|---|---|" + "---|" * len(cols))
        for m in s["metrics"]:
            cells = []
            for _, rep, col in cols:
                suite = next(x for x in rep["suites"] if x["name"] == s["name"])
                metric = next(x for x in suite["metrics"] if x["name"] == m["name"])
                cells.append(fmt(metric["values"].get(col)))
            print(f"| {m['name']} | {m['direction']} | " + " | ".join(cells) + " |")
        if n_samples:
            print(f"\nSamples ({n_samples} of {s['prompts']['n']}, the first in the report's order):\n")
            for k, smp in enumerate(s["samples"][:n_samples]):
                print(f"- prompt: `{smp['prompt']}`")
                for label, rep, col in cols:
                    suite = next(x for x in rep["suites"] if x["name"] == s["name"])
                    row = suite["samples"][k]
                    flags = ",".join((row.get("flags") or {}).get(col, []))
                    out = row["outputs"].get(col, "").replace("\n", " ").replace("`", "'")
                    print(f"  - {label}{' [' + flags + ']' if flags else ''}: `{out.strip()}`")


if __name__ == "__main__":
    main(sys.argv[1:])
