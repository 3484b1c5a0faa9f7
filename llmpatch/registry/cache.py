"""Caches behind the registry index: a per-process memo of parsed indexes and an on-disk view.

Everything here is an optimisation of :mod:`llmpatch.registry.index` (which stays pure: parse,
validate, look up) and may be thrown away at any time without changing a result.

* **Process memo**: indexes parsed in this process, by the sha256 of their bytes. A second read
  of unchanged bytes (an install reads the index to resolve, then again to fetch) skips parsing.
  The bytes are still read, hashed, signature-checked and freshness-checked by the registry on
  every read.
* **Digest memo**: the sha256 of the bytes object read last (the signature check and the parse
  both need it); keyed by object identity, so it never answers for other bytes.
* **View files** (``<home>/cache/index-view/<sha256>.view``): for index bytes this client has
  validated before, a JSON header line and the segments it points into (the compact search rows,
  then each patch's JSON), so a later process reads one patch without parsing the whole index.
* **Read-only entries**: :func:`frozen_view` builds a frozen dataclass without copying its
  fields, for the thousands of entries an install scans.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from llmpatch import atomic, paths

T = TypeVar("T")

#: 3: the header holds the index's ``provided`` map (merged patches by the names they provide)
VIEW_VERSION = 3
MEMO_SIZE = 4

_MEMO: "OrderedDict[str, Any]" = OrderedDict()
_MEMO_LOCK = threading.Lock()
_LAST_DIGEST: tuple[bytes, str] | None = None


def forget_parsed() -> None:
    """Forget the indexes parsed in this process (the on-disk view cache stays); for benchmarks and tests."""
    global _LAST_DIGEST
    with _MEMO_LOCK:
        _MEMO.clear()
    _LAST_DIGEST = None


def memo_get(digest: str) -> Any | None:
    """The index parsed in this process from bytes with this sha256, if any."""
    with _MEMO_LOCK:
        value = _MEMO.get(digest)
        if value is not None:
            _MEMO.move_to_end(digest)
        return value


def memo_put(digest: str, value: Any) -> None:
    """Remember a parsed index (the oldest of more than :data:`MEMO_SIZE` is dropped)."""
    with _MEMO_LOCK:
        _MEMO[digest] = value
        _MEMO.move_to_end(digest)
        while len(_MEMO) > MEMO_SIZE:
            _MEMO.popitem(last=False)


def raw_digest(raw: bytes) -> str:
    """sha256 hex of index bytes; the same bytes object is hashed once (the signature check and the parse both need it)."""
    global _LAST_DIGEST
    last = _LAST_DIGEST
    if last is not None and last[0] is raw:  # identity, not equality: holding ``raw`` keeps its id unique
        return last[1]
    digest = hashlib.sha256(raw).hexdigest()
    _LAST_DIGEST = (raw, digest)
    return digest


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic containers.

    Parsing a 10,000-version patch allocates ~200,000 dicts; each allocation burst can trigger a
    full collection that walks every object in the process (torch's included): 60 ms of parsing
    became 430 ms about one time in three. With it paused, at most one collection follows.
    JSON values hold no cycles, so nothing is missed.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def frozen_view(cls: type[T], fields: dict[str, Any]) -> T:
    """An instance of the frozen dataclass ``cls`` holding ``fields`` as given (not copied, not checked).

    For read-only entries of a schema-valid index: the dataclass ``__init__`` (one
    ``object.__setattr__`` per field) plus copying every nested dict is about 6x slower, and an
    install scans thousands. The caller guarantees that nothing modifies ``fields`` afterwards.
    """
    obj = object.__new__(cls)
    obj.__dict__.update(fields)
    return obj


def view_path(digest: str) -> Path:
    return paths.cache_dir("index-view") / f"{digest}.view"


def save_view(digest: str, header: dict[str, Any], rows: list[list[Any]], patches: dict[str, Callable[[], Any]]) -> None:
    """Write the view of validated index bytes: a JSON header line, then the segments it points into.

    ``patches`` maps each name to a function returning its JSON (called once each). Failing to
    write is ignored: the cache is an optimisation only and must not fail a read.
    """
    segments: list[bytes] = []
    pos = 0

    def segment(obj: Any) -> list[int]:
        nonlocal pos
        b = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")
        segments.append(b)
        pos += len(b)
        return [pos - len(b), pos]

    rows_span = segment(rows)
    spans = {n: segment(get()) for n, get in patches.items()}
    head = {"view_version": VIEW_VERSION, "digest": digest, "header": header, "rows": rows_span, "patches": spans}
    target = view_path(digest)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(head, separators=(",", ":")).encode("utf-8") + b"\n"
        atomic.write_bytes(target, b"".join([line, *segments]), durable=False)
    except OSError:
        pass


def load_view(digest: str) -> tuple[dict[str, Any], bytes, dict[str, list[int]], list[int]] | None:
    """``(header, body, patch spans, rows span)`` of the view of index bytes with this sha256, or None."""
    try:
        data = view_path(digest).read_bytes()
        cut = data.index(b"\n")
        head = json.loads(data[:cut])
        if head.get("view_version") != VIEW_VERSION or head.get("digest") != digest:
            return None
        return dict(head["header"]), data[cut + 1:], dict(head["patches"]), list(head["rows"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing or unreadable cache: parse and validate the index itself
