"""``llmpatch build``: recipe -> data -> SFT -> DPO -> build-time evaluation -> patch directory.

Every input is checked before anything is trained (recipe, output directory, prompts, judges,
base memory, the pairs that survive the filters), and the patch directory is written atomically
at the very end, so a failed or interrupted build leaves no half-written patch behind. Work
(generated data, checkpoints) is kept under ``<home>/cache`` keyed by content, so rerunning the
same recipe resumes instead of starting over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from llmpatch import __version__, paths
from llmpatch.builder import data as data_mod
from llmpatch.builder import select as select_mod
from llmpatch.builder import train as train_mod
from llmpatch.builder.recipe import Recipe
from llmpatch.errors import BaseModelError, LlmpatchError, RecipeError
from llmpatch.evaluate.results import VerifyReport
from llmpatch.manifest import EvalClaim
from llmpatch.util import ProgressFactory, json_sha256, no_progress

log = logging.getLogger(__name__)
#: Memory beyond the weights a CPU build needs (activations, optimizer, tokenizer, judge), as a factor.
MEMORY_FACTOR = 1.5
MEMORY_OVERHEAD_GB = 1.0


@dataclass
class BuildResult:
    """What a build produced: its training data statistics and, when it ran to the end, the patch.

    One type for every way a build ends: a full build has ``patch``; ``--data-only`` stops after
    the data (``patch`` is None, ``stage == "data"``); under ``accelerate launch`` the processes
    other than the main one stop after training (``rank`` is set, ``stage == "trained"``).
    """

    work_dir: Path
    stats: dict[str, Any]
    data_key: str
    data_cached: bool
    patch: Any = None
    out_dir: Path | None = None
    training: dict[str, Any] = field(default_factory=dict)
    evals: list[EvalClaim] = field(default_factory=list)
    report: VerifyReport | None = None
    curves: dict[str, str] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    selection: dict[str, Any] | None = None
    rank: int | None = None
    #: composition-aware builds: the stacks evaluated (``StackEvidence``), as the manifest records them
    stacks: list[Any] = field(default_factory=list)
    #: and each stack's full report, by order (``verify-stack-<order>.json`` in the report directory)
    stack_reports: dict[str, VerifyReport] = field(default_factory=dict)
    #: a recipe that trains both forms (``generation.chat = "both"``/``"mixed"``): the patch alone
    #: evaluated in the form each suite does not use by default, by form (``verify-<form>.json``)
    form_reports: dict[str, VerifyReport] = field(default_factory=dict)

    @property
    def stage(self) -> str:
        """``written`` (a patch), ``trained`` (a non-main process) or ``data`` (``--data-only``)."""
        return "written" if self.patch is not None else "trained" if self.rank is not None else "data"

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form (``build.json`` for a written patch)."""
        if self.stage == "data":
            return {"data_key": self.data_key, "cached": self.data_cached, "stats": self.stats,
                    "work_dir": str(self.work_dir)}
        if self.stage == "trained":
            return {"rank": self.rank, "training": self.training}
        m = self.patch.manifest
        return {"patch": {"name": m.name, "version": m.version, "path": str(self.out_dir),
                          "num_virtual_tokens": m.num_virtual_tokens, "payload_sha256": self.patch.payload_sha256},
                "pairs": self.stats, "training": self.training, "evals": [e.to_dict() for e in self.evals], "curves": self.curves,
                "timing": self.timing, "data_cached": self.data_cached, "work_dir": str(self.work_dir),
                "selection": self.selection, **({"stacks": [st.to_dict() for st in self.stacks]} if self.stacks else {}),
                **({"other_forms": {form: [e.to_dict() for e in rep.eval_claims()] for form, rep in self.form_reports.items()}}
                   if self.form_reports else {})}


# -- pre-flight checks ------------------------------------------------------------------------


def available_memory_gb() -> float:
    """Memory available to this process now (Linux /proc/meminfo; else total physical memory)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / (1024 ** 2)
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / (1024 ** 3)


def parameter_count(model_dir: str | Path) -> int:
    """Parameters in a safetensors model directory, from the file headers (nothing loaded)."""
    from safetensors import safe_open

    total = 0
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                n = 1
                for d in st.get_slice(k).get_shape():
                    n *= int(d)
                total += n
    return total


def check_memory(model_dir: str | Path, label: str, *, limit_gb: float | None, models: int = 1) -> dict[str, float]:
    """Fail before loading when ``models`` fp32 copies of the base would not fit."""
    params = parameter_count(model_dir)
    need = models * params * 4 / 1024 ** 3 * MEMORY_FACTOR + MEMORY_OVERHEAD_GB
    have = float(limit_gb) if limit_gb else available_memory_gb()
    if need > have:
        raise BaseModelError(
            f"base {label} ({params / 1e6:.0f}M parameters) needs about {need:.1f} GB to build a patch in fp32 "
            f"({models} cop{'y' if models == 1 else 'ies'} of the weights + activations), but only {have:.1f} GB "
            f"{'is allowed (base.max_memory_gb)' if limit_gb else 'is available'}",
            hint="build on a machine with more memory (or a GPU, under accelerate launch), or raise base.max_memory_gb",
        )
    return {"parameters": params, "need_gb": round(need, 2), "available_gb": round(have, 2)}


def check_output(out_dir: Path, force: bool) -> None:
    """An output directory that exists and is not empty is refused unless forced."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not force:
        raise RecipeError(f"output directory {out_dir} already exists and is not empty",
                          hint="choose another -o DIR, or pass --force to replace it")


# -- the build --------------------------------------------------------------------------------


def _snapshots(recipe: Recipe) -> int:
    return recipe.select.snapshots if recipe.select.enabled else 0


def _neutral_dropped(section: dict[str, Any]) -> dict[str, Any]:
    """A recipe section without fields added later at their neutral value (keeps older stage keys valid)."""
    return {k: v for k, v in section.items() if not (k == "benign_repeat" and v == 1)}


def _work_dir(recipe: Recipe, data_key: str, td: data_mod.TrainingData, costack: Any = None) -> tuple[Path, str]:
    """The build's work directory (SFT stage) and the name of its DPO stage directory.

    SFT is keyed by what changes SFT (its rows and settings), and DPO by its pairs and settings
    inside it, so builds that differ only in ``dpo.*``, the pair filters that leave the SFT rows
    alone, or snapshots for selection reuse one trained SFT stage.
    """
    dpo_on = recipe.dpo.enabled
    sets = td.digest()
    blob = {"data": data_key, "sft_rows": sets["sft"], "tool": 3,
            "train": {k: _neutral_dropped(getattr(recipe, k).to_dict()) for k in ("prefix", "sft", "seeds", "training")},
            "sft_snapshots": 0 if dpo_on else _snapshots(recipe)}
    if costack is not None:
        blob["compose"] = costack.key()  # the co-prefix and its place are part of every forward pass
    if recipe.sft.gld_weight:
        blob["gld_penalty"] = train_mod.GLD_PENALTY  # a stage trained with another form of the penalty is not reused
    key = json_sha256(blob)
    dpo_blob = {"dpo": recipe.dpo.to_dict(), "pairs": sets["pairs"], "on_policy": recipe.pairs.on_policy,
                "snapshots": _snapshots(recipe) if dpo_on else 0}
    if recipe.dpo.gld_weight:
        dpo_blob["gld_penalty"] = train_mod.GLD_PENALTY
    if recipe.pairs.masked_twins:
        dpo_blob["masked_twins"] = True  # the on-policy pairs (sampled after SFT) get twins too
    dpo_key = json_sha256(dpo_blob)
    return paths.cache_dir("build-runs") / key[:24], f"dpo-{dpo_key[:16]}"


def _on_policy_pairs(recipe: Recipe, base: Any, scorer: data_mod.Scorer, data: dict[str, Any], sft_emb: Any, work: Path,
                    progress: ProgressFactory, costack: Any = None) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The SFT-patched model's answers to the training prompts (cached in the work dir) -> extra pairs.

    In a composition-aware build the SFT prefix answers inside the stack, in the first order trained for.
    """
    from llmpatch import atomic
    from llmpatch.runtime import PatchedModel

    pr, gen = recipe.pairs, recipe.generation
    n, seed = int(pr.on_policy), recipe.seeds.data + 2
    key = data_mod.on_policy_key(sft_emb, n, gen, seed, data["key"])
    path = work / f"on-policy-{key[:16]}.json"
    answers = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached["key"] == key and len(cached["answers"]) == len(data["items"]):
            answers = cached["answers"]
    cached = answers is not None
    if answers is None:
        prefix = costack.arrange(sft_emb, costack.orders[0]) if costack is not None else sft_emb
        answers = data_mod.sample_on_policy(PatchedModel(base, prefix=prefix), scorer, data["items"], n, gen, seed,
                                            progress=progress)
        atomic.write_json(path, {"key": key, "answers": answers}, durable=False)
    pairs, stats = data_mod.on_policy_pairs(data["items"], answers, delta=pr.delta, tau=pr.tau,
                                            masked_twins=bool(pr.masked_twins), chat=data["chat"])
    digest = "sha256:" + json_sha256(pairs)
    return pairs, {"per_prompt": n, "cached": cached, **stats, "pairs_digest": digest}


def evaluate_staged(work: Path, embeddings: Any, meta: dict[str, Any], evaluate: Callable[[Path], VerifyReport]) -> VerifyReport:
    """Write a staged copy of the patch under ``work``, evaluate it, and remove it (the real write comes after)."""
    from llmpatch import artifact

    stage_root = Path(tempfile.mkdtemp(prefix=".stage-", dir=work))
    try:
        staged = artifact.write_patch(stage_root / "patch", embeddings, **meta)
        return evaluate(staged.path)
    finally:
        shutil.rmtree(stage_root, ignore_errors=True)


def other_forms(recipe: Recipe, suites: Sequence[str]) -> list[tuple[str, bool, list[str]]]:
    """``(form, chat, suites)`` for the evaluation a two-form recipe also gets: each suite in the
    form it does not use by default (toxicity continues text, so ``chat``; the others are requests,
    so ``plain``). Empty for a one-form recipe.

    >>> r = Recipe.from_dict({"patch": {"name": "h", "version": "1.0.0", "summary": "s", "domain": "harmfulness"},
    ...                       "base": {"spec": "default"}}, overrides=['generation.chat="mixed"'])
    >>> other_forms(r, ["harmfulness", "utility", "toxicity"])
    [('plain', False, ['harmfulness', 'utility']), ('chat', True, ['toxicity'])]
    """
    from llmpatch.evaluate.prompts import canonical_suite

    if recipe.generation.chat not in ("both", "mixed"):
        return []
    plain = [s for s in suites if canonical_suite(s) != "toxicity"]
    chat = [s for s in suites if canonical_suite(s) == "toxicity"]
    return [(form, c, ss) for form, c, ss in (("plain", False, plain), ("chat", True, chat)) if ss]


def evaluate_patch(recipe: Recipe, patch_dir: Path, *, progress: ProgressFactory | None = None,
                   stack: list[Path] | None = None, suites: list[str] | None = None,
                   chat: bool | None = None) -> VerifyReport:
    """Run the domain's suites on held-out prompts: unpatched, system-prompt baseline, patched.

    ``stack`` (a composition-aware build): evaluate that whole stack (patch directories in order)
    instead of the patch alone, on ``suites``; ``eval.prompts`` sources for suites not run are skipped.
    ``chat``: every suite in that form (None: each suite's own, as ``llmpatch verify`` does).
    """
    from llmpatch.evaluate.prompts import canonical_suite
    from llmpatch.evaluate.run import VerifyOptions, run_suites

    ev = recipe.eval
    run = list(suites or ev.suites)
    sources = {k: v for k, v in (ev.prompts or {}).items() if v not in ("builtin", "default")}
    if recipe.compose is not None or suites:  # sources may name suites not run here (the co-patches', another form's)
        sources = {k: v for k, v in sources.items() if canonical_suite(k) in {canonical_suite(x) for x in run}}
    eval_src = (recipe.prompts.eval or ("builtin",))[0]
    if eval_src not in ("builtin", "default"):
        sources[recipe.domain] = eval_src
    opts = VerifyOptions(suites=tuple(run), sources=sources, split="eval", limit=ev.limit,
                         batch_size=ev.batch_size, max_new_tokens=ev.max_new_tokens, seed=recipe.seeds.data, n_boot=1000,
                         chat=chat)
    system_prompt = ev.system_prompt or recipe.reference.system_prompt
    report, _ = run_suites(recipe.base.spec, stack or [patch_dir], system_prompt=system_prompt, options=opts,
                           progress=progress)
    return report


def build(recipe: Recipe, out_dir: str | Path, *, force: bool = False, progress: ProgressFactory | None = None,
          report_dir: str | Path | None = None, use_cache: bool = True, data_only: bool = False,
          on_stage: Callable[[str, dict[str, Any]], None] | None = None) -> BuildResult:
    """Build the patch a recipe describes into ``out_dir``; see the module docstring."""
    from llmpatch import artifact
    from llmpatch import base as base_mod
    from llmpatch.builder import costack as costack_mod
    from llmpatch.builder.reference import make_policy
    from llmpatch.loading import load_patched
    from llmpatch.runtime import PatchedModel

    progress = progress or no_progress
    def note(stage: str, info: dict[str, Any]) -> None:
        log.info("build stage %s: %s", stage, json.dumps(info, default=str)[:2000])
        if on_stage:
            on_stage(stage, info)

    out = Path(out_dir)
    started = time.monotonic()
    timing: dict[str, float] = {}
    if not data_only:
        check_output(out, force)

    # 1. everything that can be checked without a model
    prompts = data_mod.load_train_prompts(recipe)
    scorer = data_mod.Scorer.for_recipe(recipe)
    try:
        info = base_mod.identify(recipe.base.spec)
    except LlmpatchError as exc:
        raise type(exc)(f"base.spec {recipe.base.spec!r}: {exc.message}", hint=exc.hint) from None
    # a composition-aware build's co-patches: verified, for this very base, before any model is loaded
    costack = costack_mod.resolve(recipe, info.to_ref())
    two = recipe.reference.kind == "model"
    memory = check_memory(info.path, info.id, limit_gb=recipe.base.max_memory_gb, models=3 if two else 2)
    if two:
        ref_info = base_mod.identify(recipe.reference.model)
        check_memory(ref_info.path, ref_info.id, limit_gb=recipe.base.max_memory_gb, models=3)
    note("checked", {"prompts": len(prompts), "base": info.id, "memory": memory,
                     **({"compose": costack.describe()} if costack is not None else {})})

    # 2. data: samples of M and M', judged; cached by content. M is the model as deployed: in a
    # composition-aware build the base with the co-patches (the customer's stack without the new patch)
    t0 = time.monotonic()
    model = load_patched(recipe.base.spec)
    unpatched = PatchedModel(model.base, costack.stack(info.to_ref()) if costack is not None else None)
    policy = make_policy(recipe, unpatched, scorer)
    data = data_mod.generate_data(recipe, unpatched, policy, scorer, prompts, progress=progress, use_cache=use_cache)
    timing["data_s"] = round(time.monotonic() - t0, 1)
    pr = recipe.pairs
    td = data_mod.build_sets(data, delta=pr.delta, tau=pr.tau, benign_contrast=pr.benign_contrast,
                             fallback_text=recipe.reference.fallback_text, contrast_words=pr.contrast_words,
                             benign_repeat=recipe.sft.benign_repeat,
                             utility=recipe.utility if recipe.utility.enabled else None,
                             gender_swap=bool(pr.gender_swap), masked_twins=bool(pr.masked_twins))
    note("data", {"cached": data["cached"], "stats": td.stats})
    data_mod.check_pairs(td, min_pairs=pr.min_pairs, judge=recipe.judge.name)
    work, dpo_dir = _work_dir(recipe, data["key"], td, costack)
    validation = None
    if recipe.select.enabled:
        # checked before training: validation prompts exist and are not trained on
        validation = select_mod.load_validation(recipe)
        utility_validation = select_mod.load_utility_validation(recipe)
        select_mod.check_disjoint([*validation[0], *validation[1], *(it for it, _ in utility_validation)],
                                  {p.text for p in prompts})
        if utility_validation:
            from llmpatch.evaluate.utility import check_embedder

            check_embedder()  # selection compares everyday answers with all-MiniLM-L6-v2: fail now, not after training
    if data_only:
        return BuildResult(work, td.stats, data["key"], bool(data["cached"]))

    # 3. training (checkpointed in the work directory); on-policy pairs are sampled between SFT and DPO
    t0 = time.monotonic()
    on_policy: dict[str, Any] = {}
    more_pairs = None
    if pr.on_policy and recipe.dpo.enabled:
        def more_pairs(sft_emb: Any) -> list[dict[str, str]]:
            t1 = time.monotonic()
            pairs, stats = _on_policy_pairs(recipe, model.base, scorer, data, sft_emb, work, progress, costack)
            on_policy.update(stats, seconds=round(time.monotonic() - t1, 1))
            note("on_policy", on_policy)
            return pairs
    result = train_mod.train(recipe, info.path, td.sft, td.pairs, td.chat, work, progress=progress, dpo_dir=dpo_dir,
                             snapshots=_snapshots(recipe), more_pairs=more_pairs, costack=costack,
                             gld_prompts=data_mod.domain_prompts(data))
    timing["train_s"] = round(time.monotonic() - t0, 1)
    if on_policy:
        td.stats["on_policy"] = on_policy
    from accelerate import PartialState

    if not PartialState().is_main_process:
        # under `accelerate launch` every process trains its shard; only the main one selects, evaluates and writes
        return BuildResult(work, td.stats, data["key"], bool(data["cached"]), training=result.summary(),
                           rank=PartialState().process_index)
    selection = None
    if validation is not None:
        # 3b. checkpoint selection on validation prompts (never the held-out eval split)
        t0 = time.monotonic()
        selection = select_mod.select(recipe, result, model.base, scorer, {p.text for p in prompts}, progress=progress,
                                      costack=costack)
        timing["select_s"] = round(time.monotonic() - t0, 1)
        note("selected", {k: selection[k] for k in ("name", "candidates")})
    curves = train_mod.save_curves(result, Path(report_dir) if report_dir else work,
                                   title=f"{recipe.patch.name} {recipe.patch.version}")
    note("trained", result.summary())

    p = recipe.patch
    init = f"text:{recipe.prefix.init_text}" if recipe.prefix.init == "text" else "random"
    build_info = {
        "tool": f"llmpatch {__version__}",
        "recipe": recipe.to_dict(),
        "reference_policy": policy.describe(),
        "seeds": recipe.seeds.to_dict(),
        "data": {"key": data["key"], "prompts": {"train": td.stats["prompts"], "benign": td.stats["benign_prompts"],
                                                 "digest": data.get("prompts_digest")},
                 "judges": scorer.describe(), **td.digest(), "pair_stats": td.stats},
        "training": {**result.summary(), "trainer": "trl SFTTrainer + DPOTrainer", "dpo_reference": recipe.dpo.reference,
                     "dpo_beta": recipe.dpo.beta},
    }
    if selection is not None:
        build_info["selection"] = selection
    if costack is not None:
        build_info["compose"] = costack.describe()
    meta = dict(name=p.name, version=p.version, summary=p.summary, domains=[_domain_tag(recipe.domain)],
                base=info.to_ref(), build=build_info, requires=dict(p.requires or {}), conflicts=dict(p.conflicts or {}),
                license=p.license, init=init, description=p.description, authors=p.authors or (), dtype=p.dtype)

    # 4. build-time evaluation on held-out prompts, from a staged copy (alone, and in every stack order
    # a composition-aware build trained for); then the real, atomic write
    report = None
    evals: list[EvalClaim] = []
    stacks: list[Any] = []
    stack_reports: dict[str, VerifyReport] = {}
    form_reports: dict[str, VerifyReport] = {}
    if recipe.eval.enabled:
        t0 = time.monotonic()
        def evaluate_all(staged: Path) -> VerifyReport:
            nonlocal stacks, stack_reports
            solo = evaluate_patch(recipe, staged, progress=progress)
            for form, chat, suites in other_forms(recipe, [s.name for s in solo.suites]):
                form_reports[form] = evaluate_patch(recipe, staged, progress=progress, suites=suites, chat=chat)
            if costack is not None:  # after the solo run: the unpatched columns come from its cache
                stacks, stack_reports = _evaluate_stacks(recipe, costack, staged, progress)
            return solo

        report = evaluate_staged(work, result.embeddings, meta, evaluate_all)
        # the manifest records both forms of a two-form recipe; each claim says its form, and verify
        # compares it only with a run in that form (`verify --chat off` checks the plain-text claims)
        evals = report.eval_claims() + [c for rep in form_reports.values() for c in rep.eval_claims()]
        timing["eval_s"] = round(time.monotonic() - t0, 1)
        note("evaluated", {"evals": [(e.suite, e.metric, e.base_value, e.baseline_value, e.value) for e in evals],
                           **({"stacks": [st.to_dict() for st in stacks]} if stacks else {})})
    patch = artifact.write_patch(out, result.embeddings, evals=evals, overwrite=force, stacks=stacks, **meta)
    timing["total_s"] = round(time.monotonic() - started, 1)
    res = BuildResult(work, td.stats, data["key"], bool(data["cached"]), patch=patch, out_dir=out,
                      training=build_info["training"], evals=evals, report=report, curves=curves, timing=timing,
                      selection=selection, stacks=stacks, stack_reports=stack_reports, form_reports=form_reports)
    if report_dir:
        _write_report(Path(report_dir), res, recipe)
    return res


def _evaluate_stacks(recipe: Recipe, costack: Any, staged: Path,
                     progress: ProgressFactory | None) -> tuple[list[Any], dict[str, VerifyReport]]:
    """Evaluate the staged patch in every order the build trained for: the manifest's ``stacks``
    entries and each stack's report."""
    from llmpatch.manifest import StackEvidence

    suites = costack.eval_suites(recipe)
    out, reports = [], {}
    for order in costack.orders:
        rep = evaluate_patch(recipe, staged, progress=progress, stack=costack.patch_dirs(staged, order), suites=suites)
        out.append(StackEvidence(costack.members(recipe.patch.name, recipe.patch.version, order),
                                 tuple(rep.eval_claims()), trained=True))
        reports[order] = rep
    return out, reports


def _domain_tag(domain: str) -> str:
    return {"gender": "gender_bias"}.get(domain, domain)


def write_report_json(report_dir: Path, name: str, summary: dict[str, Any], report: VerifyReport | None) -> None:
    """``name`` (the build's or merge's summary) and, when evaluated, ``verify.json`` (the full verify report)."""
    (report_dir / name).write_text(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n")
    if report is not None:
        (report_dir / "verify.json").write_text(json.dumps(report.to_dict(), indent=1, sort_keys=True, default=str) + "\n")


def _write_report(report_dir: Path, res: BuildResult, recipe: Recipe) -> None:
    """``build.json`` (everything) and, when evaluated, ``verify.json`` (the full verify report)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    d = res.to_dict()
    d["recipe"] = recipe.to_dict()
    d["work_dir"] = None  # a local path: not useful in a committed results file
    write_report_json(report_dir, "build.json", d, res.report)
    for form, rep in res.form_reports.items():
        (report_dir / f"verify-{form}.json").write_text(json.dumps(rep.to_dict(), indent=1, sort_keys=True, default=str) + "\n")
    for order, rep in res.stack_reports.items():
        (report_dir / f"verify-stack-{order}.json").write_text(
            json.dumps(rep.to_dict(), indent=1, sort_keys=True, default=str) + "\n")
