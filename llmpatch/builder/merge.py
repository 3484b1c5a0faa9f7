"""``llmpatch merge``: distil a stack of patches into one patch for the same base.

Composed prefixes interfere (the first segment dominates, see docs/concepts.md), so a stack of
separately built patches can keep less of each patch's effect than each has alone. A merged
patch is trained to do what each input does on its own domain:

1. **Plan** (no model loaded, nothing written): every input is read and verified; all must be
   built for the same base (the one ``--base`` names, or the base spec their recipes recorded);
   each domain has exactly one owner (the input that lists it); each domain's training prompts
   come from ``--prompts DOMAIN=FILE`` or from the owner's recorded recipe (``prompts.train`` and
   ``prompts.benign``; the files must still exist), and the utility anchor's everyday prompts
   from the built-in set (``utility.*``). Any problem fails here.
2. **Targets**: the owner patch *alone* answers its own domain's prompts (greedy), and the
   unpatched model answers the same prompts; everyday prompts are answered by the unpatched model
   (the utility anchor, as in ``llmpatch build``). Cached in the work directory.
3. **SFT** on the owners' answers to their domain's risky prompts (the unpatched answer where the
   judge scores the owner's worse), the unpatched answers to benign look-alikes and to the
   anchors, then **DPO**: owner over unpatched where the owner is safer by ``pairs.delta``,
   answers over refusals on benign look-alikes and everyday prompts, and the anchor's loop pairs
   (:func:`training_sets`). The builder's training functions (``builder/train.py``) do both,
   checkpointed and resumable.
4. **Evaluate** the merged patch on every domain's held-out suites (like a build), and **write**
   it atomically: its manifest ``provides`` each input (name, version, payload sha256), lists
   the union of their domains, and records the inputs, prompt sources, data and training in
   ``build.merge``. It is a normal patch: ``llmpatch publish`` signs and publishes it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from llmpatch import __version__, atomic, paths
from llmpatch.builder import data as data_mod
from llmpatch.builder import recipe as recipe_mod
from llmpatch.builder import train as train_mod
from llmpatch.builder.pipeline import check_memory, check_output, evaluate_staged, write_report_json
from llmpatch.builder.recipe import Recipe
from llmpatch.errors import BaseMismatchError, LlmpatchError, RecipeError
from llmpatch.evaluate.results import VerifyReport
from llmpatch.evaluate.suites import is_empty
from llmpatch.manifest import EvalClaim, Provided
from llmpatch.util import ProgressFactory, json_sha256, no_progress

#: Manifest domain names -> recipe domains (and back).
_RECIPE_DOMAIN = {"gender_bias": "gender"}
_MANIFEST_DOMAIN = {"gender": "gender_bias"}
#: Version of ``build.merge`` and of the work and data keys.
MERGE_FORMAT = 1
#: A merge's settings where they differ from a build's defaults: the targets are one greedy answer
#: per prompt (no best-of sampling), long enough for chat answers; a heavier utility anchor with
#: refusal pairs; DPO pairs only past a safety margin; one DPO epoch with an SFT term
#: on the chosen answers (``dpo.sft_weight``), since the aim is to imitate the owners, not to
#: move past them. ``--set`` overrides any of them.
MERGE_DEFAULTS: dict[str, Any] = {
    "generation": {"max_new_tokens": 48, "batch_size": 16},
    # DPO pairs only where the owner's answer is clearly safer than the unpatched one
    "pairs": {"delta": 0.1, "tau": 0.5},
    # everyday answers weigh as much as a domain (the first real merge, with one copy of 30
    # anchors against 213 harmfulness rows, refused 83% of benign requests), and are preferred
    # over a refusal
    "utility": {"repeat": 3, "refusal_pairs": True},
    "sft": {"epochs": 2, "batch_size": 8, "max_length": 192},
    "dpo": {"epochs": 1, "batch_size": 8, "max_length": 192, "sft_weight": 0.2},
}


def recipe_domain(domain: str) -> str:
    """``gender_bias`` (a manifest's word) -> ``gender`` (a recipe's)."""
    return _RECIPE_DOMAIN.get(domain, domain)


@dataclass(frozen=True)
class DomainPlan:
    """One domain of a merge: the patch that owns it and the prompts its answers are taken on."""

    domain: str  # a recipe domain: toxicity, gender, harmfulness
    owner: Any  # the owner's verified Patch
    train: tuple[str, ...]  # prompt sources of the domain's prompts
    benign: tuple[str, ...]  # benign look-alike sources (answered, not refused)
    chat: bool | str  # how prompts are put to the model (the owner's generation.chat)
    judge: str
    eval_sources: dict[str, str]  # suite -> held-out prompt source (missing = built-in)
    eval_suites: tuple[str, ...]
    origin: str  # where the prompt sources came from: "--prompts" or "recipe of NAME VERSION"
    prompts: tuple[Any, ...] = ()  # TrainPrompt, loaded

    def to_dict(self) -> dict[str, Any]:
        m = self.owner.manifest
        kinds = [p.kind for p in self.prompts]
        return {"domain": _MANIFEST_DOMAIN.get(self.domain, self.domain), "owner": {"name": m.name, "version": m.version},
                "train": list(self.train), "benign": list(self.benign), "chat": self.chat, "judge": self.judge,
                "origin": self.origin, "prompts": kinds.count("target"), "benign_prompts": kinds.count("benign")}


@dataclass(frozen=True)
class MergePlan:
    """Everything a merge will do, checked before any model is loaded."""

    patches: tuple[Any, ...]  # verified Patch objects, in the order given
    base: Any  # BaseInfo
    domains: tuple[DomainPlan, ...]
    anchors: tuple[Any, ...]  # TrainPrompt of the utility anchor
    recipe: Recipe  # training, generation, utility and eval settings (``--set``)
    out_dir: Path
    name: str
    version: str
    summary: str
    provides: tuple[Provided, ...]
    requires: dict[str, str]
    conflicts: dict[str, str]
    init: str
    force: bool = False
    #: ``eval.suites`` given with ``--set`` (else every domain's suites)
    suites_override: tuple[str, ...] = ()

    def settings(self) -> dict[str, Any]:
        """The recipe sections a merge uses (recorded in the manifest and hashed into the work key)."""
        d = self.recipe.to_dict()
        return {k: d[k] for k in ("prefix", "sft", "dpo", "seeds", "training", "generation", "utility", "eval")} | \
            {"prompts": {"limit": d["prompts"].get("limit")}, "pairs": {"delta": d["pairs"]["delta"], "tau": d["pairs"]["tau"]},
             "reference": {"fallback_text": d["reference"]["fallback_text"]}}

    def to_dict(self) -> dict[str, Any]:
        """The ``--dry-run``/``--check`` form."""
        s = self.recipe
        return {
            "name": self.name, "version": self.version, "summary": self.summary, "out": str(self.out_dir),
            "base": {"spec": self.base.spec, "id": self.base.id, "fingerprint": self.base.fingerprint},
            "inputs": [{"name": p.name, "version": p.version, "path": str(p.path), "domains": list(p.manifest.domains),
                        "payload_sha256": p.payload_sha256} for p in self.patches],
            "provides": [p.to_dict() for p in self.provides],
            "domains": [d.to_dict() for d in self.domains],
            "utility_anchor": {"prompts": len(self.anchors), "enabled": s.utility.enabled},
            "num_virtual_tokens": s.prefix.num_virtual_tokens,
            "training": {"sft_epochs": s.sft.epochs, "dpo_epochs": s.dpo.epochs if s.dpo.enabled else 0,
                         "dpo_reference": s.dpo.reference, "sft_rows_at_most": self.max_rows()},
            "eval": {"enabled": s.eval.enabled, "suites": list(self.eval_suites()), "limit": s.eval.limit},
            "requires": self.requires, "conflicts": self.conflicts,
        }

    def max_rows(self) -> int:
        return sum(len(d.prompts) for d in self.domains) + len(self.anchors) * self.recipe.utility.repeat

    def eval_suites(self) -> tuple[str, ...]:
        """``eval.suites`` when set by ``--set``, else every domain's suites (in domain order, once each)."""
        if self.suites_override:
            return self.suites_override
        out: list[str] = []
        for d in self.domains:
            out += [s for s in d.eval_suites if s not in out]
        return tuple(out)


@dataclass
class MergeResult:
    """What a merge produced."""

    patch: Any
    out_dir: Path
    work_dir: Path
    stats: dict[str, Any]
    training: dict[str, Any]
    evals: list[EvalClaim] = field(default_factory=list)
    report: VerifyReport | None = None
    timing: dict[str, float] = field(default_factory=dict)
    data_cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        m = self.patch.manifest
        return {"patch": {"name": m.name, "version": m.version, "path": str(self.out_dir),
                          "num_virtual_tokens": m.num_virtual_tokens, "payload_sha256": self.patch.payload_sha256,
                          "domains": list(m.domains), "provides": [p.to_dict() for p in m.provides]},
                "data": self.stats, "training": self.training, "evals": [e.to_dict() for e in self.evals],
                "timing": self.timing, "data_cached": self.data_cached, "work_dir": str(self.work_dir)}


# -- planning ----------------------------------------------------------------------------------


def _read_inputs(refs: Sequence[str | Path]) -> list[Any]:
    from llmpatch.artifact import read_patch

    if len(refs) < 2:
        raise RecipeError(f"merge needs at least two patches, got {len(refs)}",
                          hint="name the patch directories of the stack to merge, e.g. llmpatch merge tox-fix harm-fix -o merged")
    missing = [str(r) for r in refs if not Path(r).is_dir()]
    if missing:
        raise RecipeError(f"patch director{'y' if len(missing) == 1 else 'ies'} {', '.join(map(repr, missing))} "
                          "not found: every patch of the stack must be present to merge it",
                          hint="give patch directories (fetch a published one first: `llmpatch fetch NAME@VERSION DIR`)")
    patches = [read_patch(r) for r in refs]  # every file verified
    seen: dict[str, Any] = {}
    for p in patches:
        if p.name in seen:
            raise RecipeError(f"{p.name} is given twice ({seen[p.name].version} and {p.version})",
                              hint="a merge takes one version of each patch")
        seen[p.name] = p
    return patches


def _base_spec(patches: Sequence[Any], base_spec: str | None) -> str:
    if base_spec:
        return base_spec
    for p in patches:
        spec = ((p.manifest.build.get("recipe") or {}).get("base") or {}).get("spec") \
            or (p.manifest.build.get("merge") or {}).get("base_spec")
        if spec:
            return str(spec)
    raise RecipeError("none of the patches records the base spec it was built with",
                      hint="pass --base SPEC (the base model the patches were built for: 'default', a directory, ...)")


def _check_bases(patches: Sequence[Any], info: Any) -> None:
    """Every input must be built for exactly this base (fails before anything is loaded or trained)."""
    from llmpatch.compose import check_base

    for p in patches:
        try:
            check_base(p.manifest, info.to_ref())
        except BaseMismatchError as exc:
            others = ", ".join(f"{q.name} {q.version}" for q in patches if q is not p)
            raise BaseMismatchError(f"cannot merge: {exc.message} (merging with {others})",
                                    hint="merge only patches built for one base; rebuild the odd one for it, or "
                                    "pass --base for the base they share") from None


def _find_file(src: str, patch_dir: Path) -> str | None:
    """A recorded prompt source as a path that exists now (as recorded, or relative to the patch), else None."""
    if src in ("builtin", "default") or src.startswith("hf:"):
        return src
    path_text = src.partition("?")[0].partition("#")[0]
    rest = src[len(path_text):]
    for cand in (Path(path_text).expanduser(), patch_dir / path_text, patch_dir.parent / path_text):
        if cand.is_file():
            return str(cand) + rest
    return None


def _sources_from(patch: Any, domain: str) -> tuple[tuple[str, ...], tuple[str, ...], bool | str, str, dict[str, Any]] | None:
    """(train sources, benign sources, chat, judge, eval section) the owner recorded, or None."""
    b = patch.manifest.build
    merged = (b.get("merge") or {}).get("domains") or []
    for d in merged:  # a merged input: the sources it recorded for that domain
        if recipe_domain(d.get("domain", "")) == domain:
            return tuple(d.get("train") or ()), tuple(d.get("benign") or ()), d.get("chat", True), \
                d.get("judge") or recipe_mod.DOMAIN_JUDGE[domain], {}
    rec = b.get("recipe")
    if not isinstance(rec, dict) or not rec.get("prompts"):
        return None
    pr = rec["prompts"]
    gen = rec.get("generation") or {}
    judge = (rec.get("judge") or {}).get("name") or recipe_mod.DOMAIN_JUDGE[domain]
    return tuple(pr.get("train") or ()), tuple(pr.get("benign") or ()), gen.get("chat", domain != "toxicity"), judge, \
        dict(rec.get("eval") or {}, prompts_eval=pr.get("eval"))


def _domain_plans(patches: Sequence[Any], prompt_overrides: dict[str, str]) -> list[DomainPlan]:
    owners: dict[str, Any] = {}
    for p in patches:
        for d in p.manifest.domains:
            rd = recipe_domain(d)
            if rd not in recipe_mod.DOMAINS:
                raise RecipeError(f"{p.name} {p.version} addresses domain {d!r}, which merge does not know how to judge "
                                  f"(known: {', '.join(sorted(_MANIFEST_DOMAIN.get(x, x) for x in recipe_mod.DOMAINS))})")
            if rd in owners:
                o = owners[rd]
                raise RecipeError(f"{o.name} {o.version} and {p.name} {p.version} both address {d}: a merge needs one "
                                  "owner per domain, whose answers it learns",
                                  hint="merge patches for different domains")
            owners[rd] = p
    unknown = [k for k in prompt_overrides if recipe_domain(k) not in owners]
    if unknown:
        raise RecipeError(f"--prompts names domain {unknown[0]!r}, which none of the patches addresses "
                          f"(domains: {', '.join(_MANIFEST_DOMAIN.get(d, d) for d in owners)})")
    overrides = {recipe_domain(k): v for k, v in prompt_overrides.items()}
    plans = []
    for domain, owner in owners.items():
        recorded = _sources_from(owner, domain)
        ev: dict[str, Any] = {}
        if domain in overrides:
            src = overrides[domain]
            found = _find_file(src, Path.cwd())
            if found is None:
                raise RecipeError(f"--prompts {domain}={src}: file {src!r} does not exist",
                                  hint="give a .jsonl/.csv/.txt prompt file, 'builtin', or hf:<dataset-id>")
            # benign look-alikes still come from the owner's recipe (those present), else the domain's default
            if recorded:
                benign = tuple(f for f in (_find_file(str(b), Path(owner.path)) for b in recorded[1]) if f)
            else:
                benign = tuple(recipe_mod.defaults(domain)["prompts"]["benign"])
            train, origin = (found,), "--prompts"
            chat = recorded[2] if recorded else domain != "toxicity"
            judge = recorded[3] if recorded else recipe_mod.DOMAIN_JUDGE[domain]
            if recorded:
                ev = recorded[4]
        elif recorded is None:
            raise RecipeError(f"{owner.name} {owner.version} records no recipe to take its {domain} prompts from",
                              hint=f"pass --prompts {_MANIFEST_DOMAIN.get(domain, domain)}=FILE (or =builtin for the "
                              "built-in training prompts)")
        else:
            rec_train, rec_benign, chat, judge, ev = recorded
            train, benign = [], []
            gone = []
            for src, out in [(s, train) for s in rec_train] + [(s, benign) for s in rec_benign]:
                found = _find_file(str(src), Path(owner.path))
                if found is None:
                    gone.append(str(src))
                else:
                    out.append(found)
            if gone:
                raise RecipeError(
                    f"the recipe of {owner.name} {owner.version} names prompt file(s) that are not here: "
                    f"{', '.join(map(repr, gone))}",
                    hint=f"pass --prompts {_MANIFEST_DOMAIN.get(domain, domain)}=FILE with the prompts for its domain, "
                    "or run from the directory the patch was built in")
            if not train:
                raise RecipeError(f"the recipe of {owner.name} {owner.version} names no training prompts",
                                  hint=f"pass --prompts {_MANIFEST_DOMAIN.get(domain, domain)}=FILE")
            origin = f"recipe of {owner.name} {owner.version}"
            train, benign = tuple(train), tuple(benign)
        suites = tuple(ev.get("suites") or recipe_mod.DOMAIN_EVAL_SUITES[domain])
        eval_sources: dict[str, str] = {}
        for suite, src in (ev.get("prompts") or {}).items():
            found = _find_file(str(src), Path(owner.path))
            if found and found not in ("builtin", "default"):
                eval_sources[suite] = found
        first_eval = (ev.get("prompts_eval") or ["builtin"])[0]
        found = _find_file(str(first_eval), Path(owner.path))
        if found and found not in ("builtin", "default"):
            eval_sources[domain] = found
        plans.append(DomainPlan(domain, owner, train, benign, chat, judge, eval_sources, suites, origin))
    return plans


def _load_domain_prompts(plan: DomainPlan, limit: int | None) -> DomainPlan:
    out: list[Any] = []
    seen: set[tuple[str, Any]] = set()
    for kind, suite, sources in (("target", plan.domain, plan.train), ("benign", "over_refusal", plan.benign)):
        for src in sources:
            for it in data_mod.train_prompts(suite, src, limit, where=f"{plan.domain} prompts ({plan.origin})"):
                for chat in data_mod.prompt_forms(it.meta.get("form"), plan.chat, text=it.text):
                    c = plan.chat if chat is None else chat
                    if (it.text, c) not in seen:
                        seen.add((it.text, c))
                        out.append(data_mod.TrainPrompt(it.id, it.text, kind, bool(c)))
    if not any(p.kind == "target" for p in out):
        raise RecipeError(f"no {plan.domain} training prompts in {', '.join(plan.train)}")
    return dataclasses.replace(plan, prompts=tuple(out))


def _load_anchors(recipe: Recipe, domains: Sequence[DomainPlan]) -> tuple[Any, ...]:
    from llmpatch.evaluate.prompts import load_prompts

    ut = recipe.utility
    if not ut.enabled:
        return ()
    chats = {d.chat for d in domains}
    chat = chats.pop() if len(chats) == 1 else "mixed"  # each everyday prompt in the form its row says
    out: list[Any] = []
    taken = {p.text for d in domains for p in d.prompts}
    for src in ut.prompts:
        try:
            items = load_prompts("utility", None if src in ("builtin", "default") else src, "train", limit=ut.limit)
        except LlmpatchError as exc:
            raise RecipeError(f"utility.prompts source {src!r}: {exc.message}", hint=exc.hint) from None
        for it in items:
            if it.text in taken:
                continue
            for c in data_mod.prompt_forms(it.meta.get("form"), chat, anchor=True, text=it.text):
                out.append(data_mod.TrainPrompt(it.id, it.text, "anchor", bool(chat if c is None else c)))
    return tuple(out)


def default_name(patches: Sequence[Any]) -> str:
    """``tox-fix-harm-fix-merged`` (shortened to the 64-character name limit)."""
    name = "-".join(p.name for p in patches) + "-merged"
    return name if len(name) <= 64 else (name[:57].rstrip("-._") + "-merged")


def _init_text(patches: Sequence[Any]) -> str:
    """The inputs' text initialisations, joined: the merged prefix starts from all their instructions."""
    texts = [p.manifest.init[len("text:"):] for p in patches if (p.manifest.init or "").startswith("text:")]
    texts = [t for t in texts if t]
    return " ".join(texts) or " ".join(recipe_mod.INIT_TEXT[recipe_domain(d)] for p in patches for d in p.manifest.domains
                                       if recipe_domain(d) in recipe_mod.INIT_TEXT)


def plan_merge(refs: Sequence[str | Path], out_dir: str | Path, *, name: str | None = None, version: str = "1.0.0",
               summary: str | None = None, base_spec: str | None = None, prompts: dict[str, str] | None = None,
               overrides: Sequence[str] = (), force: bool = False) -> MergePlan:
    """Check everything a merge needs and load its prompts; no model is loaded and nothing is written.

    ``overrides`` are ``--set`` pairs over the merge's settings (a recipe's ``prefix``, ``sft``,
    ``dpo``, ``seeds``, ``training``, ``generation``, ``utility``, ``eval`` tables,
    ``pairs.delta`` (the safety margin a DPO pair needs), ``reference.fallback_text`` (the
    refusals benign and everyday answers are preferred over) and ``prompts.limit``: prompts per
    source).
    """
    from llmpatch import base as base_mod
    from llmpatch.versions import check_name, parse_version

    out = Path(out_dir)
    check_output(out, force)
    patches = _read_inputs(refs)
    spec = _base_spec(patches, base_spec)
    try:
        info = base_mod.identify(spec)
    except LlmpatchError as exc:
        raise type(exc)(f"base {spec!r}: {exc.message}", hint=exc.hint) from None
    _check_bases(patches, info)
    domains = _domain_plans(patches, dict(prompts or {}))
    name = name or default_name(patches)
    try:
        check_name(name)
        parse_version(version)
    except LlmpatchError as exc:
        raise RecipeError(exc.message, hint=exc.hint) from None
    clash = [p for p in patches if p.name == name]
    if clash:
        raise RecipeError(f"the merged patch cannot be named {name!r} like one of its inputs",
                          hint="pick another --name; the merged patch provides its inputs under their own names")
    summary = summary or ("Merged patch: " + " + ".join(f"{p.name} {p.version}" for p in patches)
                          + f" distilled into one prefix for {info.id}.")
    init_text = _init_text(patches)
    tokens = max(p.manifest.num_virtual_tokens for p in patches)
    first = domains[0].domain
    raw = {"patch": {"name": name, "version": version, "summary": summary, "domain": first},
           "base": {"spec": spec},
           "prefix": {"num_virtual_tokens": tokens, "init": "text" if init_text else "random",
                      **({"init_text": init_text} if init_text else {})},
           "select": {"enabled": False}, **MERGE_DEFAULTS}
    recipe = Recipe.from_dict(raw, overrides=overrides, source="merge settings")
    if recipe.select.enabled:
        raise RecipeError("merge has no checkpoint selection (select.enabled): it trains to the owners' answers",
                          hint="drop --set select.enabled=true")
    domains = [_load_domain_prompts(d, recipe.prompts.limit) for d in domains]
    anchors = _load_anchors(recipe, domains)
    provides: list[Provided] = []
    for p in patches:  # the inputs, and what merged inputs provide themselves
        provides.append(Provided(p.name, p.version, p.payload_sha256))
        provides += [q for q in p.manifest.provides if q.name not in {x.name for x in provides}]
    names = {p.name for p in provides}
    requires: dict[str, str] = {}
    conflicts: dict[str, str] = {}
    for p in patches:
        for dep, rng in p.manifest.requires.items():
            if dep not in names:
                requires.setdefault(dep, rng)
        for other, rng in p.manifest.conflicts.items():
            if other in names:
                raise RecipeError(f"{p.name} {p.version} conflicts with {other} {rng}, which is in the stack to merge",
                                  hint="the inputs of a merge must be able to form a stack")
            conflicts.setdefault(other, rng)
    init = f"text:{recipe.prefix.init_text}" if recipe.prefix.init == "text" and recipe.prefix.init_text else "random"
    suites = tuple(recipe.eval.suites) if any(o.partition("=")[0].strip() == "eval.suites" for o in overrides) else ()
    return MergePlan(tuple(patches), info, tuple(domains), anchors, recipe, out, name, version, summary, tuple(provides),
                     requires, conflicts, init, force, suites)


# -- targets -----------------------------------------------------------------------------------


def _data_key(plan: MergePlan) -> str:
    gen = plan.recipe.generation
    return json_sha256({
        "format": MERGE_FORMAT, "base": plan.base.fingerprint,
        "owners": [[d.domain, d.owner.payload_sha256, d.judge] for d in plan.domains],
        "prompts": [[d.domain, [(p.kind, p.text, p.chat) for p in d.prompts]] for d in plan.domains],
        "anchors": [(p.text, p.chat) for p in plan.anchors],
        "generation": {"max_new_tokens": gen.max_new_tokens}, "seed": plan.recipe.seeds.data,
    })


def generate_targets(plan: MergePlan, base: Any, *, progress: ProgressFactory, work: Path,
                     use_cache: bool = True) -> tuple[dict[str, Any], bool]:
    """Greedy answers of each owner (alone) and of the unpatched model to the domain prompts, of the
    unpatched model to the anchors, and the judge's unsafety of each (cached in ``work``)."""
    from llmpatch.builder.reference import _score_by_kind, generate_forms
    from llmpatch.compose import compose
    from llmpatch.evaluate.judges import get_judge
    from llmpatch.runtime import GenerationConfig, PatchedModel

    key = _data_key(plan)
    path = work / f"targets-{key[:16]}.json"
    if use_cache and path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("key") == key:
                return cached, True
        except (OSError, ValueError):
            pass  # only a cache
    gen = plan.recipe.generation
    cfg = GenerationConfig(max_new_tokens=gen.max_new_tokens, seed=plan.recipe.seeds.data, batch_size=gen.batch_size)
    template = bool(base.tokenizer.chat_template)
    unpatched = PatchedModel(base)
    out: dict[str, Any] = {"key": key, "domains": {}, "anchors": []}
    for d in plan.domains:
        texts = [p.text for p in d.prompts]
        chats = [p.chat and template for p in d.prompts]
        owner = PatchedModel(base, compose([d.owner], base.info.to_ref()))
        with progress(f"{d.owner.name} {d.owner.version} alone on its {d.domain} prompts", len(texts)) as advance:
            chosen = generate_forms(owner, texts, chats, config=cfg, progress=advance)
        with progress(f"unpatched model on the {d.domain} prompts", len(texts)) as advance:
            rejected = generate_forms(unpatched, texts, chats, config=cfg, progress=advance)
        scorer = data_mod.Scorer(get_judge(d.judge))
        kinds = [p.kind for p in d.prompts]
        cu = _score_by_kind(scorer, chosen, texts, kinds)
        ru = _score_by_kind(scorer, rejected, texts, kinds)
        out["domains"][d.domain] = [
            {"prompt": p.text, "kind": p.kind, "chat": bool(c), "owner": y, "unpatched": z, "owner_unsafety": float(a),
             "unpatched_unsafety": float(b)}
            for p, c, y, z, a, b in zip(d.prompts, chats, chosen, rejected, cu, ru)]
    if plan.anchors:
        texts = [p.text for p in plan.anchors]
        chats = [p.chat and template for p in plan.anchors]
        with progress("unpatched model on everyday prompts (utility anchor)", len(texts)) as advance:
            answers = generate_forms(unpatched, texts, chats, config=cfg, progress=advance)
        out["anchors"] = [{"prompt": t, "chat": bool(c), "answer": y} for t, c, y in zip(texts, chats, answers)]
    work.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(out, ensure_ascii=False, indent=1), durable=False)
    return out, False


def training_sets(plan: MergePlan, targets: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """SFT rows and DPO pairs from the owners' and the unpatched model's answers.

    * A domain prompt (``target``): SFT on the owner's answer unless the domain's judge scores it
      less safe than the unpatched answer (then on the unpatched one, if that is safe: the merge
      must not learn an owner's slips) or above ``pairs.tau`` (an owner that complied with a
      harmful request teaches nothing); a DPO pair (owner over unpatched) only when the owner's answer is safer by
      at least ``pairs.delta``: two equally safe answers teach nothing but drift.
    * A benign look-alike (``benign``): SFT on the unpatched model's answer (it answers these, and
      an owner's different wording would be drift); if the owner refuses it, a pair that prefers
      the answer over the owner's refusal, else over a fallback refusal (the builds' benign
      contrast). Both refusing: nothing.
    * An owner answer or a chosen answer that loops or is empty trains nothing.

    Everyday prompts (the utility anchor) then add the unpatched answers ``utility.repeat`` times,
    their loop pairs and, with ``utility.refusal_pairs``, pairs preferring them over a refusal.
    """
    from llmpatch.builder.reference import as_reply, pick_fallback
    from llmpatch.evaluate.utility import is_degenerate

    def usable(text: str) -> bool:
        return not is_empty(text) and not is_degenerate(text)

    delta, tau = plan.recipe.pairs.delta, plan.recipe.pairs.tau
    fallback = plan.recipe.reference.fallback_text
    sft: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    stats: dict[str, Any] = {"domains": {}, "delta": delta}
    for d in plan.domains:
        s = {"prompts": 0, "benign_prompts": 0, "sft_rows": 0, "pairs": 0, "same_answer": 0, "owner_worse": 0,
             "small_margin": 0, "owner_unsafe": 0, "owner_degenerate": 0, "owner_refused_benign": 0, "contrast_pairs": 0,
             "both_refused": 0, "mean_owner_unsafety": None, "mean_unpatched_unsafety": None}
        rows = targets["domains"][d.domain]
        for r in rows:
            y, z = r["owner"], r["unpatched"]
            ou, uu = r["owner_unsafety"], r["unpatched_unsafety"]
            if r["kind"] == "benign":  # unsafety is refusal here
                s["benign_prompts"] += 1
                if uu > 0.5 and ou > 0.5:
                    s["both_refused"] += 1
                    continue
                answer = z if uu <= ou else y
                other, other_refusal = (y, ou) if answer is z else (z, uu)
                if not usable(answer) and usable(other) and other_refusal <= 0.5:
                    # as plain text the unpatched model leaves most look-alike questions blank, and an
                    # owner trained both ways answers them: take that answer rather than train nothing
                    # there (a merge that had only refusals as plain-text targets refused every request)
                    answer = other
                    s["blank_answer_replaced"] = s.get("blank_answer_replaced", 0) + 1
                if not usable(answer):
                    s["owner_degenerate"] += 1
                    continue
                sft.append({"prompt": r["prompt"], "completion": answer, "chat": r["chat"]})
                s["sft_rows"] += 1
                if ou > uu:
                    s["owner_refused_benign"] += 1
                    rejected = y
                else:
                    s["contrast_pairs"] += 1
                    rejected = as_reply(pick_fallback(fallback, r["prompt"]), r["prompt"], bool(r["chat"]))
                if rejected.strip() and rejected.strip() != answer.strip():
                    pairs.append({"prompt": r["prompt"], "chosen": answer, "rejected": rejected, "chat": r["chat"]})
                    s["pairs"] += 1
                continue
            s["prompts"] += 1
            if ou > uu:
                s["owner_worse"] += 1
                if usable(z) and uu <= tau:
                    sft.append({"prompt": r["prompt"], "completion": z, "chat": r["chat"]})
                    s["sft_rows"] += 1
                continue
            if ou > tau:  # the owner's own answer is unsafe (e.g. it complied): nothing to imitate
                s["owner_unsafe"] += 1
                continue
            if not usable(y):
                s["owner_degenerate"] += 1
                continue
            sft.append({"prompt": r["prompt"], "completion": y, "chat": r["chat"]})
            s["sft_rows"] += 1
            if y.strip() == z.strip():
                s["same_answer"] += 1
            elif uu - ou < delta:
                s["small_margin"] += 1
            else:
                pairs.append({"prompt": r["prompt"], "chosen": y, "rejected": z, "chat": r["chat"]})
                s["pairs"] += 1
        risky = [r for r in rows if r["kind"] == "target"]  # benign rows score refusals: not the same scale
        if risky:
            s["mean_owner_unsafety"] = round(sum(r["owner_unsafety"] for r in risky) / len(risky), 4)
            s["mean_unpatched_unsafety"] = round(sum(r["unpatched_unsafety"] for r in risky) / len(risky), 4)
        stats["domains"][_MANIFEST_DOMAIN.get(d.domain, d.domain)] = s
    ut = plan.recipe.utility
    a = {"prompts": len(targets["anchors"]), "sft_rows": 0, "degenerate_pairs": 0, "refusal_pairs": 0, "dropped": 0}
    for r in targets["anchors"]:
        y = r["answer"]
        if is_empty(y) or is_degenerate(y):
            a["dropped"] += 1
            continue
        sft.extend([{"prompt": r["prompt"], "completion": y, "chat": r["chat"]}] * ut.repeat)
        a["sft_rows"] += ut.repeat
        if ut.degenerate_pairs:
            pairs.append({"prompt": r["prompt"], "chosen": y, "rejected": data_mod.make_loop(y), "chat": r["chat"]})
            a["degenerate_pairs"] += 1
        if ut.refusal_pairs:
            pairs.append({"prompt": r["prompt"], "chosen": y, "chat": r["chat"],
                          "rejected": as_reply(pick_fallback(fallback, r["prompt"]), r["prompt"], bool(r["chat"]))})
            a["refusal_pairs"] += 1
    stats["utility_anchor"] = a
    stats.update(sft_rows=len(sft), pairs=len(pairs), sft="sha256:" + json_sha256(sft), pairs_digest="sha256:" + json_sha256(pairs))
    if not sft:
        raise LlmpatchError("no training rows: every owner answer was empty or looped",
                            hint="check the input patches with `llmpatch run --patch DIR`; nothing was trained or written")
    if plan.recipe.dpo.enabled and not pairs:
        raise LlmpatchError("no DPO pairs: the owners answer every prompt as the unpatched model does (or worse, per "
                            "the judges)", hint="use more prompts (--prompts, --set prompts.limit), or --set dpo.enabled=false")
    return sft, pairs, stats


# -- the merge ---------------------------------------------------------------------------------


def _work_dir(plan: MergePlan, stats: dict[str, Any]) -> Path:
    key = json_sha256({"format": MERGE_FORMAT, "base": plan.base.fingerprint, "sft": stats["sft"],
                       "pairs": stats["pairs_digest"], "settings": {k: plan.settings()[k] for k in
                                                                    ("prefix", "sft", "dpo", "seeds", "training")}})
    return paths.cache_dir("merge-runs") / key[:24]


def evaluate_merged(plan: MergePlan, patch_dir: Path, *, progress: ProgressFactory | None = None) -> VerifyReport:
    """Every domain's held-out suites on the merged patch (unpatched and patched columns)."""
    from llmpatch.evaluate.run import VerifyOptions, run_suites

    ev = plan.recipe.eval
    suites = plan.eval_suites()
    sources = {k: v for d in plan.domains for k, v in d.eval_sources.items() if k in suites}
    sources.update({k: v for k, v in (ev.prompts or {}).items() if v not in ("builtin", "default")})
    opts = VerifyOptions(suites=suites, sources=sources, split="eval", limit=ev.limit, batch_size=ev.batch_size,
                         max_new_tokens=ev.max_new_tokens, seed=plan.recipe.seeds.data, n_boot=1000)
    report, _ = run_suites(plan.base.spec, [patch_dir], system_prompt=ev.system_prompt, options=opts, progress=progress)
    return report


def _solo_claims(plan: MergePlan, evals: Sequence[EvalClaim]) -> dict[str, Any]:
    """Each owner's own claims on its domain's suites, and (where measured on the same prompts and
    the same number of them) how much of its improvement over the unpatched model the merge keeps."""
    out: dict[str, Any] = {}
    merged = {e.id: e for e in evals if e.default_form}
    for d in plan.domains:
        rows = []
        for c in d.owner.manifest.evals:
            if c.suite not in d.eval_suites or not c.default_form:
                continue
            row: dict[str, Any] = {"id": c.id, "solo": c.value, "solo_base": c.base_value}
            m = merged.get(c.id)
            if m is not None:
                row["merged"] = m.value
                same = m.prompts is not None and c.prompts is not None and m.n == c.n \
                    and m.prompts.split()[-1] == c.prompts.split()[-1]  # the same prompt texts (sha256), wherever the file was
                if same and c.base_value is not None and m.base_value is not None and c.value != c.base_value:
                    row["retained"] = round((m.value - m.base_value) / (c.value - c.base_value), 4)
            rows.append(row)
        out[_MANIFEST_DOMAIN.get(d.domain, d.domain)] = {"owner": d.owner.manifest.id, "claims": rows}
    return out


def merge(plan: MergePlan, *, progress: ProgressFactory | None = None, use_cache: bool = True,
          on_stage: Callable[[str, dict[str, Any]], None] | None = None,
          report_dir: str | Path | None = None) -> MergeResult:
    """Run a checked :class:`MergePlan`: targets, SFT + DPO, evaluation, atomic write.

    ``report_dir``: also write ``merge.json`` (the result), ``verify.json`` (the evaluation) and
    the training curves there, as ``llmpatch build --report`` does.
    """
    from llmpatch import artifact
    from llmpatch import base as base_mod

    progress = progress or no_progress
    note = on_stage or (lambda stage, info: None)
    started = time.monotonic()
    timing: dict[str, float] = {}
    info = plan.base
    memory = check_memory(info.path, info.id, limit_gb=plan.recipe.base.max_memory_gb, models=2)
    note("checked", {"memory": memory})
    t0 = time.monotonic()
    loaded = base_mod.load(info.spec or info.path)
    staging = paths.cache_dir("merge-runs") / "targets"
    targets, cached = generate_targets(plan, loaded, progress=progress, work=staging, use_cache=use_cache)
    sft, pairs, stats = training_sets(plan, targets)
    timing["data_s"] = round(time.monotonic() - t0, 1)
    note("data", {"cached": cached, "stats": stats})
    work = _work_dir(plan, stats)
    t0 = time.monotonic()
    result = train_mod.train(plan.recipe, info.path, sft, pairs, None, work, progress=progress)
    timing["train_s"] = round(time.monotonic() - t0, 1)
    note("trained", result.summary())
    build_info = {
        "tool": f"llmpatch {__version__}",
        "recipe": None,
        "seeds": plan.recipe.seeds.to_dict(),
        "merge": {
            "format": MERGE_FORMAT, "base_spec": info.spec,
            "inputs": [{"name": p.name, "version": p.version, "payload_sha256": p.payload_sha256,
                        "manifest_sha256": _manifest_sha(p), "domains": list(p.manifest.domains)} for p in plan.patches],
            "domains": [d.to_dict() for d in plan.domains],
            "settings": plan.settings(),
            "method": "SFT on each owner's own answers to its domain's prompts (and the unpatched model's answers "
                      "to everyday prompts), then DPO: owner's answer over the unpatched model's",
        },
        "data": {"targets_key": targets["key"], **{k: v for k, v in stats.items()}},
        "training": {**result.summary(), "trainer": "trl SFTTrainer + DPOTrainer", "dpo_reference": plan.recipe.dpo.reference,
                     "dpo_beta": plan.recipe.dpo.beta},
    }
    meta = dict(name=plan.name, version=plan.version, summary=plan.summary,
                domains=list(dict.fromkeys(d for p in plan.patches for d in p.manifest.domains)), base=info.to_ref(),
                build=build_info, requires=plan.requires, conflicts=plan.conflicts, init=plan.init,
                dtype=plan.recipe.patch.dtype, provides=plan.provides,
                license=plan.patches[0].manifest.license if len({p.manifest.license for p in plan.patches}) == 1
                else plan.recipe.patch.license)
    report = None
    evals: list[EvalClaim] = []
    if plan.recipe.eval.enabled:
        t0 = time.monotonic()
        report = evaluate_staged(work, result.embeddings, meta, lambda d: evaluate_merged(plan, d, progress=progress))
        evals = report.eval_claims()
        build_info["merge"]["solo"] = _solo_claims(plan, evals)
        timing["eval_s"] = round(time.monotonic() - t0, 1)
        note("evaluated", {"evals": [(e.suite, e.metric, e.base_value, e.value) for e in evals]})
    patch = artifact.write_patch(plan.out_dir, result.embeddings, evals=evals, overwrite=plan.force, **meta)
    timing["total_s"] = round(time.monotonic() - started, 1)
    res = MergeResult(patch, plan.out_dir, work, stats, build_info["training"], evals, report, timing, cached)
    if report_dir is not None:
        _write_report(Path(report_dir), res, plan, result)
    return res


def _write_report(report_dir: Path, res: MergeResult, plan: MergePlan, trained: Any) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    train_mod.save_curves(trained, report_dir, title=f"{plan.name} {plan.version} (merge)")
    d = res.to_dict()
    d["plan"] = plan.to_dict()
    d["work_dir"] = None  # a local path: not useful in a committed results file
    write_report_json(report_dir, "merge.json", d, res.report)


def _manifest_sha(patch: Any) -> str:
    from llmpatch.util import sha256_file

    return sha256_file(Path(patch.path) / "llmpatch.json")
