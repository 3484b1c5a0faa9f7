"""Build recipes: a TOML file that names everything a build needs, with defaults and overrides.

A recipe is read, merged over the defaults of its domain, overridden with ``--set a.b=value``
pairs, then validated against ``registry_schema/recipe.schema.json`` and a few checks the schema
cannot express (files exist, a reference model is named when one is needed). Everything fails
here, before any model is loaded.

Example::

    >>> r = Recipe.from_dict({"patch": {"name": "tox-fix", "version": "1.0.0", "summary": "s", "domain": "toxicity"}})
    >>> r.get("sft.lr"), r.get("prefix.num_virtual_tokens"), r.get("dpo.reference")
    (0.01, 50, 'sft')
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from llmpatch import schemas
from llmpatch.errors import RecipeError, SchemaError

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
DOMAIN_EVAL_SUITES = {"toxicity": ["toxicity", "fluency"], "gender": ["gender", "fluency"],
                      "harmfulness": ["harmfulness", "over_refusal", "fluency"]}


def _stage(lr: float, epochs: float, batch: int, max_length: int, **extra: Any) -> dict[str, Any]:
    return {"lr": lr, "epochs": epochs, "max_steps": -1, "batch_size": batch, "grad_accum": 1,
            "max_length": max_length, "warmup_ratio": 0.0, "weight_decay": 0.0, **extra}


def defaults(domain: str) -> dict[str, Any]:
    """The full recipe a domain gets when the file names only the patch."""
    chat = domain != "toxicity"  # toxicity prompts are sentence starts to continue, the others requests
    return {
        "schema_version": SCHEMA_VERSION,
        "patch": {"license": "apache-2.0", "dtype": "float32"},
        "base": {"spec": "default", "max_memory_gb": None},
        "reference": {"kind": "self", "model": None, "system_prompt": SYSTEM_PROMPT[domain], "best_of": 4,
                      "temperature": 0.8, "top_p": 0.95, "refusal_fallback": domain == "harmfulness",
                      "fallback_text": FALLBACK_REFUSAL, "fallback_when": "unsafe"},
        "prompts": {"train": ["builtin"], "eval": ["builtin"],
                    "benign": ["builtin"] if domain == "harmfulness" else [], "limit": None},
        "judge": {"name": DOMAIN_JUDGE[domain], "guard": None},
        "generation": {"chat": chat, "max_new_tokens": 48 if chat else 32, "temperature": 1.0, "top_p": 0.95,
                       "samples_per_prompt": 1, "batch_size": 8},
        "pairs": {"delta": 0.5 if domain != "toxicity" else 0.1, "tau": 0.5, "min_pairs": 1,
                  "benign_contrast": domain == "harmfulness", "contrast_words": 0,
                  "on_policy": 0},
        "prefix": {"num_virtual_tokens": 50, "init": "text", "init_text": INIT_TEXT[domain]},
        "sft": _stage(0.01, 3, 4, 96, benign_repeat=1),
        "dpo": _stage(0.005, 2, 4, 96, beta=0.1, reference="sft", sft_weight=0.0, enabled=True),
        "seeds": {"data": 0, "train": 0},
        "training": {"save_steps": 10, "gradient_checkpointing": False},
        "select": {"enabled": False, "snapshots": 4, "include_sft": True, "prompts": ["builtin"],
                   "benign": ["builtin"] if domain == "harmfulness" else [], "limit": None, "max_new_tokens": 32,
                   "batch_size": 8},
        "eval": {"enabled": True, "suites": list(DOMAIN_EVAL_SUITES[domain]), "limit": None, "system_prompt": None,
                 "batch_size": 8},
    }


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


@dataclass(frozen=True)
class Recipe:
    """A complete, validated recipe (defaults and overrides applied)."""

    data: dict[str, Any]
    source: str = "<recipe>"

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
        version = raw.get("schema_version", SCHEMA_VERSION)
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise RecipeError(f"{source} has schema_version {version}, newer than this llmpatch understands ({SCHEMA_VERSION})",
                              hint="upgrade llmpatch")
        data = deep_merge(defaults(domain), raw)
        try:
            schemas.validate(data, "recipe", what=f"recipe {source}", error=SchemaError)
        except SchemaError as exc:
            raise RecipeError(exc.message, hint="see docs/build.md for every recipe field and its default") from None
        recipe = cls(data, source)
        recipe._check(root)
        return recipe

    @classmethod
    def load(cls, path: str | Path, overrides: Iterable[str] = ()) -> "Recipe":
        """Read a TOML recipe file."""
        p = Path(path)
        if not p.is_file():
            raise RecipeError(f"recipe file {str(p)!r} does not exist", hint="see examples/recipes/*.toml")
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise RecipeError(f"{p} is not valid TOML: {exc}") from None
        return cls.from_dict(raw, overrides=overrides, source=str(p), root=p.parent)

    def _check_fallbacks(self, ref: dict[str, Any]) -> None:
        """Each fallback refusal must be a refusal to the refusal judge (no model needed).

        Fallbacks are recorded as safe without being judged, and benign contrast pairs reject them
        as the refusal to avoid; a text the judge does not count as a refusal makes both untrue.
        """
        from llmpatch.builder.reference import fallback_texts
        from llmpatch.evaluate.judges import RefusalJudge

        if not ref.get("refusal_fallback"):
            return
        texts = fallback_texts(ref.get("fallback_text"))
        for i, (text, refuses) in enumerate(zip(texts, RefusalJudge().score(texts))):
            if not refuses:
                where = "reference.fallback_text" + ("" if isinstance(ref["fallback_text"], str) else f"[{i}]")
                raise RecipeError(f"{self.source}: {where} {text!r} is not a refusal to the refusal judge "
                                  "(it opens with none of its refusal phrases)",
                                  hint="open each fallback with a refusal, e.g. \"I'm sorry, but I can't help with "
                                  "that\"; nothing was generated or written")

    def _check(self, root: Path | None) -> None:
        """Checks the schema cannot express: files exist, a model is named when needed."""
        from llmpatch.evaluate.prompts import parse_hf_source

        d = self.data
        if d["reference"]["kind"] == "model" and not d["reference"].get("model"):
            raise RecipeError(f"{self.source}: reference.kind is 'model' but reference.model is not set",
                              hint="name M' (a Hub id, directory or .gguf file), or use kind = \"self\"")
        self._check_fallbacks(d["reference"])
        sections = [("prompts", s, d["prompts"].get(s) or []) for s in ("train", "eval", "benign")]
        sections += [("select", s, d["select"].get(s) or []) for s in ("prompts", "benign")]
        for table, section, sources in sections:
            for i, src in enumerate(sources):
                if src in ("builtin", "default"):
                    continue
                if src.startswith("hf:"):
                    try:
                        parse_hf_source(src)
                    except Exception as exc:
                        raise RecipeError(f"{self.source}: {table}.{section}[{i}] {src!r}: {exc}") from None
                    continue
                path_text = src.partition("#")[0]
                path = Path(path_text).expanduser()
                if not path.is_absolute() and root is not None and (root / path).exists():
                    path = root / path
                    sources[i] = str(path) + (src[len(path_text):])
                if not path.is_file():
                    raise RecipeError(f"{self.source}: prompt file {path_text!r} ({table}.{section}) does not exist",
                                      hint="give a .jsonl/.csv/.txt file (relative to the recipe or the working "
                                      "directory), 'builtin', or hf:<dataset-id>")
        from llmpatch.evaluate.judges import parse_judge_spec

        for key in ("name", "guard"):
            spec = d["judge"].get(key)
            if spec:
                try:
                    parse_judge_spec(spec)
                except Exception as exc:
                    raise RecipeError(f"{self.source}: judge.{key}: {getattr(exc, 'message', exc)}") from None
        from llmpatch.versions import check_name, parse_version

        try:
            check_name(d["patch"]["name"])
            parse_version(d["patch"]["version"])
        except Exception as exc:
            raise RecipeError(f"{self.source}: {getattr(exc, 'message', exc)}") from None

    # -- access -----------------------------------------------------------------------------

    def get(self, dotted: str) -> Any:
        """A value by dotted path: ``recipe.get("sft.lr")``."""
        node: Any = self.data
        for part in dotted.split("."):
            node = node[part]
        return node

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def domain(self) -> str:
        return self.data["patch"]["domain"]

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)

    def digest(self, *sections: str) -> str:
        """sha256 over the canonical JSON of the recipe (or of the named sections only)."""
        part = {k: self.data[k] for k in sections} if sections else self.data
        return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()
