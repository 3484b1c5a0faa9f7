"""The registry index: every patch, every version, where its files are and what they hash to.

Pure values: parsing, validation (``registry_schema/index.schema.json``), lookup and search.
Fetching the bytes and checking signatures and freshness is the backends' job.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from llmpatch import paths, schemas
from llmpatch.errors import NotFoundError, SchemaError
from llmpatch.manifest import now_iso
from llmpatch.versions import version_key

SCHEMA_VERSION = 1
INDEX_FILE = "index.json"
INDEX_SIG_FILE = "index.sig.json"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class IndexEntry:
    """One published version of one patch."""

    name: str
    version: str
    summary: str
    domains: tuple[str, ...]
    base_fingerprint: str
    base_id: str
    num_virtual_tokens: int
    requires: dict[str, str]
    conflicts: dict[str, str]
    files: dict[str, dict]
    manifest_sha256: str
    yanked: bool
    yank_reason: str | None
    published: str
    location: dict
    signature: dict | None
    evals: tuple[dict, ...] = field(default=())

    @property
    def id(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def size(self) -> int:
        """Total bytes of the version's files."""
        return sum(int(f["size"]) for f in self.files.values())

    def to_dict(self) -> dict[str, Any]:
        """The index form (name and version are the keys above it)."""
        return {
            "summary": self.summary, "domains": list(self.domains), "base_fingerprint": self.base_fingerprint,
            "base_id": self.base_id, "num_virtual_tokens": self.num_virtual_tokens, "requires": dict(self.requires),
            "conflicts": dict(self.conflicts), "files": {k: dict(v) for k, v in sorted(self.files.items())},
            "manifest_sha256": self.manifest_sha256, "yanked": self.yanked, "yank_reason": self.yank_reason,
            "published": self.published, "location": dict(self.location), "signature": self.signature,
            "evals": [dict(e) for e in self.evals],
        }

    def to_json_dict(self) -> dict[str, Any]:
        """Flat form for ``--json`` output."""
        return {"name": self.name, "version": self.version, **self.to_dict()}

    @classmethod
    def from_dict(cls, name: str, version: str, d: dict[str, Any]) -> "IndexEntry":
        return cls(
            name=name, version=version, summary=d["summary"], domains=tuple(d["domains"]),
            base_fingerprint=d["base_fingerprint"], base_id=d["base_id"], num_virtual_tokens=int(d["num_virtual_tokens"]),
            requires=dict(d["requires"]), conflicts=dict(d["conflicts"]), files={k: dict(v) for k, v in d["files"].items()},
            manifest_sha256=d["manifest_sha256"], yanked=bool(d["yanked"]), yank_reason=d.get("yank_reason"),
            published=d["published"], location=dict(d["location"]), signature=d.get("signature"),
            evals=tuple(dict(e) for e in d.get("evals") or ()),
        )


def _view_path(digest: str) -> Path:
    return paths.cache_dir("index-view") / f"{digest}.json"


_VIEW_VERSION = 1


class Index:
    """A parsed, schema-valid registry index.

    ``search`` runs over compact rows (name, version, summary, domains, base, yanked); a patch's
    full entries are parsed only when asked for. For index bytes this client has validated
    before, rows and per-patch JSON come from a content-addressed cache (``cache/index-view/
    <sha256 of the index bytes>.json``), so a 10,000-version index is searched without parsing
    or re-validating all of it.
    """

    def __init__(self, data: dict[str, Any], *, blobs: dict[str, str] | None = None,
                 rows: list[list[Any]] | None = None) -> None:
        self.schema_version: int = data["schema_version"]
        self.index_version: int = data["index_version"]
        self.updated: str = data["updated"]
        self.expires: str | None = data["expires"]
        self._parsed: dict[str, dict[str, Any]] = dict(data.get("patches") or {})
        self._blobs = blobs  # name -> that patch's JSON text, parsed on demand
        self._rows = rows

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> "Index":
        """The index of a registry nothing was published to (version 0, never written)."""
        return cls({"schema_version": SCHEMA_VERSION, "index_version": 0, "updated": now_iso(), "expires": None, "patches": {}})

    @classmethod
    def from_bytes(cls, raw: bytes, *, source: str) -> "Index":
        """Parse and schema-check index bytes (identical bytes validated before come from the view cache)."""
        digest = hashlib.sha256(raw).hexdigest()
        cached = _load_view(digest)
        if cached is not None:
            return cached
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SchemaError(f"{source} is not valid JSON ({exc})", hint="the registry index is corrupt; ask its owner to republish") from None
        if isinstance(data, dict) and isinstance(data.get("schema_version"), int) and data["schema_version"] > SCHEMA_VERSION:
            raise SchemaError(f"{source} has schema_version {data['schema_version']}, newer than this llmpatch understands ({SCHEMA_VERSION})",
                              hint="upgrade llmpatch (pip install -U llmpatch)")
        schemas.validate(data, "index", what=source, hint="the registry index is malformed; ask its owner to republish")
        idx = cls(data)
        idx._save_view(digest)
        return idx

    def _full(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "index_version": self.index_version, "updated": self.updated,
                "expires": self.expires, "patches": {n: self._patch(n) for n in self.names()}}

    def to_bytes(self) -> bytes:
        """Canonical bytes, validated before they are written anywhere."""
        data = self._full()
        schemas.validate(data, "index", what=f"registry index version {self.index_version}")
        raw = (json.dumps(data, indent=1, sort_keys=True) + "\n").encode("utf-8")
        self._save_view(hashlib.sha256(raw).hexdigest())  # just validated: readers of these bytes need not redo it
        return raw

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._full()))

    def next(self, *, expires: str | None) -> "Index":
        """A copy with the next index version, to be modified and written."""
        data = self.to_dict()
        data["index_version"] = self.index_version + 1
        data["updated"] = now_iso()
        data["expires"] = expires
        return Index(data)

    def put(self, entry: IndexEntry) -> None:
        """Add or replace one version (used only on a copy from :meth:`next`)."""
        patch = self._patch(entry.name)
        self._parsed[entry.name] = patch  # a new name starts with an empty version table
        patch["versions"][entry.version] = entry.to_dict()
        self._rows = None

    # -- the view cache -------------------------------------------------------------------------

    def _all_rows(self) -> list[list[Any]]:
        """[name, version, summary, domains, base_fingerprint, yanked], by name then newest version."""
        if self._rows is None:
            rows = []
            for name in self.names():
                vs = self._patch(name)["versions"]
                for v in sorted(vs, key=version_key, reverse=True):
                    d = vs[v]
                    rows.append([name, v, d["summary"], d["domains"], d["base_fingerprint"], d["yanked"]])
            self._rows = rows
        return self._rows

    def _save_view(self, digest: str) -> None:
        view = {"view_version": _VIEW_VERSION, "digest": digest,
                "header": {"schema_version": self.schema_version, "index_version": self.index_version,
                           "updated": self.updated, "expires": self.expires},
                "rows": self._all_rows(),
                "patches": {n: json.dumps(self._patch(n), separators=(",", ":"), sort_keys=True) for n in self.names()}}
        target = _view_path(digest)
        try:  # an optimisation only: failing to cache must not fail the read
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(view, f, separators=(",", ":"))
            os.replace(tmp, target)
        except OSError:
            pass

    # -- queries ------------------------------------------------------------------------------

    def _patch(self, name: str) -> dict[str, Any]:
        if name not in self._parsed:
            if self._blobs is None or name not in self._blobs:
                return {"versions": {}}
            self._parsed[name] = json.loads(self._blobs[name])
        return self._parsed[name]

    def names(self) -> list[str]:
        """Every patch name, sorted."""
        return sorted(set(self._parsed) | set(self._blobs or ()))

    def has(self, name: str, version: str) -> bool:
        return version in self._patch(name)["versions"]

    def versions(self, name: str) -> list[IndexEntry]:
        """Every version of ``name`` (yanked included), newest first; [] when unknown."""
        vs = self._patch(name)["versions"]
        return [IndexEntry.from_dict(name, v, vs[v]) for v in sorted(vs, key=version_key, reverse=True)]

    def get(self, name: str, version: str) -> IndexEntry:
        """One version, or NotFoundError naming what exists."""
        vs = self._patch(name)["versions"]
        if version in vs:
            return IndexEntry.from_dict(name, version, vs[version])
        if not vs:
            close = [n for n in self.names() if name in n or n in name][:5]
            raise NotFoundError(f"no patch named {name!r} in this registry" + (f" (similar: {', '.join(close)})" if close else ""),
                                hint="find patches with `llmpatch search`")
        known = ", ".join(sorted(vs, key=version_key, reverse=True)[:10])
        raise NotFoundError(f"{name} has no version {version!r} in this registry (versions: {known})",
                            hint=f"see them all with `llmpatch show {name}`")

    def search(self, query: str = "", *, domain: str | None = None, base_fingerprint: str | None = None,
               include_yanked: bool = False) -> list[IndexEntry]:
        """Versions whose name, summary or domains contain every word of ``query`` (case-insensitive)."""
        words = query.lower().split()
        out: list[IndexEntry] = []
        for name, version, summary, domains, fp, yanked in self._all_rows():
            if yanked and not include_yanked:
                continue
            if domain is not None and domain not in domains:
                continue
            if base_fingerprint is not None and fp != base_fingerprint:
                continue
            if words:
                hay = f"{name} {summary} {' '.join(domains)}".lower()
                if not all(w in hay for w in words):
                    continue
            out.append(IndexEntry.from_dict(name, version, self._patch(name)["versions"][version]))
        return out

    def entries(self) -> Iterable[IndexEntry]:
        """Every version of every patch."""
        for name in self.names():
            yield from self.versions(name)

    def __len__(self) -> int:
        return len(self._all_rows())


def _load_view(digest: str) -> Index | None:
    """The cached view of index bytes with this sha256, when this client validated them before."""
    p = _view_path(digest)
    try:
        view = json.loads(p.read_bytes())
        if view.get("view_version") != _VIEW_VERSION or view.get("digest") != digest:
            return None
        return Index({**view["header"], "patches": {}}, blobs=view["patches"], rows=view["rows"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing or unreadable cache: parse and validate the index itself
