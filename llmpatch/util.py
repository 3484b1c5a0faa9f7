"""Small helpers with one home: timestamps, digests, canonical JSON, no-op progress.

Core layer: imports nothing from llmpatch.

>>> json_sha256({"b": 1, "a": [1, 2]}) == json_sha256({"a": [1, 2], "b": 1})
True
>>> canonical_json({"b": 1, "a": "é"})
b'{"a":"\\xc3\\xa9","b":1}'
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, ContextManager

try:  # recipes and policies are TOML
    import tomllib
except ImportError:  # Python 3.10: the tomli backport, declared for it in pyproject.toml
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["PICKLE_SUFFIXES", "ProgressFactory", "canonical_json", "iso", "json_sha256", "no_progress", "now_iso",
           "sha256_file", "tomllib"]

#: ``progress(description, total)`` returns a context manager yielding ``advance(n=1)``.
ProgressFactory = Callable[[str, int], ContextManager[Callable[[int], None]]]
#: Pickle-based formats, which can run code when loaded: refused in patches and base models.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


def no_progress(description: str, total: int) -> ContextManager[Callable[[int], None]]:
    """A :data:`ProgressFactory` that shows nothing."""
    return contextlib.nullcontext(lambda n=1: None)


def now_iso() -> str:
    """Current UTC time as RFC 3339 with a Z suffix, to the second."""
    return iso(_dt.datetime.now(_dt.timezone.utc))


def iso(when: _dt.datetime) -> str:
    """An aware datetime as RFC 3339 UTC with a Z suffix, to the second."""
    return when.astimezone(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def canonical_json(data: Any) -> bytes:
    """The bytes that are signed and fingerprinted: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_sha256(data: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """Hex sha256 of ``json.dumps(data, sort_keys=True)``: the cache keys of builds and generations."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=default).encode()).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
