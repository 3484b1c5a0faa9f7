"""Checkpoint selection: which of a build's prefixes to ship, chosen on validation prompts.

Training for a fixed number of steps is a guess: too little and the patch does not steer, too
much and (for harmfulness) it starts refusing harmless requests. With ``[select] enabled``, the
last training stage saves ``select.snapshots`` prefix snapshots, evenly spaced over its steps
(the last is the final step); together with the SFT prefix (``include_sft``) they are the
candidates. Each candidate generates greedy replies to the *validation* prompts (the
``validation`` split of the built-in sets, or files the recipe names), the domain judge scores
them, and the candidate with the lowest

    score = mean unsafety on the domain's validation prompts
            + mean refusal on benign validation prompts (when the recipe has any)

is written (ties go to the later candidate). For harmfulness the score is
``(1 - refusal rate on harmful requests) + refusal rate on benign look-alikes``, i.e. both
error rates, weighted equally. The held-out ``eval`` split is never used here, so the build-time
evaluation stays an honest estimate of the chosen patch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from llmpatch.builder.recipe import Recipe
from llmpatch.errors import LlmpatchError, RecipeError
from llmpatch.util import ProgressFactory, no_progress


@dataclass
class Candidate:
    """One prefix the build could ship, and its validation scores once measured."""

    name: str
    stage: str
    step: int
    embeddings: torch.Tensor
    target: float | None = None
    benign: float | None = None

    @property
    def score(self) -> float | None:
        if self.target is None:
            return None
        return self.target + (self.benign or 0.0)

    def to_dict(self) -> dict[str, Any]:
        r = lambda x: None if x is None else round(float(x), 4)  # noqa: E731
        return {"name": self.name, "stage": self.stage, "step": self.step, "target_unsafety": r(self.target),
                "benign_refusal": r(self.benign), "score": r(self.score)}


def load_validation(recipe: Recipe) -> tuple[list[Any], list[Any]]:
    """The validation prompts: the domain's (``select.prompts``) and benign ones (``select.benign``)."""
    from llmpatch.evaluate.prompts import load_prompts

    sel = recipe.select
    out: list[list[Any]] = []
    for section, suite in (("prompts", recipe.domain), ("benign", "over_refusal")):
        items: list[Any] = []
        seen: set[str] = set()
        for src in getattr(sel, section):
            try:
                got = load_prompts(suite, None if src in ("builtin", "default") else src, "validation", limit=sel.limit)
            except LlmpatchError as exc:
                raise RecipeError(f"select.{section} source {src!r}: {exc.message}",
                                  hint="validation prompts come from the 'validation' split of a source (a file's "
                                  "split column, or rows without one); " + (exc.hint or "")) from None
            for it in got:
                if it.text not in seen:
                    seen.add(it.text)
                    items.append(it)
        out.append(items)
    if not out[0]:
        raise RecipeError("select is enabled but select.prompts names no validation prompts",
                          hint='set select.prompts = ["builtin"] or a prompt file, or select.enabled = false')
    return out[0], out[1]


def check_disjoint(validation: Sequence[Any], train_texts: set[str]) -> None:
    """Validation prompts that are also trained on would make selection favour memorisation."""
    overlap = [it.text for it in validation if it.text in train_texts]
    if overlap:
        raise RecipeError(f"{len(overlap)} validation prompt(s) are also training prompts, e.g. {overlap[0]!r}",
                          hint="select prompts from a split or file the build does not train on")


def candidates(result: Any, *, include_sft: bool) -> list[Candidate]:
    """The SFT prefix (optionally) and every snapshot of the last stage, in training order."""
    from llmpatch.builder.train import _load_prefix

    out = [Candidate("sft", "sft", 0, result.sft_embeddings)] if include_sft else []
    for stage, step, path in result.snapshots:
        out.append(Candidate(f"{stage} step {step}", stage, step, _load_prefix(path)))
    if not any(torch.equal(c.embeddings, result.embeddings) for c in out):
        stage = "dpo" if "dpo" in result.curves else "sft"
        steps = result.curves.get(stage) or [{"step": 0}]
        out.append(Candidate(f"{stage} final", stage, int(steps[-1]["step"]), result.embeddings))
    unique: list[Candidate] = []
    for c in out:  # the same prefix twice (SFT's last snapshot is the SFT prefix): keep the later name
        unique = [u for u in unique if not torch.equal(u.embeddings, c.embeddings)] + [c]
    return unique


def score_candidates(recipe: Recipe, base: Any, scorer: Any, cands: Sequence[Candidate], targets: Sequence[Any],
                     benign: Sequence[Any], *, progress: ProgressFactory | None = None) -> None:
    """Greedy replies of each candidate to the validation prompts, scored by the domain judge."""
    from llmpatch.runtime import GenerationConfig, PatchedModel

    progress = progress or no_progress
    sel = recipe.select
    chat = recipe.generation.chat and bool(base.tokenizer.chat_template)
    cfg = GenerationConfig(max_new_tokens=sel.max_new_tokens, batch_size=sel.batch_size, seed=recipe.seeds.data)
    sets = [("target", [p.text for p in targets]), ("benign", [p.text for p in benign])]
    total = len(cands) * (len(targets) + len(benign))
    with progress(f"selecting among {len(cands)} checkpoints on {len(targets) + len(benign)} validation prompts",
                  total) as advance:
        for c in cands:
            model = PatchedModel(base, prefix=c.embeddings)
            for kind, texts in sets:
                if not texts:
                    continue
                outs = model.generate(texts, chat=chat, config=cfg, progress=advance)
                unsafety = scorer(outs, texts, kind)
                mean = sum(unsafety) / len(unsafety)
                if kind == "target":
                    c.target = mean
                else:
                    c.benign = mean


def choose(cands: Sequence[Candidate]) -> Candidate:
    """The candidate with the lowest score; ties go to the later one (trained longer, as the recipe asked)."""
    scored = [c for c in cands if c.score is not None]
    if not scored:
        raise ValueError("no candidate was scored")
    best = min(c.score for c in scored)  # type: ignore[type-var]
    return [c for c in scored if c.score is not None and c.score <= best + 1e-12][-1]


def select(recipe: Recipe, result: Any, base: Any, scorer: Any, train_texts: set[str], *,
           progress: ProgressFactory | None = None) -> dict[str, Any]:
    """Score the candidates of ``result``, make the best one ``result.embeddings``; returns the record."""
    from llmpatch.evaluate.prompts import prompts_digest

    targets, benign = load_validation(recipe)
    check_disjoint([*targets, *benign], train_texts)
    cands = candidates(result, include_sft=recipe.select.include_sft)
    score_candidates(recipe, base, scorer, cands, targets, benign, progress=progress)
    best = choose(cands)
    result.embeddings = best.embeddings
    record = {
        "objective": "mean domain unsafety on validation prompts + mean refusal on benign validation prompts (lower is better)",
        "judge": scorer.describe(),
        "prompts": {"target": len(targets), "benign": len(benign),
                    "digest": prompts_digest([*targets, *benign])},
        "max_new_tokens": recipe.select.max_new_tokens,
        "candidates": [c.to_dict() for c in cands],
        **{k: v for k, v in best.to_dict().items() if k in ("name", "stage", "step")},
    }
    result.selected = record
    return record
