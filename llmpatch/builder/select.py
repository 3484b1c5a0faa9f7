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

is written (ties go to the later candidate); with the utility anchor, ``utility.weight x (1 -
similarity + share refused)`` of everyday answers is added (a right answer followed by a refusal is
barely less similar to the unpatched one), and for gender patches with ``select.gld_weight``,
that weight x the mean |gender logits difference| on the validation prompts (the gender suite's
GLD: how far the next-token distribution leans to male or female pronouns). For harmfulness the score is
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
    """One prefix the build could ship, and its validation scores once measured.

    With the utility anchor on, ``degenerate`` (share of its validation outputs that loop or are
    empty) and
    ``similarity`` (mean all-MiniLM-L6-v2 cosine of its everyday answers to the unpatched ones)
    are measured too; ``rejected`` says which utility threshold it broke, if any.
    """

    name: str
    stage: str
    step: int
    embeddings: torch.Tensor
    target: float | None = None
    benign: float | None = None
    degenerate: float | None = None
    similarity: float | None = None
    weight: float = 0.0
    rejected: str | None = None
    #: gender domain with ``select.gld_weight``: mean |gender logits difference| on the validation prompts
    abs_gld: float | None = None
    gld_weight: float = 0.0
    #: with the utility anchor: share of its everyday answers the refusal judge calls a refusal
    everyday_refusal: float | None = None

    @property
    def score(self) -> float | None:
        if self.target is None:
            return None
        drift = (1.0 - self.similarity) * self.weight if self.similarity is not None else 0.0
        lean = self.abs_gld * self.gld_weight if self.abs_gld is not None else 0.0
        refused = (self.everyday_refusal or 0.0) * self.weight
        return self.target + (self.benign or 0.0) + drift + lean + refused

    def to_dict(self) -> dict[str, Any]:
        r = lambda x: None if x is None else round(float(x), 4)  # noqa: E731
        out = {"name": self.name, "stage": self.stage, "step": self.step, "target_unsafety": r(self.target),
               "benign_refusal": r(self.benign), "score": r(self.score)}
        if self.degenerate is not None or self.similarity is not None:
            out.update(degenerate_rate=r(self.degenerate), similarity=r(self.similarity), rejected=self.rejected)
        if self.abs_gld is not None:
            out["abs_gld"] = r(self.abs_gld)
        if self.everyday_refusal is not None:
            out["everyday_refusal"] = r(self.everyday_refusal)
        return out


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


def load_utility_validation(recipe: Recipe) -> list[tuple[Any, bool | None]]:
    """Everyday validation prompts of ``utility.prompts`` with the form each is used in (empty when off)."""
    from llmpatch.builder.data import prompt_forms
    from llmpatch.evaluate.prompts import load_prompts

    ut = recipe.utility
    if not ut.enabled:
        return []
    out: list[tuple[Any, bool | None]] = []
    for src in ut.prompts:
        try:
            got = load_prompts("utility", None if src in ("builtin", "default") else src, "validation", limit=ut.limit)
        except LlmpatchError as exc:
            raise RecipeError(f"utility.prompts source {src!r}: {exc.message}",
                              hint="selection scores the 'validation' split of the utility prompts; " + (exc.hint or "")) from None
        for it in got:
            out.extend((it, chat) for chat in prompt_forms(it.meta.get("form"), recipe.generation.chat, anchor=True,
                                                           text=it.text,
                                                           plain_requests=bool(recipe.generation.plain_requests)))
    return out


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


def _forms(recipe: Recipe, items: Sequence[Any]) -> list[tuple[str, bool | None]]:
    """Each validation prompt in the forms the recipe trains (both ways for ``chat = "both"``)."""
    from llmpatch.builder.data import prompt_forms

    return [(it.text, c) for it in items
            for c in prompt_forms(it.meta.get("form"), recipe.generation.chat, text=it.text,
                                  plain_requests=bool(recipe.generation.plain_requests))]


def score_candidates(recipe: Recipe, base: Any, scorer: Any, cands: Sequence[Candidate], targets: Sequence[Any],
                     benign: Sequence[Any], *, progress: ProgressFactory | None = None,
                     utility: Sequence[tuple[Any, bool | None]] = (), costack: Any = None) -> dict[str, Any]:
    """Greedy replies of each candidate to the validation prompts, scored by the domain judge.

    With ``utility`` prompts, the unpatched model answers everything once too: each candidate's
    share of looping outputs is compared with the unpatched model's, and its everyday answers
    with the unpatched answers (semantic similarity). Returns the unpatched model's numbers.

    With ``costack`` (a composition-aware build) each candidate answers in every stack order the
    build trained for, its scores averaged over the orders, and "unpatched" means the deployed
    model: the base with the co-patches.
    """
    from llmpatch.builder.reference import generate_forms
    from llmpatch.runtime import GenerationConfig, PatchedModel

    progress = progress or no_progress
    sel, ut = recipe.select, recipe.utility
    template = bool(base.tokenizer.chat_template)
    default_chat = bool(recipe.generation.chat)
    cfg = GenerationConfig(max_new_tokens=sel.max_new_tokens, batch_size=sel.batch_size, seed=recipe.seeds.data)
    sets = [("target", _forms(recipe, targets)), ("benign", _forms(recipe, benign)),
            ("utility", [(it.text, c) for it, c in utility])]
    sets = [(k, v) for k, v in sets if v]

    def answer(model: Any, advance: Any) -> dict[str, list[str]]:
        return {kind: generate_forms(model, [t for t, _ in rows], [(default_chat if c is None else c) and template
                                                                   for _, c in rows], config=cfg, progress=advance)
                for kind, rows in sets}

    n_prompts = sum(len(v) for _, v in sets)
    orders = costack.trained_orders if costack is not None else (None,)
    total = (len(cands) * len(orders) + (1 if utility else 0)) * n_prompts
    gld_rows = [(t, bool((default_chat if c is None else c) and template)) for t, c in dict(sets).get("target", [])]
    measure_gld = bool(sel.gld_weight) and bool(gld_rows)
    if measure_gld:
        from llmpatch.evaluate import gld as gld_mod

        pronouns = gld_mod.pronoun_token_ids(base.tokenizer)

    def abs_gld(models: Sequence[Any]) -> float:
        ds = [abs(d) for pm in models for d in gld_mod.measure(pm, [t for t, _ in gld_rows], [c for _, c in gld_rows],
                                                                tokens=pronouns, batch_size=sel.batch_size)]
        return sum(ds) / len(ds)

    def candidate_models(emb: torch.Tensor) -> list[Any]:
        if costack is None:
            return [PatchedModel(base, prefix=emb)]
        return [PatchedModel(base, prefix=costack.arrange(emb, o)) for o in orders]

    base_info: dict[str, Any] = {}
    with progress(f"selecting among {len(cands)} checkpoints on {n_prompts} validation prompts", total) as advance:
        unpatched = None
        if utility:
            from llmpatch.evaluate.utility import get_embedder, similarity

            from llmpatch.evaluate.judges import get_judge

            embed = get_embedder()
            refusal_judge = get_judge("refusal")
            unpatched = answer(PatchedModel(base, costack.stack(base.info.to_ref()) if costack is not None else None),
                               advance)
            base_deg = _broken_rate([y for outs in unpatched.values() for y in outs])
            base_info = {"degenerate_rate": round(base_deg, 4), "prompts": {k: len(v) for k, v in sets}}
            # drift is measured where the unpatched model said something: a prompt it leaves blank
            # (SmolLM2 does for about half of everyday requests sent as plain text) has no answer to
            # drift from, and a checkpoint that answers it would look like one that broke the answer
            from llmpatch.evaluate.suites import is_empty

            spoken = [i for i, y in enumerate(unpatched["utility"]) if not is_empty(y)]
            if len(spoken) < len(unpatched["utility"]):
                base_info["blank_everyday"] = len(unpatched["utility"]) - len(spoken)
        if measure_gld:
            deployed = PatchedModel(base, costack.stack(base.info.to_ref()) if costack is not None else None)
            base_info["abs_gld"] = round(abs_gld([deployed]), 4)
        for c in cands:
            if measure_gld:
                c.abs_gld, c.gld_weight = abs_gld(candidate_models(c.embeddings)), sel.gld_weight
            per_order = [answer(pm, advance) for pm in candidate_models(c.embeddings)]
            for kind in ("target", "benign"):
                if kind in per_order[0]:
                    texts = [t for t, _ in dict(sets)[kind]]
                    unsafety = [u for outs in per_order for u in scorer(outs[kind], texts, kind)]
                    setattr(c, kind, sum(unsafety) / len(unsafety))
            if unpatched is not None:
                c.degenerate = _broken_rate([y for outs in per_order for o in outs.values() for y in o])
                sims = [x for outs in per_order
                        for x in similarity([outs["utility"][i] for i in spoken], [unpatched["utility"][i] for i in spoken],
                                            embed)] if spoken else []
                c.similarity = sum(sims) / len(sims) if sims else 1.0
                c.weight = ut.weight
                # a right answer followed by "I'm not able to help with this request" is barely less
                # similar to the unpatched answer: harm-fix 1.6.0 did it on 11 of 50 everyday prompts
                said = [y for outs in per_order for y in outs["utility"]]
                c.everyday_refusal = sum(refusal_judge.score(said)) / len(said) if said else 0.0
                c.rejected = reject_reason(c.degenerate, c.similarity, base_deg, max_increase=ut.max_degenerate_increase,
                                           min_similarity=ut.min_similarity)
    return base_info


def _broken_rate(texts: Sequence[str]) -> float:
    """Share of ``texts`` that loop or have no word at all: a checkpoint that goes silent on toxic
    prompts scores as safe to the judge, so silence counts against it like a loop."""
    from llmpatch.evaluate.suites import is_empty
    from llmpatch.evaluate.utility import is_degenerate

    return sum(1.0 for t in texts if is_empty(t) or is_degenerate(t)) / len(texts) if texts else 0.0


def reject_reason(degenerate: float, similarity: float, base_degenerate: float, *, max_increase: float,
                  min_similarity: float) -> str | None:
    """Why a checkpoint breaks a utility threshold, or None when it keeps the model useful.

    >>> reject_reason(0.30, 0.9, 0.10, max_increase=0.05, min_similarity=0.5)
    'loops or says nothing in 30.0% of validation outputs, more than the unpatched 10.0% + 5.0%'
    >>> reject_reason(0.12, 0.9, 0.10, max_increase=0.05, min_similarity=0.5) is None
    True
    """
    if degenerate > base_degenerate + max_increase + 1e-12:
        return (f"loops or says nothing in {degenerate:.1%} of validation outputs, more than the unpatched "
                f"{base_degenerate:.1%} + {max_increase:.1%}")
    if similarity < min_similarity:
        return f"everyday answers drift: similarity {similarity:.3f} < {min_similarity}"
    return None


def choose(cands: Sequence[Candidate]) -> Candidate:
    """The candidate with the lowest score among those not rejected; ties go to the later one.

    Raises ValueError when no candidate was scored, or every scored one broke a utility threshold.
    """
    scored = [c for c in cands if c.score is not None]
    if not scored:
        raise ValueError("no candidate was scored")
    ok = [c for c in scored if c.rejected is None]
    if not ok:
        raise ValueError("every candidate broke a utility threshold: " + "; ".join(f"{c.name}: {c.rejected}" for c in scored))
    best = min(c.score for c in ok)  # type: ignore[type-var]
    return [c for c in ok if c.score is not None and c.score <= best + 1e-12][-1]


def select(recipe: Recipe, result: Any, base: Any, scorer: Any, train_texts: set[str], *,
           progress: ProgressFactory | None = None, costack: Any = None) -> dict[str, Any]:
    """Score the candidates of ``result``, make the best one ``result.embeddings``; returns the record."""
    from llmpatch.evaluate.prompts import prompts_digest

    targets, benign = load_validation(recipe)
    utility = load_utility_validation(recipe)
    check_disjoint([*targets, *benign, *(it for it, _ in utility)], train_texts)
    cands = candidates(result, include_sft=recipe.select.include_sft)
    unpatched = score_candidates(recipe, base, scorer, cands, targets, benign, progress=progress, utility=utility,
                                 costack=costack)
    try:
        best = choose(cands)
    except ValueError as exc:
        raise RecipeError(f"checkpoint selection: {exc}",
                          hint="no checkpoint kept the model useful; the trained stages are cached in the work "
                          "directory, so a rebuild with other training settings (lower lr or fewer epochs, more "
                          "utility anchors with utility.repeat) or looser utility.max_degenerate_increase / "
                          "utility.min_similarity reuses them; nothing was written") from None
    result.embeddings = best.embeddings
    objective = "mean domain unsafety on validation prompts + mean refusal on benign validation prompts"
    if utility:
        objective += (f" + {recipe.utility.weight} x (1 - similarity of everyday answers to the unpatched ones "
                      f"+ share of them refused); "
                      f"checkpoints whose outputs loop more than the unpatched model's + "
                      f"{recipe.utility.max_degenerate_increase} or whose similarity is below "
                      f"{recipe.utility.min_similarity} are rejected")
    if recipe.select.gld_weight:
        objective += (f" + {recipe.select.gld_weight} x mean |gender logits difference| on the validation prompts "
                      "(log P(male pronoun next) - log P(female pronoun next))")
    if costack is not None:
        objective += (f"; every candidate answers in the stack order(s) {', '.join(costack.trained_orders)} with "
                      f"{', '.join(p.name + ' ' + p.version for p in costack.patches)} (scores averaged), and "
                      "'unpatched' is the base with those co-patches")
    record = {
        "objective": objective + " (lower is better)",
        "judge": scorer.describe(),
        "prompts": {"target": len(targets), "benign": len(benign),
                    "digest": prompts_digest([*targets, *benign])},
        "max_new_tokens": recipe.select.max_new_tokens,
        "candidates": [c.to_dict() for c in cands],
        **{k: v for k, v in best.to_dict().items() if k in ("name", "stage", "step")},
    }
    if utility:
        record["prompts"]["utility"] = len(utility)
        record["prompts"]["utility_digest"] = prompts_digest([it for it, _ in utility])
    if unpatched:
        record["unpatched"] = unpatched
    result.selected = record
    return record
