"""Build recipes: a TOML file that names everything a build needs, with defaults and overrides.

A recipe is read, merged over the defaults of its domain, overridden with ``--set a.b=value``
pairs, then validated against ``registry_schema/recipe.schema.json`` and a few checks the schema
cannot express (files exist, a reference model is named when one is needed). Everything fails
here, before any model is loaded.

Each table is a frozen dataclass (``recipe.sft.lr``, ``recipe.dpo.reference``), as peft's
config classes are; the JSON Schema stays the file-format contract.

Example::

    >>> r = Recipe.from_dict({"patch": {"name": "tox-fix", "version": "1.0.0", "summary": "s", "domain": "toxicity"}})
    >>> r.get("sft.lr"), r.prefix.num_virtual_tokens, r.dpo.reference
    (0.01, 50, 'sft')
"""

from __future__ import annotations

import copy
import difflib
import functools
import math
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Literal

from llmpatch import schemas
from llmpatch.errors import RecipeError, SchemaError
from llmpatch.util import json_sha256, tomllib

SCHEMA_VERSION = 1
DOMAINS = ("toxicity", "gender", "harmfulness")

#: Safety instruction whose token embeddings initialise the prefix ("semantic init").
INIT_TEXT = {
    "toxicity": "Continue the text politely and respectfully. Never use insults, slurs, profanity or hateful language.",
    "gender": "Do not assume anyone's gender from their job or role. Use gender-neutral words such as they and them.",
    "harmfulness": "You are a safe assistant. Refuse requests that could cause harm, and help with harmless ones.",
}
#: System prompt of the self-reference policy (M with a safety instruction).
SYSTEM_PROMPT = {
    "toxicity": "You are a polite writer. Continue the text in a calm, kind and respectful way, without insults, "
    "slurs, profanity or hateful language.",
    "gender": "You never assume a person's gender from their profession or role. Refer to people with gender-neutral "
    "words (they, them, the person) unless the user states their gender.",
    "harmfulness": "You are a helpful and safe assistant. If a request could help someone cause harm (weapons, "
    "drugs, hacking, violence, fraud, self-harm), refuse briefly, starting with \"I'm sorry, but I can't help with "
    "that\". Help normally with harmless requests.",
}
FALLBACK_REFUSAL = "I'm sorry, but I can't help with that. It could cause real harm to people."
#: The judge that scores each domain (pluggable: any judge spec).
DOMAIN_JUDGE = {"toxicity": "toxicity", "gender": "gender", "harmfulness": "refusal"}
#: Suites run at build time on held-out prompts.
DOMAIN_EVAL_SUITES = {"toxicity": ["toxicity", "utility", "fluency"], "gender": ["gender", "utility", "fluency"],
                      "harmfulness": ["harmfulness", "over_refusal", "utility", "fluency"]}


Domain = Literal["toxicity", "gender", "harmfulness"]
#: Marks a field that may be absent from the recipe (None = absent; omitted by ``to_dict``).
ABSENT = {"absent": True}


def _plain(value: Any) -> Any:
    """A section value in its file-format form (tuples back to lists, dicts copied)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _frozen(value: Any) -> Any:
    """A file-format value in its section form (lists become tuples)."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


#: Numeric recipe fields that must be > 0.
_POSITIVE = frozenset({"lr", "epochs", "batch_size", "num_virtual_tokens"})


class Section:
    """A recipe table as a frozen dataclass: ``from_dict``/``to_dict`` and choice checks.

    The JSON Schema (``registry_schema/recipe.schema.json``) stays the file-format contract and
    is checked first; ``__post_init__`` checks the Literal choices again (for sections built in
    code) and what the schema cannot express. Values keep the type the file gave them (an int
    ``epochs = 2`` stays 2), so a recipe's recorded form and its cache keys do not change.
    """

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise RecipeError(f"{_table(type(self))}.{f.name} is {value!r}, expected a finite number")
            if f.name in _POSITIVE and isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
                raise RecipeError(f"{_table(type(self))}.{f.name} is {value!r}, expected a positive number")
        for name, choices in _choices(type(self)).items():
            value = getattr(self, name)
            if value is not None and value not in choices:
                raise RecipeError(f"{_table(type(self))}.{name} is {value!r}, expected one of "
                                  f"{', '.join(map(repr, choices))}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """The section from its (schema-valid) table."""
        return cls(**{k: _frozen(v) for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        """The table as the recipe file holds it (fields that were absent stay absent)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)  # type: ignore[arg-type]
                if not (f.metadata.get("absent") and getattr(self, f.name) is None)}


@functools.lru_cache(maxsize=None)
def _choices(cls: type) -> dict[str, tuple[Any, ...]]:
    """Field -> allowed values, for the fields annotated with a Literal (or an optional one)."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        args = [hint] if typing.get_origin(hint) is Literal else typing.get_args(hint)
        choices = tuple(a for t in args if typing.get_origin(t) is Literal for a in typing.get_args(t))
        if choices:
            out[name] = choices
    return out


def _table(cls: type) -> str:
    return {**{v: k for k, v in SECTIONS.items()}, ComposeSection: "compose"}.get(cls, cls.__name__)


@dataclass(frozen=True)
class PatchSection(Section):
    """``[patch]``: what is built (name, version, summary, domain) and its metadata."""

    name: str
    version: str
    summary: str
    domain: Domain
    license: str = "apache-2.0"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    description: str | None = field(default=None, metadata=ABSENT)
    authors: tuple[str, ...] | None = field(default=None, metadata=ABSENT)
    requires: dict[str, str] | None = field(default=None, metadata=ABSENT)
    conflicts: dict[str, str] | None = field(default=None, metadata=ABSENT)


@dataclass(frozen=True)
class BaseSection(Section):
    """``[base]``: the model M the patch is trained for."""

    spec: str = "default"
    max_memory_gb: float | None = None


@dataclass(frozen=True)
class ReferenceSection(Section):
    """``[reference]``: the safer policy M' whose answers the patch learns."""

    kind: Literal["self", "model"] = "self"
    model: str | None = None
    system_prompt: str | None = None
    best_of: int = 4
    temperature: float = 0.8
    top_p: float = 0.95
    refusal_fallback: bool = False
    fallback_text: str | tuple[str, ...] = FALLBACK_REFUSAL
    fallback_when: Literal["unsafe", "always"] = "unsafe"
    #: "keep": a plain-text benign request M' answers with nothing trains nothing; "chat": M' answers
    #: it again as a chat message, and that answer (as a new paragraph) is the plain-text target too
    blank_plain: Literal["keep", "chat"] = "keep"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind == "model" and not self.model:
            raise RecipeError("reference.kind is 'model' but reference.model is not set",
                              hint="name M' (a Hub id, directory or .gguf file), or use kind = \"self\"")


@dataclass(frozen=True)
class PromptsSection(Section):
    """``[prompts]``: prompt sources for training, held-out evaluation and benign look-alikes."""

    train: tuple[str, ...] = ("builtin",)
    eval: tuple[str, ...] = ("builtin",)
    benign: tuple[str, ...] = ()
    limit: int | None = None


@dataclass(frozen=True)
class JudgeSection(Section):
    """``[judge]``: the judge that scores the domain, and an optional guard classifier."""

    name: str
    guard: str | None = None


@dataclass(frozen=True)
class GenerationSection(Section):
    """``[generation]``: how M (and M') are sampled for the training data."""

    #: True: chat template; False: continue the prompt as text; "both": each prompt both ways (a
    #: prompt whose file row says ``form = "chat"`` only as chat), as deployed models are used;
    #: "mixed": each prompt one way, half of them each (by the sha256 of the text)
    chat: bool | str = True
    max_new_tokens: int = 48
    temperature: float = 1.0
    top_p: float = 0.95
    samples_per_prompt: int = 1
    batch_size: int = 8
    #: with "both"/"mixed": prompts written as chat requests (file rows with ``form = "chat"``,
    #: everyday anchors too) are also used as plain text (absent: off, they stay chat)
    plain_requests: bool | None = field(default=None, metadata=ABSENT)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.chat not in (True, False, "both", "mixed"):
            raise RecipeError(f"generation.chat is {self.chat!r}, expected true, false, \"both\" or \"mixed\"")
        if self.plain_requests and self.chat not in ("both", "mixed"):
            raise RecipeError(f"generation.plain_requests = true needs generation.chat = \"both\" or \"mixed\" "
                              f"(it is {self.chat!r})",
                              hint='set generation.chat = "mixed" (each prompt one way) or "both", or drop plain_requests')


@dataclass(frozen=True)
class PairsSection(Section):
    """``[pairs]``: which (chosen M', rejected M) pairs DPO gets."""

    delta: float = 0.5
    tau: float = 0.5
    min_pairs: int = 1
    benign_contrast: bool = False
    contrast_words: int = 0
    on_policy: int = 0
    #: gender patches: also pair every chosen answer with the gender-swapped copy of its rejected
    #: one (he <-> she, ...), so DPO pushes down both genders equally (absent: off)
    gender_swap: bool | None = field(default=None, metadata=ABSENT)
    #: toxicity patches: also pair every chosen answer with a masked copy of its rejected one
    #: ("fucking" -> "f*ck*ng"), so DPO does not teach the patch to mask the words it should drop
    masked_twins: bool | None = field(default=None, metadata=ABSENT)


@dataclass(frozen=True)
class PrefixSection(Section):
    """``[prefix]``: the soft prompt's length and initialisation."""

    num_virtual_tokens: int = 50
    init: Literal["text", "random"] = "text"
    init_text: str | None = field(default=None, metadata=ABSENT)


@dataclass(frozen=True)
class Stage(Section):
    """``[sft]`` / ``[dpo]``: one training stage. The schema shares one table for both, so a
    field of the other stage is accepted and recorded (absent unless given) but not used."""

    lr: float = 0.01
    epochs: float = 3
    max_steps: int = -1
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 96
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    #: gender domain: weight of a penalty on the gender logits difference of the training prompts
    #: (mean d^2, d = log P(he...) - log P(she...) as the answer's first token), added to the
    #: stage's loss; absent or 0: none (see ``builder/train.py: gld_penalty``)
    gld_weight: float | None = field(default=None, metadata=ABSENT)


@dataclass(frozen=True)
class SftStage(Stage):
    """``[sft]``: imitate M' with only the prefix trainable."""

    benign_repeat: int = 1
    beta: float | None = field(default=None, metadata=ABSENT)
    reference: Literal["sft", "base"] | None = field(default=None, metadata=ABSENT)
    sft_weight: float | None = field(default=None, metadata=ABSENT)
    enabled: bool | None = field(default=None, metadata=ABSENT)


@dataclass(frozen=True)
class DpoStage(Stage):
    """``[dpo]``: prefer M''s answers over M's, from the SFT prefix."""

    lr: float = 0.005
    epochs: float = 2
    beta: float = 0.1
    reference: Literal["sft", "base"] = "sft"
    sft_weight: float = 0.0
    enabled: bool = True
    benign_repeat: int | None = field(default=None, metadata=ABSENT)


@dataclass(frozen=True)
class Seeds(Section):
    """``[seeds]``: data sampling and training seeds."""

    data: int = 0
    train: int = 0


@dataclass(frozen=True)
class TrainingSection(Section):
    """``[training]``: checkpointing of both stages."""

    save_steps: int = 10
    gradient_checkpointing: bool = False


@dataclass(frozen=True)
class SelectSection(Section):
    """``[select]``: checkpoint selection on validation prompts (see ``builder/select.py``)."""

    enabled: bool = False
    snapshots: int = 4
    include_sft: bool = True
    prompts: tuple[str, ...] = ("builtin",)
    benign: tuple[str, ...] = ()
    limit: int | None = None
    max_new_tokens: int = 32
    batch_size: int = 8
    #: gender domain: weight of the mean |gender logits difference| on the validation prompts
    #: in the selection score (absent or 0: not measured)
    gld_weight: float | None = field(default=None, metadata=ABSENT)


@dataclass(frozen=True)
class UtilitySection(Section):
    """``[utility]``: the utility anchor that keeps the patched model useful (see docs/build.md).

    Everyday prompts (the ``train`` split of ``prompts``) are answered by M itself, greedily and
    without any system prompt; SFT imitates those answers (self-distillation), and DPO prefers
    them over a looping copy (``degenerate_pairs``) and over a refusal (``refusal_pairs``).
    Checkpoint selection (``[select]``) scores the same kind of prompts from the ``validation``
    split and rejects any checkpoint whose outputs loop more than ``max_degenerate_increase``
    above the unpatched model's, or whose everyday answers drift below ``min_similarity``.
    """

    enabled: bool = True
    prompts: tuple[str, ...] = ("builtin",)
    limit: int | None = None
    repeat: int = 1
    degenerate_pairs: bool = True
    refusal_pairs: bool = False
    #: DPO pairs: each plain-text prompt's training answer over an empty completion (absent: off)
    silence_pairs: bool | None = field(default=None, metadata=ABSENT)
    #: with silence_pairs: an answer that opens with a dialogue label ("\n\nA: ...") also over the bare label
    stub_pairs: bool | None = field(default=None, metadata=ABSENT)
    #: DPO pairs: each everyday answer over its first sentence followed by a refusal (absent: off)
    tail_refusal_pairs: bool | None = field(default=None, metadata=ABSENT)
    #: also give this share of the domain's prompts a pair (chosen M', rejected a looping copy of it)
    target_degenerate_share: float = 0.0
    max_degenerate_increase: float = 0.05
    min_similarity: float = 0.0
    #: weight of (1 - similarity to the unpatched answers) in the selection score
    weight: float = 1.0


@dataclass(frozen=True)
class EvalSection(Section):
    """``[eval]``: the build-time evaluation on held-out prompts."""

    enabled: bool = True
    suites: tuple[str, ...] = ()
    limit: int | None = None
    system_prompt: str | None = None
    batch_size: int = 8
    max_new_tokens: int | None = field(default=None, metadata=ABSENT)
    #: suite -> prompt source for suites other than the domain's (whose source is ``prompts.eval``),
    #: e.g. ``{over_refusal = "../prompts/benign-prompts.jsonl"}``
    prompts: dict[str, str] | None = field(default=None, metadata=ABSENT)


#: Where the new patch goes in a composition-aware build's stack, relative to ``compose.with``.
Position = Literal["before", "after", "both", "any"]


@dataclass(frozen=True)
class ComposeSection(Section):
    """``[compose]``: a composition-aware build (see ``builder/costack.py`` and docs/build.md).

    ``with_`` (the file's ``with``) names the co-patches in stack order: ``NAME@RANGE`` resolved
    from ``registry``, or patch directories. ``position`` puts the new patch ``after`` them (the
    default), ``before`` them, ``both`` (an order drawn per training batch, seeded), or ``any``:
    per batch alone, after or before them, for a patch that must work whether or not the
    co-patches are installed.

    >>> ComposeSection.from_dict({"with": ["tox-fix@^1.1"]}).to_dict()
    {'with': ['tox-fix@^1.1'], 'position': 'after'}
    """

    with_: tuple[str, ...]
    position: Position = "after"
    registry: str | None = field(default=None, metadata=ABSENT)
    suites: tuple[str, ...] | None = field(default=None, metadata=ABSENT)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ComposeSection":
        """The section from its table (``with`` is a Python keyword: the field is ``with_``)."""
        d = dict(data)
        if "with" in d:
            d["with_"] = d.pop("with")
        return super().from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        return {"with": d.pop("with_"), **d}

    @property
    def orders(self) -> tuple[str, ...]:
        """The stack orders the build evaluates: ``("after",)``, ``("before",)`` or both (``both``, ``any``)."""
        return ("after", "before") if self.position in ("both", "any") else (self.position,)


#: Recipe table name -> its section type, in file order.
SECTIONS: dict[str, type[Section]] = {
    "patch": PatchSection, "base": BaseSection, "reference": ReferenceSection, "prompts": PromptsSection,
    "judge": JudgeSection, "generation": GenerationSection, "pairs": PairsSection, "prefix": PrefixSection,
    "sft": SftStage, "dpo": DpoStage, "seeds": Seeds, "training": TrainingSection, "select": SelectSection,
    "utility": UtilitySection, "eval": EvalSection,
}


def defaults(domain: str) -> dict[str, Any]:
    """The full recipe a domain gets when the file names only the patch."""
    chat = domain != "toxicity"  # toxicity prompts are sentence starts to continue, the others requests
    harm = domain == "harmfulness"
    benign = ("builtin",) if harm else ()
    sections: dict[str, Section] = {
        "base": BaseSection(),
        "reference": ReferenceSection(system_prompt=SYSTEM_PROMPT[domain], refusal_fallback=harm),
        "prompts": PromptsSection(benign=benign),
        "judge": JudgeSection(DOMAIN_JUDGE[domain]),
        "generation": GenerationSection(chat=chat, max_new_tokens=48 if chat else 32),
        "pairs": PairsSection(delta=0.5 if domain != "toxicity" else 0.1, benign_contrast=harm),
        "prefix": PrefixSection(init_text=INIT_TEXT[domain]),
        "sft": SftStage(), "dpo": DpoStage(), "seeds": Seeds(), "training": TrainingSection(),
        "select": SelectSection(benign=benign),
        "utility": UtilitySection(refusal_pairs=harm),
        "eval": EvalSection(suites=tuple(DOMAIN_EVAL_SUITES[domain])),
    }
    patch = {f.name: f.default for f in fields(PatchSection) if f.default is not MISSING and not f.metadata}
    return {"schema_version": SCHEMA_VERSION, "patch": patch, **{k: v.to_dict() for k, v in sections.items()}}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base`` (tables merge, other values replace)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``sft.lr=0.01`` -> (["sft", "lr"], 0.01). Values use TOML syntax; bare words are strings."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(f"--set {text!r}: expected FIELD.PATH=VALUE, e.g. --set sft.lr=0.01",
                          hint="values use TOML syntax: numbers, true/false, \"strings\", [lists]")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as base or toxicity
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a copy of ``data``."""
    out = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise RecipeError(f"--set {text!r}: {part!r} is a value, not a table of fields")
            node = nxt
        node[path[-1]] = value
    return out


def _known_fields(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any] | None:
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema.get("properties") if schema.get("type") == "object" or "properties" in schema else None


def check_unknown_fields(data: Any, schema: dict[str, Any] | None = None, root: dict[str, Any] | None = None,
                         where: str = "") -> None:
    """Name an unknown field with a did-you-mean suggestion (the schema's message names none)."""
    root = root or schemas.load_schema("recipe")
    schema = schema or root
    props = _known_fields(schema, root)
    if props is None or not isinstance(data, dict):
        return
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in props:
            close = difflib.get_close_matches(key, list(props), n=1)
            hint = f"did you mean {(where + '.' if where else '') + close[0]!r}?" if close else \
                f"known fields{' of [' + where + ']' if where else ''}: {', '.join(sorted(props))}"
            raise RecipeError(f"unknown recipe field {path!r}", hint=hint)
        check_unknown_fields(value, props[key], root, path)


def _resolve_sources(data: dict[str, Any], source: str, root: Path | None) -> dict[str, Any]:
    """A copy of ``data`` with prompt files found relative to the recipe; missing files fail here."""
    from llmpatch.evaluate.prompts import parse_hf_source

    out = copy.deepcopy(data)
    lists = [("prompts", s) for s in ("train", "eval", "benign")] + [("select", s) for s in ("prompts", "benign")] \
        + [("utility", "prompts")]
    for table, section in lists + [("eval", "prompts")]:
        value = out[table].get(section) or []
        sources = list(value.values()) if isinstance(value, dict) else value
        for i, src in enumerate(sources):
            if src in ("builtin", "default"):
                continue
            if src.startswith("hf:"):
                try:
                    parse_hf_source(src)
                except Exception as exc:
                    raise RecipeError(f"{source}: {table}.{section}[{i}] {src!r}: {exc}") from None
                continue
            path_text = src.partition("?")[0].partition("#")[0]
            path = Path(path_text).expanduser()
            if not path.is_absolute() and root is not None and (root / path).exists():
                path = root / path
                sources[i] = str(path) + (src[len(path_text):])
                if isinstance(value, dict):
                    value[list(value)[i]] = sources[i]
            if not path.is_file():
                raise RecipeError(f"{source}: prompt file {path_text!r} ({table}.{section}) does not exist",
                                  hint="give a .jsonl/.csv/.txt file (relative to the recipe or the working "
                                  "directory), 'builtin', or hf:<dataset-id>")
    if "compose" in out:
        out["compose"]["with"] = [_resolve_copatch(entry, i, source, root) for i, entry in enumerate(out["compose"]["with"])]
    return out


def is_patch_dir_entry(entry: str) -> bool:
    """Whether a ``compose.with`` entry names a directory (a path) rather than ``NAME@RANGE``."""
    return entry.startswith((".", "/", "~")) or "/" in entry or "\\" in entry or Path(entry).expanduser().is_dir()


def _resolve_copatch(entry: str, i: int, source: str, root: Path | None) -> str:
    """A ``compose.with`` entry: a directory found relative to the recipe (or the working directory), or a checked spec."""
    from llmpatch.versions import PatchSpec

    where = f"{source}: compose.with[{i}] {entry!r}"
    path = Path(entry).expanduser()
    if not path.is_absolute() and root is not None and (root / path).is_dir():
        return str(root / path)
    if path.is_dir():
        return entry
    if is_patch_dir_entry(entry):
        raise RecipeError(f"{where}: no such patch directory",
                          hint="give a patch directory (relative to the recipe or the working directory) or "
                          "NAME@RANGE from a registry, e.g. tox-fix@^1.1")
    try:
        PatchSpec.parse(entry)
    except Exception as exc:
        raise RecipeError(f"{where}: {getattr(exc, 'message', exc)}",
                          hint="give NAME@RANGE (e.g. tox-fix@^1.1) or a patch directory") from None
    return entry


@dataclass(frozen=True)
class Recipe:
    """A complete, validated recipe (defaults and overrides applied): one frozen section per table.

    >>> r = Recipe.from_dict({"patch": {"name": "tox-fix", "version": "1.0.0", "summary": "s", "domain": "toxicity"}})
    >>> r.sft.lr, r.dpo.reference, r.generation.chat
    (0.01, 'sft', False)
    """

    patch: PatchSection
    base: BaseSection
    reference: ReferenceSection
    prompts: PromptsSection
    judge: JudgeSection
    generation: GenerationSection
    pairs: PairsSection
    prefix: PrefixSection
    sft: SftStage
    dpo: DpoStage
    seeds: Seeds
    training: TrainingSection
    select: SelectSection
    utility: UtilitySection
    eval: EvalSection
    schema_version: int = SCHEMA_VERSION
    source: str = "<recipe>"
    #: ``[compose]``, present only in composition-aware recipes (absent from ``to_dict`` otherwise,
    #: so the recorded form and cache keys of every other recipe stay as they were)
    compose: ComposeSection | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, overrides: Iterable[str] = (), source: str = "<recipe>",
                  root: Path | None = None) -> "Recipe":
        """Merge ``raw`` over its domain's defaults, apply overrides, validate."""
        if not isinstance(raw, dict):
            raise RecipeError(f"{source}: a recipe is a TOML table, got {type(raw).__name__}")
        raw = apply_overrides(raw, overrides)
        check_unknown_fields(raw)
        domain = (raw.get("patch") or {}).get("domain")
        if domain not in DOMAINS:
            raise RecipeError(f"{source}: patch.domain is {domain!r}, expected one of {', '.join(DOMAINS)}",
                              hint='add [patch] domain = "toxicity" (or gender, harmfulness)')
        schemas.check_version(raw, SCHEMA_VERSION, what=source, error=RecipeError)
        data = deep_merge(defaults(domain), raw)
        try:
            schemas.validate(data, "recipe", what=f"recipe {source}", error=SchemaError)
        except SchemaError as exc:
            raise RecipeError(exc.message, hint="see docs/build.md for every recipe field and its default") from None
        data = _resolve_sources(data, source, root)
        try:
            recipe = cls(**{k: t.from_dict(data[k]) for k, t in SECTIONS.items()},
                         schema_version=data["schema_version"], source=source,
                         compose=ComposeSection.from_dict(data["compose"]) if "compose" in data else None)
        except RecipeError as exc:
            raise RecipeError(f"{source}: {exc.message}", hint=exc.hint) from None
        recipe._check()
        return recipe

    @classmethod
    def load(cls, path: str | Path, overrides: Iterable[str] = ()) -> "Recipe":
        """Read a TOML recipe file."""
        p = Path(path)
        if not p.is_file():
            raise RecipeError(f"recipe file {str(p)!r} does not exist", hint="see examples/recipes/*.toml")
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise RecipeError(f"recipe file {str(p)!r} is not UTF-8 text ({exc})", hint="save it as UTF-8") from None
        except (tomllib.TOMLDecodeError, RecursionError) as exc:
            raise RecipeError(f"{p} is not valid TOML: {exc}") from None
        return cls.from_dict(raw, overrides=overrides, source=str(p), root=p.parent)

    def _check_fallbacks(self) -> None:
        """Each fallback refusal must be a refusal to the refusal judge (no model needed).

        Fallbacks are recorded as safe without being judged, and benign contrast pairs reject them
        as the refusal to avoid; a text the judge does not count as a refusal makes both untrue.
        """
        from llmpatch.builder.reference import fallback_texts
        from llmpatch.evaluate.judges import RefusalJudge

        ref = self.reference
        if not ref.refusal_fallback:
            return
        texts = fallback_texts(ref.fallback_text)
        for i, (text, refuses) in enumerate(zip(texts, RefusalJudge().score(texts))):
            if not refuses:
                where = "reference.fallback_text" + ("" if isinstance(ref.fallback_text, str) else f"[{i}]")
                raise RecipeError(f"{self.source}: {where} {text!r} is not a refusal to the refusal judge "
                                  "(it opens with none of its refusal phrases)",
                                  hint="open each fallback with a refusal, e.g. \"I'm sorry, but I can't help with "
                                  "that\"; nothing was generated or written")

    def _check_models(self) -> None:
        """``base.spec`` and ``reference.model`` parse, and a local path among them exists (nothing is loaded)."""
        from llmpatch.base import BaseSpec
        from llmpatch.errors import LlmpatchError

        specs = [("base.spec", self.base.spec)]
        if self.reference.kind == "model" and self.reference.model:
            specs.append(("reference.model", self.reference.model))
        for key, spec in specs:
            try:
                BaseSpec.parse(spec)
            except LlmpatchError as exc:
                raise RecipeError(f"{self.source}: {key}: {exc.message}",
                                  hint=f"{exc.hint + '; ' if exc.hint else ''}nothing was generated or written") from None

    def _check_prompt_files(self) -> None:
        """Every prompt file parses and holds at least one prompt (``hf:`` sets are read at build time)."""
        from llmpatch.errors import LlmpatchError
        from llmpatch.evaluate.prompts import load_prompts

        d = self.domain
        groups = [("prompts.train", self.prompts.train, d), ("prompts.eval", self.prompts.eval, d),
                  ("prompts.benign", self.prompts.benign, "over_refusal"), ("select.prompts", self.select.prompts, d),
                  ("select.benign", self.select.benign, "over_refusal"), ("utility.prompts", self.utility.prompts, "utility")]
        groups += [(f"eval.prompts.{suite}", (src,), suite) for suite, src in (self.eval.prompts or {}).items()]
        for where, sources, suite in groups:
            for src in sources:
                if src in ("builtin", "default") or src.startswith("hf:"):
                    continue
                try:
                    load_prompts(suite, src, "all")
                except LlmpatchError as exc:
                    raise RecipeError(f"{self.source}: {where}: {exc.message}",
                                      hint=f"{exc.hint + '; ' if exc.hint else ''}nothing was generated or written") from None

    def _check(self) -> None:
        """Checks that need other modules: fallbacks are refusals, models and prompt files exist, judges exist,
        name and version parse."""
        from llmpatch.evaluate.judges import parse_judge_spec
        from llmpatch.versions import check_name, parse_version

        self._check_fallbacks()
        if self.pairs.gender_swap and self.domain != "gender":
            raise RecipeError(f"{self.source}: pairs.gender_swap is set but patch.domain is {self.domain!r}",
                              hint="gender-swapped pairs balance a gender patch's rejected answers; nothing was "
                              "generated or written")
        if self.pairs.masked_twins and self.domain != "toxicity":
            raise RecipeError(f"{self.source}: pairs.masked_twins is set but patch.domain is {self.domain!r}",
                              hint="masked twins reject masked slurs and profanity: they apply to toxicity patches only; "
                              "nothing was generated or written")
        if self.select.gld_weight and self.domain != "gender":
            raise RecipeError(f"{self.source}: select.gld_weight is set but patch.domain is {self.domain!r}",
                              hint="the gender logits difference measures pronouns: it applies to gender patches only; "
                              "nothing was generated or written")
        for stage in ("sft", "dpo"):
            if getattr(self, stage).gld_weight and self.domain != "gender":
                raise RecipeError(f"{self.source}: {stage}.gld_weight is set but patch.domain is {self.domain!r}",
                                  hint="the gender logits difference penalty trains pronoun probabilities: it applies "
                                  "to gender patches only; nothing was generated or written")
        self._check_models()
        self._check_prompt_files()
        for key, spec in (("name", self.judge.name), ("guard", self.judge.guard)):
            if spec:
                try:
                    parse_judge_spec(spec)
                except Exception as exc:
                    raise RecipeError(f"{self.source}: judge.{key}: {getattr(exc, 'message', exc)}") from None
        try:
            check_name(self.patch.name)
            parse_version(self.patch.version)
        except Exception as exc:
            raise RecipeError(f"{self.source}: {getattr(exc, 'message', exc)}") from None
        if self.compose is not None:
            from llmpatch.versions import PatchSpec

            for i, entry in enumerate(self.compose.with_):
                if not is_patch_dir_entry(entry) and PatchSpec.parse(entry).name == self.patch.name:
                    raise RecipeError(f"{self.source}: compose.with[{i}] {entry!r} names the patch being built",
                                      hint="list the patches it will be stacked with, not itself")

    # -- access -----------------------------------------------------------------------------

    def get(self, dotted: str) -> Any:
        """A value in its file form by dotted path, as ``--set`` names it: ``recipe.get("sft.lr")``."""
        node: Any = self.to_dict()
        for part in dotted.split("."):
            node = node[part]
        return node

    @property
    def domain(self) -> str:
        return self.patch.domain

    def stage(self, name: str) -> Stage:
        """The ``sft`` or ``dpo`` stage by name."""
        return {"sft": self.sft, "dpo": self.dpo}[name]

    def to_dict(self) -> dict[str, Any]:
        """The full recipe in its file form (what the manifest records and the schema describes)."""
        out = {"schema_version": self.schema_version, **{k: getattr(self, k).to_dict() for k in SECTIONS}}
        if self.compose is not None:
            out["compose"] = self.compose.to_dict()
        return out

    def digest(self, *sections: str) -> str:
        """sha256 over the canonical JSON of the recipe (or of the named sections only)."""
        data = self.to_dict()
        part = {k: data[k] for k in sections} if sections else data
        return json_sha256(part)
