"""What every registry backend shares: index verification, publish preparation, fetch verification.

A backend supplies storage (read the index bytes and signature, copy a version's files, commit a
new index); the checks that decide whether anything is trusted live here, once.
"""

from __future__ import annotations

import datetime as _dt
import math
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from llmpatch import schemas, signing
from llmpatch.errors import IntegrityError, LlmpatchError, RegistryError, SchemaError, SignatureError
from llmpatch.manifest import MANIFEST_NAME, Manifest
from llmpatch.registry.index import Index, IndexEntry
from llmpatch.signing import INDEX_PAYLOAD, PATCH_PAYLOAD, SigningKey, TrustStore
from llmpatch.util import iso, now_iso, sha256_file

CONFIG_SCHEMA_VERSION = 1


@runtime_checkable
class Registry(Protocol):
    """One interface for every backend (local directory, Hugging Face Hub)."""

    url: str

    def index(self) -> Index: ...

    def publish(self, patch_dir: Path, *, key: SigningKey | None = None) -> IndexEntry: ...

    def fetch(self, name: str, version: str, dest: Path) -> Path: ...

    def yank(self, name: str, version: str, *, undo: bool = False, reason: str | None = None) -> None: ...

    def resign(self, key: SigningKey, *, dry_run: bool = False) -> list[IndexEntry]: ...

    def mark_replacement(self, name: str, version: str, *, undo: bool = False, key: SigningKey | None = None) -> None: ...


@dataclass(frozen=True)
class RegistryConfig:
    """A registry's declared policy (``config.json``)."""

    require_signatures: bool = False
    expires_days: float | None = None

    #: Longest index lifetime accepted (ten years): beyond it an expiry protects nothing.
    MAX_EXPIRES_DAYS = 3650

    def __post_init__(self) -> None:
        d = self.expires_days
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d)
                              or not 0 < d <= self.MAX_EXPIRES_DAYS):
            raise RegistryError(f"expires_days is {d!r}, expected a number of days in (0, {self.MAX_EXPIRES_DAYS}]",
                                hint="e.g. --expires-days 30; leave it out for indexes that never expire")

    @classmethod
    def from_bytes(cls, raw: bytes | None, *, source: str) -> "RegistryConfig":
        if raw is None:
            return cls()
        data = schemas.loads(raw, what=source)
        schemas.validate(data, "registry_config", what=source)
        return cls(bool(data.get("require_signatures", False)), data.get("expires_days"))

    def to_bytes(self) -> bytes:
        data = {"schema_version": CONFIG_SCHEMA_VERSION, "require_signatures": self.require_signatures,
                "expires_days": self.expires_days}
        schemas.validate(data, "registry_config", what="registry config")
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    def expiry(self) -> str | None:
        """Expiry timestamp for an index written now."""
        if not self.expires_days:
            return None
        return iso(_dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(days=self.expires_days))


@dataclass(frozen=True)
class Prepared:
    """A verified patch directory ready to upload."""

    path: Path
    manifest: Manifest
    files: dict[str, dict]
    manifest_sha256: str
    signature: dict | None

    def entry(self, location: dict) -> IndexEntry:
        m = self.manifest
        return IndexEntry(
            name=m.name, version=m.version, summary=m.summary, domains=tuple(m.domains),
            base_fingerprint=m.base.fingerprint, base_id=m.base.id, num_virtual_tokens=m.num_virtual_tokens,
            requires=dict(m.requires), conflicts=dict(m.conflicts), files=self.files,
            manifest_sha256=self.manifest_sha256, yanked=False, yank_reason=None, published=now_iso(),
            location=location, signature=self.signature, evals=tuple(e.to_dict() for e in m.evals),
            provides=tuple(p.to_dict() for p in m.provides),
            stacks=tuple(st.to_dict() for st in m.stacks),
        )


def replacement_entry(entry: IndexEntry, *, undo: bool, registry: str) -> IndexEntry:
    """``entry`` with its ``replaces`` mark set (or cleared); only a merged patch can be a replacement.

    The mark is the registry owner's decision, kept in the signed index (not in the vendor's
    manifest): with it, ``install tox-fix@1.1 harm-fix@1.2`` picks a merged patch that provides
    both without ``--prefer-merged``.
    """
    if not undo and not entry.provides:
        raise RegistryError(
            f"{entry.id} in registry {registry} provides no other patch, so it cannot replace any",
            hint="only a merged patch (made by `llmpatch merge`, with `provides` in its manifest) can be a replacement",
        )
    d = entry.to_dict()
    d.pop("replaces", None)
    if not undo:
        d["replaces"] = True
    return IndexEntry.from_dict(entry.name, entry.version, d)


class RegistryBase:
    """Shared checks; subclasses implement storage."""

    url: str

    def __init__(self, url: str) -> None:
        self.trust = TrustStore(url)
        self.url = self.trust.url  # canonical: one spelling per registry in messages, locks and trust

    # -- storage hooks --------------------------------------------------------------------

    def _read_index_raw(self) -> tuple[bytes | None, bytes | None]:
        """The index bytes and its detached signature bytes (None when absent)."""
        raise NotImplementedError

    def config(self) -> RegistryConfig:
        raise NotImplementedError

    # -- index --------------------------------------------------------------------------------

    def index(self) -> Index:
        """The registry's index: schema-valid, signature-checked (when keys are trusted), fresh."""
        raw, sig = self._read_index_raw()
        return self._verify_index(raw, sig)

    def _verify_index(self, raw: bytes | None, sig: bytes | None, *,
                      keys: dict[str, signing.PublicKey] | None = None) -> Index:
        """Parse, check the signature and freshness; ``keys`` replaces the trusted keys (for resign)."""
        if raw is None:
            idx = Index.empty()
        else:
            idx = Index.from_bytes(raw, source=f"index of registry {self.url}")
            own = keys is not None
            if keys is None:
                keys = self.trust.verification_keys(f"the index of registry {self.url}")
            if keys is not None:
                if sig is None:
                    raise SignatureError(
                        f"the index of registry {self.url} (version {idx.index_version}) is unsigned, "
                        "but you trust signing keys for this registry",
                        hint="the registry owner must publish with a signing key; or stop trusting keys for it "
                             "(`llmpatch key untrust`) if it is not meant to be signed",
                    )
                envelope = schemas.loads(sig, what=f"the index signature of registry {self.url}", error=SignatureError)
                signing.verify(envelope, INDEX_PAYLOAD, raw, keys, what=f"the index of registry {self.url}",
                               revoked=None if own else self.trust.revoked())
        self.trust.check_fresh(idx.index_version, idx.expires)
        self.trust.record(idx.index_version)
        return idx

    def _sign_index(self, raw: bytes, key: SigningKey | None) -> bytes | None:
        if key is None:
            return None
        return (json.dumps(key.sign(INDEX_PAYLOAD, raw), indent=2, sort_keys=True) + "\n").encode()

    # -- resign (after a key rotation) ---------------------------------------------------------

    @staticmethod
    def _own_keys(key: SigningKey) -> dict[str, signing.PublicKey]:
        """The keys ``resign`` accepts existing signatures from: the vendor's own keys (revoked ones too)."""
        own = {k.keyid: k for k in signing.list_keys()}
        own[key.keyid] = key.public
        return own

    def _resign_entries(self, new: Index, key: SigningKey, own: dict[str, signing.PublicKey]) -> list[IndexEntry]:
        """Re-sign every version of ``new`` with ``key``; each must carry a valid signature by one of ``own``.

        Return the versions re-signed (those already signed by ``key`` are left as they are).
        """
        entries = list(new.entries())
        bad, todo = [], []
        for e in entries:
            statement = signing.patch_statement(e.name, e.version, e.manifest_sha256, e.files)
            if e.signature is None:
                bad.append(f"{e.id} (unsigned)")
                continue
            try:
                signing.verify(e.signature, PATCH_PAYLOAD, statement, own, what=e.id)
            except SignatureError as exc:
                bad.append(f"{e.id} ({exc.message})")
                continue
            if e.signature["keyid"] != key.keyid:
                todo.append((e, statement))
        if bad:
            raise SignatureError(
                f"registry {self.url}: {len(bad)} version(s) are not signed by one of your keys, so resign will "
                f"not vouch for them: {'; '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}",
                hint="check them, then yank them (`llmpatch yank NAME@VERSION`) or, if they are yours, add the key that "
                     "signed them to your keys directory; nothing was changed",
            )
        out = []
        for e, statement in todo:
            d = e.to_dict()
            d["signature"] = key.sign(PATCH_PAYLOAD, statement)
            fresh = IndexEntry.from_dict(e.name, e.version, d)
            new.put(fresh)
            out.append(fresh)
        return out

    # -- publish ------------------------------------------------------------------------------

    def _prepare(self, patch_dir: Path, key: SigningKey | None, config: RegistryConfig) -> Prepared:
        """Verify a patch directory completely and sign its statement."""
        from llmpatch.artifact import read_patch  # imports torch: only when publishing

        patch = read_patch(patch_dir)  # schema, no pickles, every payload's size and sha256, tensor shape
        m = patch.manifest
        if config.require_signatures and key is None:
            raise SignatureError(
                f"registry {self.url} requires signed patches and {m.id} is being published without a key",
                hint="create a key with `llmpatch key generate` and publish with `--key NAME`",
            )
        manifest_path = Path(patch_dir) / MANIFEST_NAME
        files = {rel: {"sha256": e.sha256, "size": e.size} for rel, e in m.files.items()}
        manifest_sha = sha256_file(manifest_path)
        files[MANIFEST_NAME] = {"sha256": manifest_sha, "size": manifest_path.stat().st_size}
        signature = None
        if key is not None:
            signature = key.sign(PATCH_PAYLOAD, signing.patch_statement(m.name, m.version, manifest_sha, files))
        return Prepared(Path(patch_dir), m, files, manifest_sha, signature)

    # -- fetch --------------------------------------------------------------------------------

    def _verify_fetched(self, dest: Path, entry: IndexEntry, name: str, version: str) -> None:
        """Check downloaded files against the index entry, the manifest and the signature."""
        from llmpatch.artifact import verify_files  # imports torch: only when fetching

        what = f"{name}@{version} from registry {self.url}"
        if entry.name != name or entry.version != version:
            raise IntegrityError(f"asked for {name}@{version}, the index entry is {entry.id}")
        actual: dict[str, dict] = {}
        for rel, want in sorted(entry.files.items()):
            f = dest / rel
            if not f.is_file():
                raise IntegrityError(f"{what}: file {rel} listed in the index was not downloaded",
                                     hint="the registry copy is incomplete; try again or tell the registry owner")
            actual[rel] = {"sha256": sha256_file(f), "size": f.stat().st_size}
            if actual[rel] != {"sha256": want["sha256"], "size": int(want["size"])}:
                raise IntegrityError(
                    f"{what}: {rel} has sha256 {actual[rel]['sha256']} ({actual[rel]['size']} bytes), the index says "
                    f"{want['sha256']} ({want['size']} bytes)",
                    hint="the registry copy was modified or corrupted; it was not installed. Tell the registry owner",
                )
        if actual[MANIFEST_NAME]["sha256"] != entry.manifest_sha256:
            raise IntegrityError(f"{what}: llmpatch.json has sha256 {actual[MANIFEST_NAME]['sha256']}, the index says {entry.manifest_sha256}")
        manifest = Manifest.read(dest / MANIFEST_NAME)
        if (manifest.name, manifest.version) != (name, version):
            raise IntegrityError(
                f"{what}: the downloaded manifest is for {manifest.id}, not {name}@{version} (a patch served under another label)",
                hint="the registry is serving the wrong files for this version; it was not installed",
            )
        listed = {rel: {"sha256": e.sha256, "size": e.size} for rel, e in manifest.files.items()}
        listed[MANIFEST_NAME] = actual[MANIFEST_NAME]
        if listed != actual:
            raise IntegrityError(f"{what}: the index lists files {sorted(actual)}, the manifest lists {sorted(listed)} with other digests")
        verify_files(dest, manifest)
        keys = self.trust.verification_keys(what)
        if keys is not None:
            if entry.signature is None:
                raise SignatureError(f"{what} is unsigned, but you trust signing keys for this registry",
                                     hint="ask the vendor to publish a signed release")
            # Rebuilt from what was asked for and what was downloaded, not from what the index claims.
            statement = signing.patch_statement(name, version, actual[MANIFEST_NAME]["sha256"], actual)
            signing.verify(entry.signature, PATCH_PAYLOAD, statement, keys, what=what, revoked=self.trust.revoked())

    def _fresh_dest(self, dest: Path) -> Path:
        dest = Path(dest)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise LlmpatchError(f"fetch destination {dest} already exists and is not empty",
                                hint="give a new directory; fetch never overwrites")
        dest.mkdir(parents=True, exist_ok=True)
        return dest

    def _fetch_verified(self, name: str, version: str, dest: Path, download: Any) -> Path:
        """Run ``download(entry, dest)`` then verify; remove ``dest`` on any failure."""
        entry = self.index().get(name, version)
        dest = self._fresh_dest(dest)
        try:
            download(entry, dest)
            self._verify_fetched(dest, entry, name, version)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        return dest
