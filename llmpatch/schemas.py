"""JSON Schemas of every on-disk and wire format, enforced on each read and write.

The schemas live in the top-level ``registry_schema/`` directory (shipped inside the wheel as
``llmpatch/registry_schema``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from llmpatch.errors import LlmpatchError, SchemaError

_PACKAGED = Path(__file__).parent / "registry_schema"
_SOURCE = Path(__file__).parent.parent / "registry_schema"


def schema_dir() -> Path:
    """Directory holding ``*.schema.json`` (packaged copy, or the source tree's)."""
    return _PACKAGED if _PACKAGED.is_dir() else _SOURCE


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """Load ``registry_schema/<name>.schema.json``."""
    path = schema_dir() / f"{name}.schema.json"
    if not path.is_file():
        raise SchemaError(f"unknown schema {name!r}: {path} does not exist")
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.protocols.Validator:
    # The shipped schemas are checked against their metaschema by the tests
    # (tests/test_cli_startup.py), not on every run: that check cost each command ~40-70 ms.
    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def check_version(instance: Any, known: int, *, what: str, error: type[LlmpatchError] = SchemaError) -> None:
    """Fail loudly on a ``schema_version`` newer than ``known`` (an older llmpatch reading a newer file)."""
    version = instance.get("schema_version") if isinstance(instance, dict) else None
    if isinstance(version, int) and version > known:
        raise error(f"{what} has schema_version {version}, newer than this llmpatch understands ({known})",
                    hint="upgrade llmpatch (pip install -U llmpatch)")


def validate(
    instance: Any,
    name: str,
    *,
    what: str | None = None,
    error: type[SchemaError] = SchemaError,
    hint: str | None = None,
    known_version: int | None = None,
) -> None:
    """Raise ``error`` naming every violation if ``instance`` fails schema ``name``.

    With ``known_version``, a ``schema_version`` above it fails first, with its own message.
    """
    if known_version is not None:
        check_version(instance, known_version, what=what or name, error=error)
    errors = sorted(_validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    label = what or name
    lines = []
    for err in errors[:8]:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        lines.append(f"  - at {where}: {err.message}")
    more = f"\n  ... and {len(errors) - 8} more" if len(errors) > 8 else ""
    raise error(
        f"{label} does not match the {name} schema (registry_schema/{name}.schema.json):\n"
        + "\n".join(lines)
        + more,
        hint=hint,
    )
