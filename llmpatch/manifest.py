"""The patch manifest, ``llmpatch.json``: identity, target base, payload digests, provenance.

Its JSON Schema is ``registry_schema/manifest.schema.json``; it is enforced on every read and
every write. ``schema_version`` 1 is the only version so far; a newer one fails loudly.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmpatch import schemas
from llmpatch.errors import ManifestError
from llmpatch.util import now_iso
from llmpatch.versions import VersionRange

MANIFEST_NAME = "llmpatch.json"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class BaseRef:
    """The exact base model a patch was built for."""

    id: str
    revision: str | None
    fingerprint: str
    hidden_size: int
    vocab_size: int
    architecture: str
    components: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "revision": self.revision,
            "fingerprint": self.fingerprint,
            "hidden_size": self.hidden_size,
            "vocab_size": self.vocab_size,
            "architecture": self.architecture,
        }
        if self.components:
            d["components"] = dict(self.components)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BaseRef":
        return cls(
            id=d["id"],
            revision=d.get("revision"),
            fingerprint=d["fingerprint"],
            hidden_size=int(d["hidden_size"]),
            vocab_size=int(d["vocab_size"]),
            architecture=d["architecture"],
            components=dict(d.get("components") or {}),
        )

    def describe(self) -> str:
        """``id@revision (sha256:abcd1234...)`` for messages."""
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.id}{rev} ({short_fp(self.fingerprint)})"


#: The keys of a manifest ``evals`` entry that :class:`EvalClaim` names (others are kept as ``extra``).
_CLAIM_KEYS = ("suite", "metric", "value", "base_value", "baseline_value", "reference_value", "ci", "n", "direction",
               "prompts", "form")
#: How a claim's prompts were sent: as chat messages, as plain text, or each in its own form (the utility suite).
CLAIM_FORMS = ("chat", "plain", "per-prompt")
_FORM_LABELS = {"chat": "chat", "plain": "plain text", "per-prompt": "each prompt in its own form"}
#: The form each suite sends its prompts in by default (the others: ``chat``); a claim without ``form`` was
#: measured so. Kept here, below the evaluation layer; tests check it against the suites' own settings.
SUITE_DEFAULT_FORMS = {"toxicity": "plain", "utility": "per-prompt"}


@dataclass(frozen=True)
class EvalClaim:
    """One number a vendor measured at build time and records in the manifest's ``evals``.

    ``value`` is the patched model's, ``base_value`` the unpatched base's, ``baseline_value`` the
    base with a safety system prompt, ``reference_value`` another model; ``ci`` is the 95%
    bootstrap interval of ``value`` over ``n`` prompts (``prompts``: source and digest).
    ``llmpatch verify`` checks the claim against what it measures. Fields a manifest does not
    hold stay absent (None), and keys this version does not know are kept in ``extra``, so
    ``from_dict``/``to_dict`` round-trip every manifest exactly.

    >>> c = EvalClaim.from_dict({"suite": "toxicity", "metric": "mean", "value": 0.08, "base_value": 0.41})
    >>> c.id, c.to_dict()
    ('toxicity.mean', {'suite': 'toxicity', 'metric': 'mean', 'value': 0.08, 'base_value': 0.41})
    """

    suite: str
    metric: str
    value: float
    base_value: float | None = None
    baseline_value: float | None = None
    reference_value: float | None = None
    ci: tuple[float, float] | None = None
    n: int | None = None
    direction: str | None = None
    prompts: str | None = None
    #: ``chat``, ``plain`` or ``per-prompt`` (absent in older manifests: the suite's default form)
    form: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: optional keys the manifest held with an explicit null (so ``to_dict`` writes them back)
    nulls: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """``suite.metric``: the name verify reports and policies use."""
        return f"{self.suite}.{self.metric}"

    @property
    def default_form(self) -> bool:
        """Measured in its suite's default form (or recorded without one, as older manifests are)."""
        return self.form is None or self.form == SUITE_DEFAULT_FORMS.get(self.suite.replace("-", "_"), "chat")

    @property
    def label(self) -> str:
        """:attr:`id`, with ``[plain text]`` or ``[chat]`` when measured in another form than its suite's default
        (a build that trains both forms records each suite in both)."""
        return self.id if self.default_form else f"{self.id} [{_FORM_LABELS.get(self.form or '', self.form)}]"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvalClaim":
        ci = d.get("ci")
        return cls(
            suite=d["suite"], metric=d["metric"], value=d["value"], base_value=d.get("base_value"),
            baseline_value=d.get("baseline_value"), reference_value=d.get("reference_value"),
            ci=None if ci is None else (ci[0], ci[1]), n=d.get("n"), direction=d.get("direction"),
            prompts=d.get("prompts"), form=d.get("form"), extra={k: v for k, v in d.items() if k not in _CLAIM_KEYS},
            nulls=tuple(k for k in _CLAIM_KEYS if k in d and d[k] is None),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in _CLAIM_KEYS:
            v = getattr(self, k)
            if v is not None:
                out[k] = list(v) if k == "ci" else v
            elif k in self.nulls:
                out[k] = None
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class StackMember:
    """One patch of a stack a patch was evaluated in: a co-patch (pinned by its payload sha256) or the patch itself."""

    name: str
    version: str
    #: the co-patch's ``adapter_model.safetensors`` sha256 (bare hex); None for the patch itself
    payload_sha256: str | None = None

    @property
    def is_self(self) -> bool:
        return self.payload_sha256 is None

    def to_dict(self) -> dict[str, Any]:
        if self.is_self:
            return {"name": self.name, "version": self.version, "self": True}
        return {"name": self.name, "version": self.version, "payload_sha256": self.payload_sha256}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StackMember":
        return cls(d["name"], d["version"], None if d.get("self") else d["payload_sha256"])


@dataclass(frozen=True)
class StackEvidence:
    """A stack a patch was evaluated in at build time (a composition-aware build): order and evals.

    ``order`` lists the stack's patches as composed (the first one's prefix comes first), the
    patch itself marked ``self``; ``evals`` are the whole stack's held-out measurements (the same
    form as the manifest's own ``evals``); ``trained`` says the build trained for this order.

    >>> e = StackEvidence.from_dict({"order": [{"name": "tox-fix", "version": "1.1.0", "payload_sha256": "ab" * 32},
    ...                                        {"name": "harm-fix", "version": "1.3.0", "self": True}], "evals": []})
    >>> e.describe()
    'tested with tox-fix 1.1.0 before it'
    """

    order: tuple[StackMember, ...]
    evals: tuple[EvalClaim, ...] = ()
    trained: bool = True

    @property
    def others(self) -> tuple[StackMember, ...]:
        return tuple(m for m in self.order if not m.is_self)

    def describe(self) -> str:
        """``tested with tox-fix 1.1.0 before it``: where the co-patches were, relative to the patch."""
        me = next((i for i, m in enumerate(self.order) if m.is_self), 0)
        before = [f"{m.name} {m.version}" for m in self.order[:me]]
        after = [f"{m.name} {m.version}" for m in self.order[me + 1:]]
        parts = [f"{' and '.join(before)} before it" if before else "", f"{' and '.join(after)} after it" if after else ""]
        return "tested with " + ", ".join(p for p in parts if p)

    def label(self, name: str, version: str) -> str:
        """The stack as ``tox-fix@1.1.0 -> harm-fix@1.3.0``."""
        return " -> ".join(f"{name}@{version}" if m.is_self else f"{m.name}@{m.version}" for m in self.order)

    def to_dict(self) -> dict[str, Any]:
        return {"order": [m.to_dict() for m in self.order], "trained": self.trained,
                "evals": [e.to_dict() for e in self.evals]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StackEvidence":
        return cls(tuple(StackMember.from_dict(m) for m in d["order"]),
                   tuple(EvalClaim.from_dict(e) for e in d.get("evals") or ()), bool(d.get("trained", True)))


def check_stacks(stacks: Any, name: str, version: str, source: str) -> None:
    """Each stack entry holds the patch itself exactly once, under its own name and version, and no name twice."""
    for i, st in enumerate(stacks or ()):
        where = f"{source}: stacks[{i}]"
        selves = [m for m in st["order"] if m.get("self")]
        if len(selves) != 1 or (selves[0]["name"], selves[0]["version"]) != (name, version):
            raise ManifestError(f"{where} must list {name} {version} itself exactly once (marked \"self\"), "
                                f"got {[(m['name'], m['version']) for m in selves]}",
                                hint="the stack evidence is malformed; rebuild the patch")
        names = [m["name"] for m in st["order"]]
        if len(set(names)) != len(names) or len(names) < 2:
            raise ManifestError(f"{where} lists {names}: a stack holds at least two patches, each once",
                                hint="the stack evidence is malformed; rebuild the patch")


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class Provided:
    """A patch version a merged patch stands in for (its ``provides``), pinned by payload digest.

    Like Debian's ``Provides``: the resolver treats ``name`` at ``version`` as present when the
    merged patch is, and a stack may not hold both (the effect would apply twice).

    >>> Provided.from_dict({"name": "tox-fix", "version": "1.1.0", "payload_sha256": "ab" * 32}).id
    'tox-fix@1.1.0'
    """

    name: str
    version: str
    payload_sha256: str

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "payload_sha256": self.payload_sha256}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Provided":
        return cls(d["name"], d["version"], d["payload_sha256"])


@dataclass(frozen=True)
class Manifest:
    """A validated patch manifest. Use :func:`Manifest.from_dict` / :meth:`to_dict`."""

    name: str
    version: str
    summary: str
    domains: tuple[str, ...]
    base: BaseRef
    num_virtual_tokens: int
    files: dict[str, FileEntry]
    license: str = "apache-2.0"
    created: str = ""
    dtype: str = "float32"
    init: str | None = None
    description: str | None = None
    authors: tuple[str, ...] = ()
    build: dict[str, Any] = field(default_factory=dict)
    evals: tuple[EvalClaim, ...] = ()
    requires: dict[str, str] = field(default_factory=dict)
    conflicts: dict[str, str] = field(default_factory=dict)
    #: patch versions this (merged) patch stands in for; absent from the file when empty
    provides: tuple[Provided, ...] = ()
    #: stacks the patch was evaluated in at build time (composition-aware builds); empty for others
    stacks: tuple[StackEvidence, ...] = ()

    @property
    def id(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "version": self.version,
            "summary": self.summary,
            "domains": list(self.domains),
            "license": self.license,
            "created": self.created or now_iso(),
            "base": self.base.to_dict(),
            "patch": {"type": "prompt_tuning", "num_virtual_tokens": self.num_virtual_tokens, "dtype": self.dtype},
            "files": {k: {"sha256": v.sha256, "size": v.size} for k, v in sorted(self.files.items())},
            "build": self.build,
            "evals": [e.to_dict() for e in self.evals],
            "requires": dict(self.requires),
            "conflicts": dict(self.conflicts),
        }
        if self.init is not None:
            d["patch"]["init"] = self.init
        if self.description:
            d["description"] = self.description
        if self.authors:
            d["authors"] = list(self.authors)
        if self.provides:
            d["provides"] = [p.to_dict() for p in self.provides]
        if self.stacks:
            d["stacks"] = [st.to_dict() for st in self.stacks]
        schemas.validate(d, "manifest", what=f"manifest of {self.name} {self.version}", error=ManifestError)
        check_stacks(d.get("stacks"), self.name, self.version, f"manifest of {self.name} {self.version}")
        return d

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "manifest") -> "Manifest":
        """Validate ``d`` against the schema and build a Manifest."""
        schemas.validate(
            d, "manifest", what=source, error=ManifestError, known_version=SCHEMA_VERSION,
            hint="the patch is malformed; rebuild it with `llmpatch build` or ask its vendor for a fixed release",
        )
        for fld in ("summary", "description", "license", "homepage"):
            check_display_text(d.get(fld), f"{source}: {fld}")
        for i, text in enumerate(d.get("authors") or ()):
            check_display_text(text, f"{source}: authors[{i}]")
        for table in ("requires", "conflicts"):
            if d["name"] in d[table]:
                raise ManifestError(f"{source}: {d['name']} lists itself in {table}",
                                    hint=f"remove {d['name']!r} from {table}; a patch cannot {table[:-1]} itself")
            for dep, rng in d[table].items():
                try:
                    VersionRange.parse(rng)
                except Exception as exc:
                    raise ManifestError(f"{source}: {table}[{dep!r}] = {rng!r} is not a valid version range: {exc}") from None
        provided = [p["name"] for p in d.get("provides") or ()]
        if d["name"] in provided:
            raise ManifestError(f"{source}: {d['name']} lists itself in provides",
                                hint="provides names the other patches a merged patch stands in for")
        if len(set(provided)) != len(provided):
            dup = sorted({n for n in provided if provided.count(n) > 1})
            raise ManifestError(f"{source}: provides names {', '.join(dup)} more than once",
                                hint="a merged patch provides one version of each patch")
        check_stacks(d.get("stacks"), d["name"], d["version"], source)
        return cls(
            name=d["name"],
            version=d["version"],
            summary=d["summary"],
            domains=tuple(d["domains"]),
            base=BaseRef.from_dict(d["base"]),
            num_virtual_tokens=int(d["patch"]["num_virtual_tokens"]),
            dtype=d["patch"]["dtype"],
            init=d["patch"].get("init"),
            files={k: FileEntry(v["sha256"], int(v["size"])) for k, v in d["files"].items()},
            license=d["license"],
            created=d["created"],
            description=d.get("description"),
            authors=tuple(d.get("authors") or ()),
            build=dict(d["build"]),
            evals=tuple(EvalClaim.from_dict(e) for e in d["evals"]),
            requires=dict(d["requires"]),
            conflicts=dict(d["conflicts"]),
            provides=tuple(Provided.from_dict(p) for p in d.get("provides") or ()),
            stacks=tuple(StackEvidence.from_dict(st) for st in d.get("stacks") or ()),
        )

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys, 2-space indent, trailing newline)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        """Read and validate a manifest file."""
        path = Path(path)
        if path.is_symlink():
            raise ManifestError(f"{path} is a symbolic link; a patch's files must be regular files",
                                hint="copy the content into the patch directory")
        try:
            data = schemas.read_json(path, error=ManifestError,
                                     hint="the patch is malformed; rebuild it with `llmpatch build`")
        except FileNotFoundError:
            raise ManifestError(
                f"{path} not found: a patch directory must contain {MANIFEST_NAME}",
                hint="point at a directory made by `llmpatch build`",
            ) from None
        return cls.from_dict(data, source=str(path))


def check_display_text(text: Any, what: str) -> None:
    """Refuse text shown to users that holds control, bidi or zero-width characters (they can disguise it)."""
    if not isinstance(text, str):
        return
    bad = sorted({c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\t"})
    if bad:
        raise ManifestError(
            f"{what} holds invisible or direction-changing characters ({', '.join(f'U+{ord(c):04X}' for c in bad)}): {text[:80]!r}",
            hint="such characters can make displayed text read differently from what it is; remove them",
        )



def short_fp(fp: str) -> str:
    """``sha256:9bc1a2b3...`` shortened to 12 hex digits for messages."""
    algo, _, hexd = fp.partition(":")
    return f"{algo}:{hexd[:12]}…" if hexd else fp
