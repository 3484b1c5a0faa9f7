"""The patch manifest, ``llmpatch.json``: identity, target base, payload digests, provenance.

Its JSON Schema is ``registry_schema/manifest.schema.json``; it is enforced on every read and
every write. ``schema_version`` 1 is the only version so far; a newer one fails loudly.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmpatch import schemas
from llmpatch.errors import ManifestError
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


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


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
    evals: tuple[dict[str, Any], ...] = ()
    requires: dict[str, str] = field(default_factory=dict)
    conflicts: dict[str, str] = field(default_factory=dict)

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
            "evals": [dict(e) for e in self.evals],
            "requires": dict(self.requires),
            "conflicts": dict(self.conflicts),
        }
        if self.init is not None:
            d["patch"]["init"] = self.init
        if self.description:
            d["description"] = self.description
        if self.authors:
            d["authors"] = list(self.authors)
        schemas.validate(d, "manifest", what=f"manifest of {self.name} {self.version}", error=ManifestError)
        return d

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "manifest") -> "Manifest":
        """Validate ``d`` against the schema and build a Manifest."""
        if isinstance(d, dict) and isinstance(d.get("schema_version"), int) and d["schema_version"] > SCHEMA_VERSION:
            raise ManifestError(
                f"{source} has schema_version {d['schema_version']}, newer than this llmpatch "
                f"understands ({SCHEMA_VERSION})",
                hint="upgrade llmpatch (pip install -U llmpatch)",
            )
        schemas.validate(
            d, "manifest", what=source, error=ManifestError,
            hint="the patch is malformed; rebuild it with `llmpatch build` or ask its vendor for a fixed release",
        )
        for table in ("requires", "conflicts"):
            for dep, rng in d[table].items():
                try:
                    VersionRange.parse(rng)
                except Exception as exc:
                    raise ManifestError(f"{source}: {table}[{dep!r}] = {rng!r} is not a valid version range: {exc}") from None
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
            evals=tuple(dict(e) for e in d["evals"]),
            requires=dict(d["requires"]),
            conflicts=dict(d["conflicts"]),
        )

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys, 2-space indent, trailing newline)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        """Read and validate a manifest file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ManifestError(
                f"{path} not found: a patch directory must contain {MANIFEST_NAME}",
                hint="point at a directory made by `llmpatch build`",
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path} is not valid JSON: {exc}") from None
        return cls.from_dict(data, source=str(path))

    def with_changes(self, **changes: Any) -> "Manifest":
        return replace(self, **changes)


def now_iso() -> str:
    """Current UTC time as RFC 3339 with a Z suffix."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def short_fp(fp: str) -> str:
    """``sha256:9bc1a2b3...`` shortened to 12 hex digits for messages."""
    algo, _, hexd = fp.partition(":")
    return f"{algo}:{hexd[:12]}…" if hexd else fp
