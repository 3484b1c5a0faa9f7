"""The environment's on-disk formats: environment.json, generations and llmpatch.lock.

Each is a frozen dataclass with ``to_dict``/``from_dict``, validated against its JSON Schema
(``registry_schema/{environment,generation,lock}.schema.json``) on every read and write.
``schema_version`` 1 is the only version so far; a newer one fails loudly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmpatch import schemas
from llmpatch.compose import stack_id
from llmpatch.errors import EnvironmentStateError, SchemaError
from llmpatch.manifest import BaseRef

SCHEMA_VERSION = 1


def read_json(path: Path, what: str) -> Any:
    """Read a JSON file, turning a missing or garbled file into EnvironmentStateError."""
    hint = "the environment is damaged; re-create it with `llmpatch init`"
    try:
        return schemas.read_json(Path(path), what=f"{what} {path}", error=EnvironmentStateError, hint=hint)
    except FileNotFoundError:
        raise EnvironmentStateError(f"{what} {path} is missing", hint=hint) from None


@dataclass(frozen=True)
class PinnedBase:
    """The base an environment is pinned to: the spec the user gave and its identity."""

    spec: str
    ref: BaseRef

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, **self.ref.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PinnedBase":
        return cls(spec=d["spec"], ref=BaseRef.from_dict(d))


@dataclass(frozen=True)
class EnvConfig:
    """``.llmpatch/environment.json``."""

    created: str
    base: PinnedBase
    registry: str | None
    max_virtual_tokens: int
    #: the environment's verify policy file (relative to the project directory, or absolute): the
    #: gate ``install --verify`` applies, and applies unasked to stacks no vendor evaluated together
    policy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"schema_version": SCHEMA_VERSION, "created": self.created, "base": self.base.to_dict(),
             "registry": self.registry, "max_virtual_tokens": self.max_virtual_tokens}
        if self.policy is not None:
            d["policy"] = self.policy
        schemas.validate(d, "environment", what="environment.json")
        return d

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "environment.json") -> "EnvConfig":
        schemas.validate(d, "environment", what=source, known_version=SCHEMA_VERSION)
        return cls(d["created"], PinnedBase.from_dict(d["base"]), d["registry"], int(d["max_virtual_tokens"]),
                   d.get("policy"))


@dataclass(frozen=True)
class Installed:
    """One exact patch version in a generation (position = index in the stack)."""

    name: str
    version: str
    manifest_sha256: str
    payload_sha256: str
    num_virtual_tokens: int
    requested: str | None = None
    registry: str | None = None
    location: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "manifest_sha256": self.manifest_sha256,
            "payload_sha256": self.payload_sha256, "num_virtual_tokens": self.num_virtual_tokens,
            "requested": self.requested, "registry": self.registry, "location": dict(self.location),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Installed":
        return cls(d["name"], d["version"], d["manifest_sha256"], d["payload_sha256"], int(d["num_virtual_tokens"]),
                   d.get("requested"), d.get("registry"), dict(d.get("location") or {}))


def stack_of(patches: tuple[Installed, ...] | list[Installed]) -> str:
    """The stack id of an ordered list of installed patches (same as compose.PatchStack.id)."""
    return stack_id([(p.name, p.version, p.payload_sha256) for p in patches])


@dataclass(frozen=True)
class Generation:
    """One immutable state of an environment."""

    number: int
    created: str
    action: str
    command: str
    parent: int | None
    restores: int | None
    base_fingerprint: str
    patches: tuple[Installed, ...]

    @property
    def stack_id(self) -> str:
        return stack_of(self.patches)

    def describe(self) -> str:
        return " -> ".join(p.id for p in self.patches) or "(no patches)"

    def to_dict(self) -> dict[str, Any]:
        d = {
            "schema_version": SCHEMA_VERSION, "number": self.number, "created": self.created, "action": self.action,
            "command": self.command, "parent": self.parent, "restores": self.restores,
            "base_fingerprint": self.base_fingerprint, "stack_id": self.stack_id,
            "patches": [p.to_dict() for p in self.patches],
        }
        schemas.validate(d, "generation", what=f"generation {self.number}")
        return d

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "generation") -> "Generation":
        schemas.validate(d, "generation", what=source, error=SchemaError, known_version=SCHEMA_VERSION)
        gen = cls(int(d["number"]), d["created"], d["action"], d["command"], d["parent"], d["restores"],
                  d["base_fingerprint"], tuple(Installed.from_dict(p) for p in d["patches"]))
        if gen.stack_id != d["stack_id"]:
            raise EnvironmentStateError(f"{source}: stack_id {d['stack_id']} does not match its patches ({gen.stack_id})")
        return gen


@dataclass(frozen=True)
class LockFile:
    """``llmpatch.lock``: a reproducible description of one stack on one base."""

    base: PinnedBase
    registry: str | None
    patches: tuple[Installed, ...]

    @property
    def stack_id(self) -> str:
        return stack_of(self.patches)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "schema_version": SCHEMA_VERSION, "base": self.base.to_dict(), "registry": self.registry,
            "stack_id": self.stack_id,
            "patches": [{"position": i, **p.to_dict()} for i, p in enumerate(self.patches, start=1)],
        }
        schemas.validate(d, "lock", what="llmpatch.lock")
        return d

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "llmpatch.lock") -> "LockFile":
        schemas.validate(d, "lock", what=source, hint="re-create it with `llmpatch lock` in the source environment",
                         known_version=SCHEMA_VERSION)
        rows = sorted(d["patches"], key=lambda p: p["position"])
        if [p["position"] for p in rows] != list(range(1, len(rows) + 1)):
            raise SchemaError(f"{source}: positions must be 1..{len(rows)} without gaps, got {[p['position'] for p in rows]}")
        lock = cls(PinnedBase.from_dict(d["base"]), d["registry"],
                   tuple(Installed.from_dict({k: v for k, v in p.items() if k != "position"}) for p in rows))
        if lock.stack_id != d["stack_id"]:
            raise SchemaError(f"{source}: stack_id {d['stack_id']} does not match its patches ({lock.stack_id}); the file was edited",
                              hint="re-create it with `llmpatch lock`")
        return lock

    @classmethod
    def read(cls, path: Path) -> "LockFile":
        path = Path(path)
        if not path.is_file():
            raise EnvironmentStateError(f"lock file {path} not found", hint="run `llmpatch lock` in the environment to reproduce, and copy llmpatch.lock here")
        data = schemas.read_json(path, hint="restore llmpatch.lock from version control, or rewrite it with `llmpatch lock`")
        return cls.from_dict(data, source=str(path))
