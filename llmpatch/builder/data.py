"""Training data: prompts, samples from M and M', judge scores, the SFT set and DPO pairs.

Generations and scores are cached in ``<home>/cache/build-data/<key>.json``, keyed by the base
fingerprint, the reference policy and everything in the recipe that changes what is generated
(prompts, judge, generation settings, data seed). Pair filters (delta, tau) are applied on every
run, so changing them does not regenerate anything.
"""

from __future__ import annotations

import hashlib
import re
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from llmpatch import atomic, paths, schemas
from llmpatch.builder.recipe import GenerationSection, Recipe
from llmpatch.errors import LlmpatchError, RecipeError
from llmpatch.evaluate.judges import Judge, get_judge
from llmpatch.evaluate.prompts import PromptItem, load_prompts, prompts_digest
from llmpatch.evaluate.suites import is_empty, leading_label
from llmpatch.runtime import GenerationConfig, PatchedModel
from llmpatch.util import ProgressFactory, json_sha256, no_progress

DATA_FORMAT = 1


# -- prompts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainPrompt:
    """A training prompt: ``target`` (the domain's risky prompts), ``benign`` (must be answered)
    or ``anchor`` (an everyday prompt of the utility anchor, answered by M itself).

    ``chat`` is None when the prompt is used the way the recipe's ``generation.chat`` says, else
    True/False for this prompt (``generation.chat = "both"`` and utility prompts set it).
    """

    id: str
    text: str
    kind: str
    chat: bool | None = None


def prompt_forms(form: Any, chat: bool | str, *, anchor: bool = False, text: str = "",
                 plain_requests: bool = False) -> list[bool | None]:
    """How a prompt whose file row says ``form`` is used under ``generation.chat``.

    >>> prompt_forms(None, True), prompt_forms("continuation", "both"), prompt_forms("chat", "both")
    ([None], [True, False], [True])
    >>> prompt_forms("chat", "mixed"), prompt_forms("continuation", "mixed", anchor=True)
    ([True], [False])
    >>> prompt_forms("chat", "both", plain_requests=True), prompt_forms("chat", "both", anchor=True, plain_requests=True)
    ([True, False], [True, False])

    ``"both"`` uses a continuation prompt both ways; ``"mixed"`` one way, chosen by the sha256 of
    its text (half chat, half plain, at half the cost; everyday anchors keep their own form).
    Utility (anchor) prompts keep to the forms the recipe trains: a continuation prompt is not
    an everyday chat request, so ``chat = true`` recipes skip it (and ``false`` skips chat ones).

    ``plain_requests`` (``generation.plain_requests``, with ``"both"``/``"mixed"``): rows written as
    chat requests (``form = "chat"``, everyday anchors too) are also sent as plain text, the way
    they reach a model used without its chat template: both ways, or by the hash of the text.
    """
    if plain_requests and chat in ("both", "mixed") and form == "chat":
        form = None
    if chat == "both":
        return [True] if form == "chat" else [True, False]
    if chat == "mixed":
        if form == "chat":
            return [True]
        if anchor and form == "continuation":
            return [False]
        return [hashlib.sha256(text.encode()).digest()[0] % 2 == 0]
    if anchor and form in ("chat", "continuation") and (form == "chat") != bool(chat):
        return []
    return [None]



def train_prompts(suite: str, src: str, limit: int | None, *, where: str) -> list[Any]:
    """The train split of one prompt source (``builtin``/``default`` = the suite's built-in set),
    a loading error re-raised as a :class:`RecipeError` that names ``where`` it was configured."""
    try:
        return load_prompts(suite, None if src in ("builtin", "default") else src, "train", limit=limit)
    except LlmpatchError as exc:
        raise RecipeError(f"{where} {src!r}: {exc.message}", hint=exc.hint) from None


def load_train_prompts(recipe: Recipe) -> list[TrainPrompt]:
    """The recipe's training prompts (train split of every source), de-duplicated, limited per source.

    With ``[utility] enabled`` the everyday prompts of ``utility.prompts`` follow as ``anchor``.
    """
    domain = recipe.domain
    out: list[TrainPrompt] = []
    seen: set[tuple[str, bool | None]] = set()
    sections = [("prompts.train", recipe.prompts.train, domain, "target", recipe.prompts.limit),
                ("prompts.benign", recipe.prompts.benign, "over_refusal", "benign", recipe.prompts.limit)]
    if recipe.utility.enabled:
        sections.append(("utility.prompts", recipe.utility.prompts, "utility", "anchor", recipe.utility.limit))
    for where, sources, suite, kind, limit in sections:
        for src in sources:
            for it in train_prompts(suite, src, limit, where=f"{where} source"):
                for chat in prompt_forms(it.meta.get("form"), recipe.generation.chat, anchor=kind == "anchor",
                                         text=it.text, plain_requests=bool(recipe.generation.plain_requests)):
                    if (it.text, chat) not in seen:
                        seen.add((it.text, chat))
                        out.append(TrainPrompt(it.id, it.text, kind, chat))
    if not any(p.kind == "target" for p in out):
        raise RecipeError(f"{recipe.source}: prompts.train holds no prompts", hint="name at least one prompt source")
    return out


# -- scoring ----------------------------------------------------------------------------------


@dataclass
class Scorer:
    """Turns judge scores into *unsafety* in [0, 1] (0 = what the patch should produce).

    * ``refusal`` judge on a target (harmful) prompt: 1 - refusal; with a guard classifier, a
      reply that does not refuse counts as unsafe only as far as the guard says.
    * any judge on a benign prompt: refusing it is the failure (over-refusal).
    * ``gender``: |score| (assigning a gender at all is what GAS counts).
    * other judges (``toxicity``, ``hf:...``): the score itself (higher = more unsafe).
    """

    judge: Judge
    guard: Judge | None = None
    refusal: Judge = field(default_factory=lambda: get_judge("refusal"))

    @classmethod
    def for_recipe(cls, recipe: Recipe) -> "Scorer":
        """Load the recipe's judges (fails before any model is loaded)."""
        try:
            judge = get_judge(recipe.judge.name)
            guard = get_judge(recipe.judge.guard) if recipe.judge.guard else None
        except LlmpatchError as exc:
            raise RecipeError(f"judge: {exc.message}", hint=exc.hint) from None
        return cls(judge, guard)

    def describe(self) -> dict[str, Any]:
        return {"judge": self.judge.name, "guard": self.guard.name if self.guard else None}

    def __call__(self, texts: list[str], prompts: list[str], kind: str) -> list[float]:
        if not texts:
            return []
        if kind == "benign" or (kind == "anchor" and self.judge.name == "refusal"):
            return self.refusal.score(texts, prompts)
        raw = self.judge.score(texts, prompts)
        if self.judge.name == "refusal":
            unsafe = [1.0 - s for s in raw]
            if self.guard is not None:
                g = self.guard.score(texts, prompts)
                unsafe = [min(u, gs) for u, gs in zip(unsafe, g)]
            return unsafe
        if self.judge.name == "gender":
            return [abs(s) for s in raw]
        return [float(s) for s in raw]


# -- generation with a cache ------------------------------------------------------------------


def deployed_stack(model: PatchedModel) -> list[list[str]]:
    """The co-patches M runs with in a composition-aware build (name, version, payload sha256); empty otherwise."""
    return [[p.name, p.version, p.payload_sha256] for p in model.stack.patches]


def data_key(recipe: Recipe, base_fingerprint: str, prompts: Sequence[TrainPrompt], reference: dict[str, Any],
             deployed: Sequence[Sequence[str]] = ()) -> str:
    """Cache key: everything that changes the generated data (pair filters excluded).

    ``deployed``: the co-patches of a composition-aware build's M (keys of other builds stay as they were).
    """
    blob = {
        "format": DATA_FORMAT, "base": base_fingerprint, "reference": reference,
        "prompts": [(p.kind, p.text) if p.chat is None else (p.kind, p.text, p.chat) for p in prompts],
        "judge": recipe.judge.to_dict(), "generation": recipe.generation.to_dict(), "seed": recipe.seeds.data,
        "tau": recipe.pairs.tau if recipe.reference.refusal_fallback else None,
    }
    if deployed:
        blob["deployed"] = [list(d) for d in deployed]
    return json_sha256(blob, default=str)


def _cache_path(key: str):
    return paths.cache_dir("build-data") / f"{key}.json"


def read_cached(key: str) -> dict[str, Any] | None:
    """The cached data set for ``key``, or None (a corrupt cache file is ignored: it is only a cache)."""
    p = _cache_path(key)
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        schemas.validate(data, "build_data", what=str(p))
    except (ValueError, OSError):
        return None
    return data if data.get("key") == key else None


def write_cached(data: dict[str, Any]) -> None:
    """Validate and write a data set atomically."""
    schemas.validate(data, "build_data", what="build data")
    p = _cache_path(data["key"])
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(p, json.dumps(data, ensure_ascii=False, indent=1), durable=False)


def generate_data(recipe: Recipe, model: PatchedModel, policy: Any, scorer: Scorer, prompts: Sequence[TrainPrompt], *,
                  progress: ProgressFactory | None = None, use_cache: bool = True) -> dict[str, Any]:
    """Sample M and M' for every prompt, score both; cached on disk by :func:`data_key`.

    Utility anchors (``kind == "anchor"``) get M's own greedy answer, without a system prompt,
    as their reference (self-distillation) and no samples; an answer that loops is marked
    ``degenerate`` and trains nothing. ``model`` is M as deployed: in a composition-aware build
    the base with the co-patches (its stack is part of the cache key and recorded as ``deployed``).
    """
    from llmpatch.builder.reference import _score_by_kind, generate_forms

    progress = progress or no_progress
    reference = policy.describe()
    deployed = deployed_stack(model)
    key = data_key(recipe, model.base.info.fingerprint, prompts, reference, deployed)
    if use_cache:
        cached = read_cached(key)
        if cached is not None:
            cached["cached"] = True
            return cached
    gen = recipe.generation
    template = bool(model.tokenizer.chat_template)
    default_chat = bool(gen.chat) and template
    chats = [(default_chat if p.chat is None else p.chat) and template for p in prompts]
    learn = [i for i, p in enumerate(prompts) if p.kind != "anchor"]
    anchors = [i for i, p in enumerate(prompts) if p.kind == "anchor"]
    texts = [prompts[i].text for i in learn]
    kinds = [prompts[i].kind for i in learn]
    lchats = [chats[i] for i in learn]
    n = gen.samples_per_prompt
    cfg = GenerationConfig(max_new_tokens=gen.max_new_tokens, do_sample=True, temperature=gen.temperature,
                           top_p=gen.top_p, seed=recipe.seeds.data, batch_size=gen.batch_size)
    flat = [t for t in texts for _ in range(n)]
    with progress("sampling M (deployed model)", len(flat)) as advance:
        m_out = generate_forms(model, flat, [c for c in lchats for _ in range(n)], config=cfg, progress=advance)
    flat_kinds = [k for k in kinds for _ in range(n)]
    m_scores = _score_by_kind(scorer, m_out, flat, flat_kinds)
    needed = policy.samples_needed(kinds) if hasattr(policy, "samples_needed") else len(texts)
    with progress(f"sampling M' (reference, best of {getattr(policy, 'best_of', 1)})", needed) as advance:
        ref = policy.respond(texts, kinds, progress=advance, chats=lchats)
    items: list[dict[str, Any] | None] = [None] * len(prompts)
    for j, i in enumerate(learn):
        p = prompts[i]
        items[i] = {
            "id": p.id, "prompt": p.text, "kind": p.kind,
            "reference": ref[j].text, "reference_unsafety": float(ref[j].unsafety), "fallback": ref[j].fallback,
            "samples": m_out[j * n:(j + 1) * n], "sample_unsafety": [float(s) for s in m_scores[j * n:(j + 1) * n]],
        }
    if anchors:
        from llmpatch.evaluate.utility import is_degenerate

        atexts = [prompts[i].text for i in anchors]
        greedy = GenerationConfig(max_new_tokens=gen.max_new_tokens, seed=recipe.seeds.data, batch_size=gen.batch_size)
        with progress("answering everyday prompts with M (utility anchor)", len(anchors)) as advance:
            answers = generate_forms(model, atexts, [chats[i] for i in anchors], config=greedy, progress=advance)
        unsafety = scorer(answers, atexts, "anchor")
        for i, y, u in zip(anchors, answers, unsafety):
            p = prompts[i]
            items[i] = {"id": p.id, "prompt": p.text, "kind": "anchor", "reference": y, "reference_unsafety": float(u),
                        "fallback": False, "samples": [], "sample_unsafety": [], "degenerate": is_degenerate(y)}
    if gen.chat in ("both", "mixed") or len(set(chats)) > 1:
        for it, c in zip(items, chats):
            it["chat"] = c  # type: ignore[index]
    data = {
        "schema_version": 1, "key": key, "domain": recipe.domain,
        "chat": (gen.chat if template else False) if gen.chat in ("both", "mixed") else default_chat,
        "base": model.base.info.fingerprint, "reference": reference, "judges": scorer.describe(),
        "generation": gen.to_dict(), "prompts_digest": prompts_digest(PromptItem(p.id, p.text, p.kind) for p in prompts),
        "items": items,
    }
    if deployed:
        data["deployed"] = deployed
    if use_cache:
        write_cached(data)
    data["cached"] = False
    return data


# -- the SFT set and DPO pairs ----------------------------------------------------------------


@dataclass
class TrainingData:
    """What the trainers get, and the statistics the manifest records."""

    sft: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    stats: dict[str, Any]
    #: True/False when every row is (not) a chat; None when rows differ (each row then has ``chat``)
    chat: bool | None

    def digest(self) -> dict[str, str]:
        """sha256 of the SFT set and of the pairs (recorded in the manifest)."""
        def h(rows: list[dict[str, str]]) -> str:
            return "sha256:" + json_sha256(rows)
        return {"sft": h(self.sft), "pairs": h(self.pairs)}


def _mean(xs: Sequence[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def pair_verdict(reference: str, ru: float, sample: str, u: float, *, delta: float, tau: float) -> str:
    """Whether (chosen = M''s ``reference``, rejected = ``sample``) is a DPO pair: ``kept``, or why not.

    Kept when M''s response is safe (unsafety ``ru`` <= tau) and the judge prefers it over the
    sample by at least delta; ``unsafe_reference`` or ``small_margin`` otherwise.
    """
    if ru > tau:
        return "unsafe_reference"
    if u - ru < delta or sample.strip() == reference.strip():
        return "small_margin"
    return "kept"


def contrast_refusal(fallback_text: str | Sequence[str], words: int = 0, prompt: str = "") -> str:
    """The refusal a benign contrast pair for ``prompt`` rejects: the fallback text (with several,
    the one :func:`~llmpatch.builder.reference.pick_fallback` gives that prompt), or only its first
    ``words`` words."""
    from llmpatch.builder.reference import pick_fallback

    text = pick_fallback(fallback_text, prompt)
    if words <= 0:
        return text
    return " ".join(text.split()[:words])


_SENTENCE_END_RE = re.compile(r"[.!?][\"')\]]?(?=\s)")


def answer_head(text: str) -> str:
    """The opening of an answer: through its first sentence when more follows, else its first half
    (by words). The rejected side of a tail-refusal pair is this head, then a refusal.

    >>> answer_head(' "run". It is irregular.'), answer_head("Boil the eggs for six minutes"), answer_head("Yes.")
    (' "run".', 'Boil the eggs', 'Yes.')
    """
    m = _SENTENCE_END_RE.search(text)
    if m and text[m.end():].strip():
        return text[: m.end()]
    words = text.split(" ")
    return " ".join(words[: max(1, len(words) // 2)]) if len(words) > 1 else text


def make_loop(text: str, *, words: int = 6, min_repeats: int = 4) -> str:
    """A looping copy of ``text``: its opening words repeated, about as long as ``text``.

    The rejected side of a utility pair: DPO learns to prefer the real answer over the kind of
    loop a damaged prefix produces (", you're so helpful, you're so helpful, ...").

    >>> make_loop("Bread is made from flour, water, salt and yeast, then baked.", words=3)
    'Bread is made, Bread is made, Bread is made, Bread is made'
    """
    toks = text.split()
    unit = " ".join(toks[:max(1, min(words, len(toks)))]).rstrip(",.;:!?") or "the"
    repeats = max(min_repeats, len(toks) // max(1, len(unit.split())))
    return ", ".join([unit] * repeats)


def _share(prompt: str, share: float) -> bool:
    """Whether ``prompt`` falls in a ``share`` of prompts chosen by its sha256 (order-independent)."""
    return share > 0 and int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big") / 2 ** 64 < share


def domain_prompts(data: dict[str, Any]) -> list[tuple[str, bool]]:
    """The distinct prompts of the patch's domain (not benign look-alikes, not utility anchors) in
    ``data``, each with the form it is generated in (``True`` = chat)."""
    seen: dict[tuple[str, bool], None] = {}
    for it in data["items"]:
        if it["kind"] == "target":
            seen.setdefault((it["prompt"], bool(it.get("chat", data["chat"]))), None)
    return list(seen)


def build_sets(data: dict[str, Any], *, delta: float, tau: float, benign_contrast: bool,
               fallback_text: str | Sequence[str], contrast_words: int = 0, benign_repeat: int = 1,
               utility: Any = None, gender_swap: bool = False, masked_twins: bool = False) -> TrainingData:
    """SFT rows (prompt -> safe M' response) and DPO pairs (chosen M', rejected M) after filtering.

    A pair is kept when M''s response is safe (unsafety <= tau) and the judge prefers it over
    M's by at least delta. For benign prompts with ``benign_contrast``, M''s (non-refusing)
    answer is also preferred over a refusal, which teaches the patch not to over-refuse; with
    ``contrast_words`` that refusal is cut to its opening words, where a reply decides to refuse.
    ``benign_repeat`` > 1 repeats each benign prompt's SFT row, so SFT sees helpful answers as
    often as refusals of look-alike requests. With several fallback texts each benign prompt's
    contrast pair rejects one of them, so DPO cannot escape the contrast by avoiding one string.

    ``utility`` (the recipe's ``[utility]`` section) turns the anchors into SFT rows (M's own
    answers, ``repeat`` times each) and pairs (M's answer over a looping copy of it, and over a
    refusal); ``target_degenerate_share`` of the domain's prompts also get M' over a looping copy.
    ``masked_twins``: every kept pair whose rejected answer has a plainly written listed word also
    gets a twin rejecting the same answer with those words masked (:func:`lexicon.mask_words`).
    ``utility.silence_pairs``: every plain-text prompt with an SFT row (anchor or not) also gets a
    pair preferring that answer over an empty one (trl ends it with EOS, so the rejected side is
    "stop at once"): as plain text SmolLM2 often says nothing, every judge scores silence as safe,
    and DPO pushing down M's answers can teach a patch to stop. ``utility.stub_pairs``: such an
    answer that opens with a dialogue label ("\\n\\nA: Lentils ...") is also preferred over the bare
    label (then EOS): bias-fix 2.0.3, trained with silence pairs alone, answered 5 of 50 plain-text
    everyday requests with "\\n\\nA:" and stopped.
    """
    sft: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    counts = {"prompts": 0, "benign_prompts": 0, "candidates": 0, "kept": 0, "unsafe_reference": 0,
              "small_margin": 0, "contrast_pairs": 0, "fallbacks": 0}
    if utility is not None:
        counts.update(anchor_prompts=0, anchor_rows=0, anchors_dropped=0, degenerate_pairs=0, refusal_pairs=0)
    margins: list[float] = []
    chosen_u: list[float] = []
    rejected_u: list[float] = []
    base_u: list[float] = []
    mixed = any("chat" in it for it in data["items"])

    from llmpatch.builder.reference import as_reply, pick_fallback

    def reply(it: dict[str, Any], text: str) -> str:  # a fixed refusal after a plain-text prompt starts a paragraph
        return as_reply(text, it["prompt"], bool(it.get("chat", data["chat"])))

    def row(it: dict[str, Any], **fields: str) -> dict[str, Any]:
        r: dict[str, Any] = {"prompt": it["prompt"], **fields}
        if mixed:
            r["chat"] = bool(it.get("chat", data["chat"]))
        return r

    silence = bool(utility is not None and getattr(utility, "silence_pairs", None))
    stubs = silence and bool(getattr(utility, "stub_pairs", None))

    def against_silence(it: dict[str, Any], answer: str) -> None:
        if silence and not is_empty(answer) and not bool(it.get("chat", data["chat"])):
            pairs.append(row(it, chosen=answer, rejected=""))
            counts["silence_pairs"] = counts.get("silence_pairs", 0) + 1
            label = leading_label(answer) if stubs else None
            if label is not None:  # "\n\nA:" then the end: stopping after the label is silence too
                pairs.append(row(it, chosen=answer, rejected=label))
                counts["stub_pairs"] = counts.get("stub_pairs", 0) + 1

    for it in data["items"]:
        ref = reply(it, it["reference"]) if it.get("fallback") else it["reference"]
        if it["kind"] == "anchor":
            if utility is None:
                continue
            counts["anchor_prompts"] += 1
            if it.get("degenerate") or it["reference_unsafety"] > tau or is_empty(it["reference"]):
                counts["anchors_dropped"] += 1
                continue
            sft.extend([row(it, completion=ref)] * utility.repeat)
            counts["anchor_rows"] += utility.repeat
            against_silence(it, ref)
            if utility.degenerate_pairs:
                pairs.append(row(it, chosen=ref, rejected=make_loop(it["reference"])))
                counts["degenerate_pairs"] += 1
            if utility.refusal_pairs:
                pairs.append(row(it, chosen=ref, rejected=reply(it, pick_fallback(fallback_text, it["prompt"]))))
                counts["refusal_pairs"] += 1
            if getattr(utility, "tail_refusal_pairs", None):
                refusal = pick_fallback(fallback_text, it["prompt"] + "\ntail")
                pairs.append(row(it, chosen=ref, rejected=f"{answer_head(ref)}\n\n{refusal}"))
                counts["tail_refusal_pairs"] = counts.get("tail_refusal_pairs", 0) + 1
            continue
        benign = it["kind"] == "benign"
        counts["benign_prompts" if benign else "prompts"] += 1
        counts["fallbacks"] += int(bool(it["fallback"]))
        ru = it["reference_unsafety"]
        base_u.extend(it["sample_unsafety"])
        if is_empty(it["reference"]):  # M' said nothing (or only "A:"): silence is not an answer to train or prefer
            counts["blank_reference"] = counts.get("blank_reference", 0) + 1
            continue
        if ru <= tau:
            sft.extend([row(it, completion=ref)] * (benign_repeat if benign else 1))
            against_silence(it, ref)
        for y, u in zip(it["samples"], it["sample_unsafety"]):
            counts["candidates"] += 1
            verdict = pair_verdict(it["reference"], ru, y, u, delta=delta, tau=tau)
            if verdict != "kept":
                counts[verdict] += 1
            else:
                pairs.append(row(it, chosen=ref, rejected=y))
                margins.append(u - ru)
                chosen_u.append(ru)
                rejected_u.append(u)
                if gender_swap:
                    from llmpatch.evaluate.judges import swap_gender

                    swapped = swap_gender(y)
                    if swapped != y:
                        pairs.append(row(it, chosen=ref, rejected=swapped))
                        counts["swapped_pairs"] = counts.get("swapped_pairs", 0) + 1
                if masked_twins:
                    twin = masked_twin(y)
                    if twin is not None:
                        pairs.append(row(it, chosen=ref, rejected=twin))
                        counts["masked_pairs"] = counts.get("masked_pairs", 0) + 1
        rejected_refusal = reply(it, contrast_refusal(fallback_text, contrast_words, it["prompt"])) if benign else ""
        if benign and benign_contrast and ru <= tau and rejected_refusal:
            pairs.append(row(it, chosen=ref, rejected=rejected_refusal))
            counts["contrast_pairs"] += 1
        if (utility is not None and not benign and not it["fallback"] and ru <= tau
                and _share(it["prompt"] + str(it.get("chat", "")), utility.target_degenerate_share)):
            pairs.append(row(it, chosen=ref, rejected=make_loop(it["reference"])))
            counts["degenerate_pairs"] += 1
    extra = (counts["contrast_pairs"] + counts.get("degenerate_pairs", 0) + counts.get("refusal_pairs", 0)
             + counts.get("swapped_pairs", 0) + counts.get("masked_pairs", 0) + counts.get("silence_pairs", 0)
             + counts.get("stub_pairs", 0) + counts.get("tail_refusal_pairs", 0))
    counts["kept"] = len(pairs) - extra
    stats = {
        **counts, "pairs": len(pairs), "sft_rows": len(sft), "delta": delta, "tau": tau,
        "keep_rate": round(counts["kept"] / counts["candidates"], 4) if counts["candidates"] else 0.0,
        "mean_margin": _mean(margins), "mean_chosen_unsafety": _mean(chosen_u),
        "mean_rejected_unsafety": _mean(rejected_u), "mean_base_unsafety": _mean(base_u),
        "mean_reference_unsafety": _mean([it["reference_unsafety"] for it in data["items"] if it["kind"] == "target"]),
    }
    return TrainingData(sft, pairs, stats, None if mixed else bool(data["chat"]))


def masked_twin(text: str) -> str | None:
    """``text`` with its plainly written offensive words masked, or None when it has none."""
    from llmpatch.evaluate.lexicon import mask_words

    twin = mask_words(text)
    return twin if twin != text else None


def check_pairs(td: TrainingData, *, min_pairs: int, judge: str) -> None:
    """Fail before training when the filters left too few pairs, saying which filter removed them."""
    if td.stats["pairs"] >= min_pairs and td.sft:
        return
    s = td.stats
    raise RecipeError(
        f"only {s['pairs']} DPO pair(s) and {s['sft_rows']} SFT row(s) survived the filters (need at least {min_pairs} "
        f"pair(s)): of {s['candidates']} candidates, {s['unsafe_reference']} had an unsafe reference response "
        f"(judge {judge!r} scored M' above tau={s['tau']}) and {s['small_margin']} had a margin below delta={s['delta']}",
        hint="lower pairs.delta, raise pairs.tau, use a stronger reference policy (reference.best_of, system_prompt), "
        "or check that the judge suits the domain; nothing was trained or written",
    )


# -- on-policy pairs (after SFT) --------------------------------------------------------------


def on_policy_key(sft_prefix: Any, n: int, gen: GenerationSection, seed: int, data_key: str) -> str:
    """Cache key of the SFT-patched model's answers: its prefix, how many answers, how sampled."""
    import numpy as np

    arr = np.ascontiguousarray(sft_prefix.detach().to("cpu").float().numpy())
    blob = {"prefix": hashlib.sha256(arr.tobytes()).hexdigest(), "shape": list(arr.shape), "n": n,
            "generation": {k: getattr(gen, k) for k in ("chat", "max_new_tokens", "temperature", "top_p")},
            "seed": seed, "data": data_key, "format": 1}
    return json_sha256(blob)


def sample_on_policy(model: PatchedModel, scorer: Scorer, items: Sequence[dict[str, Any]], n: int, gen: GenerationSection,
                     seed: int, *, progress: ProgressFactory | None = None) -> list[dict[str, Any]]:
    """``n`` answers of ``model`` (M + the SFT prefix) per item: the first greedy, the rest sampled.

    The greedy answer is what evaluation sees; the sampled ones show what else the patch says.
    Returns, per item, ``{"samples": [...], "unsafety": [...]}`` scored like M's samples.
    """
    from llmpatch.builder.reference import _score_by_kind, generate_forms

    progress = progress or no_progress
    idx = [i for i, it in enumerate(items) if it["kind"] != "anchor"]  # anchors are M's own answers already
    texts = [items[i]["prompt"] for i in idx]
    kinds = [items[i]["kind"] for i in idx]
    template = bool(model.tokenizer.chat_template)
    chats = [bool(items[i].get("chat", gen.chat)) and template for i in idx]
    answers: list[list[str]] = [[] for _ in idx]
    with progress(f"sampling M + SFT prefix ({n} per prompt, on-policy pairs)", len(texts) * n) as advance:
        for j in range(n):
            cfg = GenerationConfig(max_new_tokens=gen.max_new_tokens, do_sample=j > 0, temperature=gen.temperature,
                                   top_p=gen.top_p, seed=seed + 1000 * j, batch_size=gen.batch_size)
            for i, y in enumerate(generate_forms(model, texts, chats, config=cfg, progress=advance)):
                answers[i].append(y)
    flat = [y for a in answers for y in a]
    scores = _score_by_kind(scorer, flat, [t for t in texts for _ in range(n)], [k for k in kinds for _ in range(n)])
    out: list[dict[str, Any]] = [{"samples": [], "unsafety": []} for _ in items]
    for j, i in enumerate(idx):
        out[i] = {"samples": answers[j], "unsafety": [float(x) for x in scores[j * n:(j + 1) * n]]}
    return out


def on_policy_pairs(items: Sequence[dict[str, Any]], answers: Sequence[dict[str, Any]], *, delta: float,
                    tau: float, masked_twins: bool = False, chat: Any = True) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """DPO pairs (chosen M', rejected the SFT-patched model's answer) that pass the same filters.

    These are the patch's own mistakes after SFT: harmful requests it still complies with and
    benign ones it now refuses, so DPO pushes against what the patch actually does rather than
    only against M's answers and one fixed refusal. Duplicate answers to a prompt count once.
    ``masked_twins``: as in :func:`build_sets`, a kept pair also rejects its answer's masked copy.
    ``chat``: the form of items without their own ``chat`` (a fallback refusal after a plain-text
    prompt starts a paragraph, as in :func:`build_sets`).
    """
    from llmpatch.builder.reference import as_reply

    pairs: list[dict[str, str]] = []
    stats = {"answers": 0, "kept": 0, "kept_target": 0, "kept_benign": 0, "unsafe_reference": 0, "small_margin": 0,
             "duplicates": 0, "greedy_unsafe_target": 0, "greedy_refused_benign": 0, "targets": 0, "benign": 0}
    for it, ans in zip(items, answers):
        if it["kind"] == "anchor":
            continue  # an everyday prompt's reference is M's own answer: the patch's answers are not mistakes to reject
        benign = it["kind"] == "benign"
        stats["benign" if benign else "targets"] += 1
        if ans["unsafety"] and ans["unsafety"][0] > tau:
            stats["greedy_refused_benign" if benign else "greedy_unsafe_target"] += 1
        seen: set[str] = set()
        for y, u in zip(ans["samples"], ans["unsafety"]):
            stats["answers"] += 1
            if y.strip() in seen:
                stats["duplicates"] += 1
                continue
            seen.add(y.strip())
            if is_empty(it["reference"]):
                stats["blank_reference"] = stats.get("blank_reference", 0) + 1
                continue
            verdict = pair_verdict(it["reference"], it["reference_unsafety"], y, u, delta=delta, tau=tau)
            if verdict != "kept":
                stats[verdict] += 1
                continue
            chosen = (as_reply(it["reference"], it["prompt"], bool(it.get("chat", chat))) if it.get("fallback")
                      else it["reference"])
            pair = {"prompt": it["prompt"], "chosen": chosen, "rejected": y}
            if "chat" in it:
                pair["chat"] = it["chat"]
            pairs.append(pair)
            stats["kept"] += 1
            stats["kept_benign" if benign else "kept_target"] += 1
            twin = masked_twin(y) if masked_twins else None
            if twin is not None:
                pairs.append({**pair, "rejected": twin})
                stats["masked_pairs"] = stats.get("masked_pairs", 0) + 1
    return pairs, stats
