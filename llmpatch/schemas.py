"""JSON Schemas of every on-disk and wire format, enforced on each read and write.

The schemas live in the top-level ``registry_schema/`` directory (shipped inside the wheel as
``llmpatch/registry_schema``).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from functools import lru_cache
from itertools import accumulate
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


#: Largest JSON document llmpatch parses (an index of 10,000 versions is ~12 MB).
MAX_JSON_BYTES = 256 * 1024 * 1024
#: Deepest nesting any llmpatch format needs (indexes nest ~7 levels); deeper input is refused.
MAX_JSON_DEPTH = 64
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


_DEPTH_CHECK_MAX = 1 << 20
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _depth_ok(text: str) -> bool:
    """True unless brackets nest deeper than MAX_JSON_DEPTH (checked before parsing, without recursion)."""
    brackets = _BRACKET.findall(_STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0) <= MAX_JSON_DEPTH


def loads(data: bytes | str, *, what: str, error: type[LlmpatchError] = SchemaError, hint: str | None = None) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity, bounded size and nesting; else ``error``."""
    if isinstance(data, bytes):
        if len(data) > MAX_JSON_BYTES:
            raise error(f"{what} is {len(data)} bytes, more than the {MAX_JSON_BYTES} llmpatch reads", hint=hint)
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{what} is not valid UTF-8 ({exc})", hint=hint) from None
    if data.startswith("\ufeff"):
        data = data[1:]
    # Small documents (manifests, locks, policies) are depth-checked up front, so later recursive code
    # (schema validation, canonical JSON) never meets a deep structure; big indexes rely on the
    # parser's own recursion guard, to keep their first read fast.
    if len(data) <= _DEPTH_CHECK_MAX and not _depth_ok(data):
        raise error(f"{what} nests deeper than {MAX_JSON_DEPTH} levels; no llmpatch file does", hint=hint)
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise error(f"{what} is not valid JSON ({exc})", hint=hint) from None


def read_json(path: Path, *, what: str | None = None, error: type[LlmpatchError] = SchemaError,
              hint: str | None = None) -> Any:
    """Read a file with :func:`loads`; a directory or unreadable file is ``error`` too."""
    path = Path(path)
    label = what or str(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise error(f"{label} is a directory, expected a JSON file", hint=hint) from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise error(f"{label} cannot be read ({exc.strerror or exc})", hint=hint) from None
    return loads(raw, what=label, error=error, hint=hint)


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        return False
    try:
        _dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def _anchored(pattern: str) -> str:
    """JSON Schema patterns are searched; ``$`` also matches before a final newline in Python, so use ``\\Z``."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + r"\Z"
    return pattern


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if isinstance(instance, str) and not re.search(_anchored(pattern), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.protocols.Validator:
    # The shipped schemas are checked against their metaschema by the tests
    # (tests/test_cli_startup.py), not on every run: that check cost each command ~40-70 ms.
    schema = load_schema(name)
    base = jsonschema.validators.validator_for(schema)
    strict = jsonschema.validators.extend(base, {"pattern": _pattern})
    checker = jsonschema.FormatChecker()
    checker.checks("date-time")(_is_datetime)
    return strict(schema, format_checker=checker)


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
