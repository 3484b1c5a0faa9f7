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

from llmpatch.errors import SchemaError

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
    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate(
    instance: Any,
    name: str,
    *,
    what: str | None = None,
    error: type[SchemaError] = SchemaError,
    hint: str | None = None,
) -> None:
    """Raise ``error`` naming every violation if ``instance`` fails schema ``name``."""
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
