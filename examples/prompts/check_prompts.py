"""Validate the written prompt sets and check them for word overlap.

Run from the repository root:  python examples/prompts/check_prompts.py
Exit status 0 when every check passes, 1 otherwise.

Checks, per file: it parses as JSON Lines, ids are unique and follow the file's pattern,
the required fields are present, `split` is train/validation/eval, the minimum counts per
attribute/category/form hold, at least half of the prompts are hand-written (`source`).
Overlap: every prompt is reduced to its set of lower-case words; two prompts "share" the
Dice share of their words, 2|A & B| / (|A| + |B|). No two prompts of the new files
(within or across files) and no new prompt against the project's existing prompts
(llmpatch/evaluate/data/*.jsonl, examples/prompts/*-train-extra.jsonl) may share more
than MAX_SHARE.
"""
from __future__ import annotations

import collections
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "examples" / "prompts"
MAX_SHARE = 0.70
SPLITS = ("train", "validation", "eval")

TOX_ATTRS = ("flirtation", "identity_attack", "insult", "profanity",
             "severe_toxicity", "sexually_explicit", "threat")
HARM_CATS = ("weapons", "explosives", "chemical_biological", "drugs", "cybercrime_malware",
             "hacking_intrusion", "fraud_scams", "financial_crime", "violence",
             "harassment_bullying", "hate_speech", "self_harm", "privacy_doxxing",
             "extremism_terrorism", "misinformation", "sexual_exploitation",
             "theft_burglary", "evasion_of_law")
HARM_FORMS = ("direct", "roleplay", "hypothetical", "step_by_step", "persuasive",
              "one_liner", "long_context")
BENIGN_CATS = ("homonyms", "figurative_language", "safe_targets", "safe_contexts",
               "definitions", "history", "privacy_public_figures", "safety_information",
               "medical_legal_financial", "security_defence", "scary_words")
UTIL_CATS = ("cooking", "coding", "science", "maths", "writing", "advice", "travel",
             "health-general", "history", "language", "business", "tech-help", "DIY",
             "nature", "sports", "entertainment")

FILES = {
    "tox": HERE / "tox-prompts.jsonl",
    "harm": HERE / "harm-prompts.jsonl",
    "benign": HERE / "benign-prompts.jsonl",
    "utility": ROOT / "llmpatch" / "evaluate" / "data" / "utility.jsonl",
    "gender": HERE / "gender-prompts.jsonl",
}
GENDER_CATS = ("stem", "medicine", "care", "trades", "office", "arts", "leadership", "service",
               "public_safety_law", "education", "family")
GENDER_STEREOTYPES = ("male", "female", "neutral")
GENDER_FRAMINGS = ("story", "description", "dialogue", "letter", "day_in_life", "advice", "continuation")
EXISTING = sorted((ROOT / "llmpatch" / "evaluate" / "data").glob("*.jsonl"))
EXISTING = [p for p in EXISTING if p.name != "utility.jsonl"]
EXISTING += [HERE / "harm-train-extra.jsonl", HERE / "benign-train-extra.jsonl"]

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> frozenset:
    return frozenset(_WORD.findall(text.lower()))


def share(a: frozenset, b: frozenset) -> float:
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


def max_share(ws: frozenset, pool) -> float:
    best = 0.0
    for other in pool:
        s = share(ws, other)
        if s > best:
            best = s
    return best


def load(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                raise ValueError(f"{path}:{n}: empty line")
            rows.append(json.loads(line))
    return rows


def existing_prompts() -> list[tuple[str, str]]:
    out = []
    for p in EXISTING:
        if p.exists():
            for n, r in enumerate(load(p), 1):
                if "prompt" in r:  # judge_cases.jsonl holds judge test texts, not prompts
                    out.append((f"{p.name}:{r.get('id', n)}", r["prompt"]))
    return out


def table(rows, key) -> str:
    cnt = collections.defaultdict(collections.Counter)
    for r in rows:
        cnt[r[key]][r["split"]] += 1
    lines = [f"  {key:<26}{'train':>7}{'valid':>7}{'eval':>7}{'total':>7}"]
    for k in sorted(cnt):
        c = cnt[k]
        lines.append(f"  {k:<26}{c['train']:>7}{c['validation']:>7}{c['eval']:>7}"
                     f"{sum(c.values()):>7}")
    tot = collections.Counter(r["split"] for r in rows)
    lines.append(f"  {'ALL':<26}{tot['train']:>7}{tot['validation']:>7}{tot['eval']:>7}"
                 f"{len(rows):>7}")
    return "\n".join(lines)


def check_file(name: str, rows: list[dict], errors: list[str]) -> None:
    spec = {
        "tox": (r"tox2-\d{4}", ("id", "prompt", "attribute", "form", "split")),
        "harm": (r"harm2-\d{4}", ("id", "prompt", "category", "form", "split")),
        "benign": (r"ben2-\d{4}", ("id", "prompt", "category", "split")),
        "utility": (r"util-\d{3}", ("id", "prompt", "category", "form", "split")),
        "gender": (r"gen2-\d{4}", ("id", "prompt", "profession", "stereotype", "category", "framing", "form",
                                    "split")),
    }[name]
    pat, fields = spec
    ids = collections.Counter(r.get("id") for r in rows)
    for i, n in ids.items():
        if n > 1:
            errors.append(f"{name}: duplicate id {i}")
    prompts = collections.Counter(r.get("prompt", "").strip().lower() for r in rows)
    for p, n in prompts.items():
        if n > 1:
            errors.append(f"{name}: duplicate prompt {p!r}")
    for r in rows:
        for f in fields:
            if not isinstance(r.get(f), str) or not r[f].strip():
                errors.append(f"{name}: {r.get('id')} lacks field {f}")
        if not re.fullmatch(pat, str(r.get("id"))):
            errors.append(f"{name}: bad id {r.get('id')}")
        if r.get("split") not in SPLITS:
            errors.append(f"{name}: {r.get('id')} bad split {r.get('split')}")
        if r.get("source") not in ("hand", "template"):
            errors.append(f"{name}: {r.get('id')} bad source {r.get('source')}")
        if r.get("prompt", "") != r.get("prompt", "").strip():
            errors.append(f"{name}: {r.get('id')} prompt has outer whitespace")
    hand = sum(r.get("source") == "hand" for r in rows)
    if hand * 2 < len(rows):
        errors.append(f"{name}: only {hand}/{len(rows)} hand-written")

    def need(cond, msg):
        if not cond:
            errors.append(f"{name}: {msg}")

    if name == "tox":
        cont = [r for r in rows if r.get("form") == "continuation"]
        chat = [r for r in rows if r.get("form") == "chat"]
        need(len(cont) + len(chat) == len(rows), "form must be continuation or chat")
        need(len(cont) >= 500, f"{len(cont)} continuation prompts < 500")
        need(len(chat) >= 100, f"{len(chat)} chat prompts < 100")
        c = collections.Counter(r["attribute"] for r in cont)
        for a in TOX_ATTRS:
            need(c[a] >= 60, f"attribute {a}: {c[a]} continuation prompts < 60")
        cc = collections.Counter(r["attribute"] for r in chat)
        for a in TOX_ATTRS:
            need(cc[a] >= 1, f"attribute {a}: no chat prompts")
        need(set(c) | set(cc) <= set(TOX_ATTRS), f"unknown attributes {set(c) | set(cc)}")
        for r in rows:
            n = len(r["prompt"].split())
            need(6 <= n <= 40, f"{r['id']} has {n} words (want 6-40)")
    elif name == "harm":
        c = collections.Counter(r["category"] for r in rows)
        need(len(rows) >= 360, f"{len(rows)} prompts < 360")
        for k in HARM_CATS:
            need(c[k] >= 15, f"category {k}: {c[k]} < 15")
        need(set(c) <= set(HARM_CATS), f"unknown categories {set(c) - set(HARM_CATS)}")
        f = collections.Counter(r["form"] for r in rows)
        need(set(f) <= set(HARM_FORMS), f"unknown forms {set(f) - set(HARM_FORMS)}")
        for k in HARM_FORMS:
            need(f[k] >= 10, f"form {k}: {f[k]} < 10")
    elif name == "benign":
        c = collections.Counter(r["category"] for r in rows)
        need(len(rows) >= 360, f"{len(rows)} prompts < 360")
        for k in BENIGN_CATS:
            need(c[k] >= 20, f"category {k}: {c[k]} < 20")
        need(set(c) <= set(BENIGN_CATS), f"unknown categories {set(c) - set(BENIGN_CATS)}")
    elif name == "gender":
        check_gender(rows, need)
    elif name == "utility":
        c = collections.Counter(r["category"] for r in rows)
        need(len(rows) >= 160, f"{len(rows)} prompts < 160")
        need(set(c) == set(UTIL_CATS), f"categories differ: {set(c) ^ set(UTIL_CATS)}")
        f = collections.Counter(r["form"] for r in rows)
        need(set(f) <= {"chat", "continuation"}, f"unknown forms {set(f)}")
        need(f["continuation"] >= 40, f"{f['continuation']} continuation prompts < 40")


def check_gender(rows: list[dict], need) -> None:
    """The gender set: sizes per category, valid labels, prompts that imply no gender, and
    splits that hold out whole professions (every stereotype, both forms and at least five
    categories in every split)."""
    sys.path.insert(0, str(ROOT))
    from llmpatch.evaluate.judges import gender_counts

    need(len(rows) >= 400, f"{len(rows)} prompts < 400")
    c = collections.Counter(r.get("category") for r in rows)
    need(set(c) == set(GENDER_CATS), f"categories differ: {set(c) ^ set(GENDER_CATS)}")
    for k in GENDER_CATS:
        need(c[k] >= 30, f"category {k}: {c[k]} < 30")
    for r in rows:
        need(r.get("stereotype") in GENDER_STEREOTYPES, f"{r.get('id')} bad stereotype {r.get('stereotype')}")
        need(r.get("framing") in GENDER_FRAMINGS, f"{r.get('id')} bad framing {r.get('framing')}")
        need((r.get("form") == "continuation") == (r.get("framing") == "continuation")
             and r.get("form") in ("chat", "continuation"), f"{r.get('id')} form/framing mismatch")
        need(gender_counts(r.get("prompt", "")) == (0, 0), f"{r.get('id')} names a gender: {r.get('prompt')!r}")
    splits = collections.defaultdict(set)
    for r in rows:
        splits[r.get("profession")].add(r.get("split"))
    for prof, got in splits.items():
        need(len(got) == 1, f"profession {prof!r} is in several splits {sorted(got)}")
    for sp in SPLITS:
        part = [r for r in rows if r.get("split") == sp]
        cats = {r.get("category") for r in part}
        need(len(cats) >= 5, f"split {sp} has only {len(cats)} categories")
        need({r.get("form") for r in part} == {"chat", "continuation"}, f"split {sp} lacks a form")
        need({r.get("stereotype") for r in part} == set(GENDER_STEREOTYPES), f"split {sp} lacks a stereotype")


def overlap(new: list[tuple[str, str]], old: list[tuple[str, str]]):
    """Return (pairs over MAX_SHARE, max share within new, max share new-vs-old, top pairs)."""
    nw = [(i, p, words(p)) for i, p in new]
    ow = [(i, p, words(p)) for i, p in old]
    bad, top = [], []
    max_new = max_old = 0.0
    for k, (i, p, a) in enumerate(nw):
        for j, q, b in nw[k + 1:]:
            s = share(a, b)
            max_new = max(max_new, s)
            if s > 0.6:
                top.append((s, i, j))
            if s > MAX_SHARE:
                bad.append((s, i, p, j, q))
        for j, q, b in ow:
            s = share(a, b)
            max_old = max(max_old, s)
            if s > 0.6:
                top.append((s, i, j))
            if s > MAX_SHARE:
                bad.append((s, i, p, j, q))
    top.sort(reverse=True)
    return bad, max_new, max_old, top


def main() -> int:
    errors: list[str] = []
    new = []
    for name, path in FILES.items():
        if not path.exists():
            errors.append(f"{name}: {path} missing")
            continue
        rows = load(path)
        check_file(name, rows, errors)
        key = {"tox": "attribute"}.get(name, "category")
        print(f"== {path.relative_to(ROOT)}: {len(rows)} prompts, "
              f"{sum(r.get('source') == 'hand' for r in rows)} hand-written")
        print(table(rows, key))
        if "form" in rows[0]:
            print(table(rows, "form"))
        if name == "gender":
            print(table(rows, "stereotype"))
            print(table(rows, "framing"))
        new += [(f"{name}:{r['id']}", r["prompt"]) for r in rows]
    bad, max_new, max_old, top = overlap(new, existing_prompts())
    print(f"== overlap (Dice share of word sets): {len(new)} new prompts, "
          f"max within new = {max_new:.3f}, max new vs existing = {max_old:.3f}, "
          f"pairs > 0.60 = {len(top)}, pairs > {MAX_SHARE:.2f} = {len(bad)}")
    for s, i, j in top[:10]:
        print(f"  {s:.3f}  {i}  ~  {j}")
    for s, i, p, j, q in bad:
        errors.append(f"overlap {s:.2f}: {i} {p!r} ~ {j} {q!r}")
    for e in errors:
        print("ERROR:", e)
    print("OK" if not errors else f"{len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
