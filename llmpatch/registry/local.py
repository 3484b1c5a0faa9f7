"""A registry in a local directory (or ``file://`` URL): the embedded default.

Layout::

    registry/
      config.json                 optional policy (require_signatures, expires_days)
      index.json                  every patch and version (registry_schema/index.schema.json)
      index.sig.json              detached signature over index.json's bytes (when signed)
      patches/<name>/<version>/   the files of one version, immutable once published
      .lock                       writers hold it; readers never wait

Writers take a file lock, copy the version into place (temp dir + rename), then replace the
index (temp file + ``os.replace``). Two publishers therefore serialise and neither loses the
other's version; a reader always sees a complete old or new index.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from filelock import FileLock, Timeout

from llmpatch import atomic
from llmpatch.errors import (
    AlreadyPublishedError,
    IntegrityError,
    LockTimeoutError,
    NotFoundError,
    RegistryError,
    SignatureError,
)
from llmpatch.registry.base import RegistryBase, RegistryConfig, replacement_entry
from llmpatch.registry.index import (
    CONFIG_FILE,
    INDEX_FILE,
    INDEX_SIG_FILE,
    Index,
    IndexEntry,
)
from llmpatch.registry.cache import raw_digest
from llmpatch.signing import SigningKey
from llmpatch.util import sha256_file

LOCK_TIMEOUT_S = 120.0


def path_from_url(url: str) -> Path:
    """``file:///x`` or ``/x`` -> Path."""
    if url.startswith("file://"):
        return Path(unquote(urlparse(url).path))
    return Path(url).expanduser()


class LocalRegistry(RegistryBase):
    """A directory registry."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.root = path_from_url(url)

    def __repr__(self) -> str:
        return f"LocalRegistry({self.url!r})"

    # -- storage ----------------------------------------------------------------------------

    def config(self) -> RegistryConfig:
        p = self.root / CONFIG_FILE
        return RegistryConfig.from_bytes(p.read_bytes() if p.exists() else None, source=str(p))

    def init(self, config: RegistryConfig) -> None:
        """Create the registry directory and write its policy."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            atomic.write_bytes(self.root / CONFIG_FILE, config.to_bytes())

    def _check_exists(self) -> None:
        """A registry that is read must exist: a mistyped location is an error, not an empty registry."""
        if not self.root.exists():
            raise NotFoundError(f"registry {self.url} does not exist",
                                hint="check the --registry location, or create it with `llmpatch registry init DIR` "
                                     "(or by publishing to it)")
        if not self.root.is_dir():
            raise RegistryError(f"registry {self.url} is not a directory",
                                hint="a local registry is a directory holding index.json and patches/")

    def _read_index_raw(self) -> tuple[bytes | None, bytes | None]:
        self._check_exists()
        ip, sp = self.root / INDEX_FILE, self.root / INDEX_SIG_FILE
        raw = sig = None
        # index.json and index.sig.json are replaced one after the other; a reader racing a
        # writer can see a new index with the old signature. Re-read until they agree.
        for _ in range(50):
            raw = ip.read_bytes() if ip.exists() else None
            sig = sp.read_bytes() if sp.exists() else None
            if raw is None or sig is None or _sig_matches(raw, sig):
                return raw, sig
            time.sleep(0.02)
        return raw, sig

    def _lock(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".lock"), timeout=LOCK_TIMEOUT_S)

    def _locked(self):
        lock = self._lock()
        try:
            lock.acquire()
        except Timeout:
            raise LockTimeoutError(f"another publisher has held the lock of registry {self.url} for over {LOCK_TIMEOUT_S:.0f} s",
                                   hint=f"if no llmpatch process is running, delete {self.root / '.lock'}") from None
        return lock

    def _write_index(self, idx: Index, key: SigningKey | None) -> None:
        raw = idx.to_bytes()
        sig = self._sign_index(raw, key)
        if sig is not None:
            atomic.write_bytes(self.root / INDEX_SIG_FILE, sig)
            atomic.write_bytes(self.root / INDEX_FILE, raw)
        else:
            atomic.write_bytes(self.root / INDEX_FILE, raw)
            (self.root / INDEX_SIG_FILE).unlink(missing_ok=True)

    def _check_signer(self, key: SigningKey | None, config: RegistryConfig, what: str) -> None:
        if key is None and (config.require_signatures or (self.root / INDEX_SIG_FILE).exists()):
            raise SignatureError(
                f"registry {self.url} has a signed index; {what} without a signing key would leave it unsigned",
                hint="pass --key NAME (a key created with `llmpatch key generate`)",
            )

    # -- operations -----------------------------------------------------------------------

    def publish(self, patch_dir: Path, *, key: SigningKey | None = None) -> IndexEntry:
        """Verify, copy and index one patch version; refuses an existing version."""

        config = self.config()
        prepared = self._prepare(Path(patch_dir), key, config)
        m = prepared.manifest
        self._check_signer(key, config, f"publishing {m.id}")
        lock = self._locked()
        try:
            idx = self.index()
            if idx.has(m.name, m.version):
                old = idx.get(m.name, m.version)
                raise AlreadyPublishedError(
                    f"{m.id} is already in registry {self.url} (published {old.published}); versions are immutable",
                    hint=f"bump the version in the recipe and rebuild, or yank it: `llmpatch yank {m.id}`",
                )
            rel = f"patches/{m.name}/{m.version}"
            target = self.root / rel
            new_parent = not target.parent.exists()
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{m.version}.tmp-", dir=target.parent))
            try:
                for f in prepared.files:
                    (tmp / f).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(prepared.path / f, tmp / f)
                    if sha256_file(tmp / f) != prepared.files[f]["sha256"]:  # changed since it was verified
                        raise IntegrityError(f"{m.id}: {f} changed while it was being published",
                                             hint="do not modify a patch directory during publish; try again")
                if target.exists():  # left by a publish that died before writing the index
                    shutil.rmtree(target)
                os.rename(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                if new_parent:  # a refused publish leaves no directory behind
                    shutil.rmtree(target.parent, ignore_errors=True)
                raise
            entry = prepared.entry({"path": rel})
            new = idx.next(expires=config.expiry())
            new.put(entry)
            self._write_index(new, key)
            return entry
        finally:
            lock.release()

    def fetch(self, name: str, version: str, dest: Path) -> Path:
        """Copy one version into ``dest`` (created) and verify it completely."""

        def download(entry: IndexEntry, out: Path) -> None:
            loc = entry.location.get("path")
            if loc is None:
                raise RegistryError(f"{entry.id}: index location {entry.location} is not a local path")
            src = self.root / loc
            for rel in entry.files:
                if not (src / rel).is_file():
                    continue  # reported by the verification that follows
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src / rel, out / rel)

        return self._fetch_verified(name, version, Path(dest), download)

    def yank(self, name: str, version: str, *, undo: bool = False, reason: str | None = None,
             key: SigningKey | None = None) -> None:
        """Mark a version yanked (or not); files stay, exact pins still install."""
        config = self.config()
        self._check_signer(key, config, f"{'un' if undo else ''}yanking {name}@{version}")
        lock = self._locked()
        try:
            idx = self.index()
            entry = idx.get(name, version)
            new = idx.next(expires=config.expiry())
            d = entry.to_dict()
            d.update(yanked=not undo, yank_reason=None if undo else reason)
            new.put(IndexEntry.from_dict(name, version, d))
            self._write_index(new, key)
        finally:
            lock.release()

    def resign(self, key: SigningKey, *, dry_run: bool = False) -> list[IndexEntry]:
        """Re-sign the index and every version with ``key`` (after a key rotation); return the versions re-signed.

        The current index and every version must be signed by one of the vendor's own keys.
        """
        lock = self._locked()
        try:
            raw, sig = self._read_index_raw()
            if raw is None:
                raise NotFoundError(f"registry {self.url} has no index yet: there is nothing to re-sign",
                                    hint="publish with --key NAME; new publishes are signed with that key")
            own = self._own_keys(key)
            idx = self._verify_index(raw, sig, keys=own)
            new = idx.next(expires=self.config().expiry())
            done = self._resign_entries(new, key, own)
            if not dry_run:
                self._write_index(new, key)
            return done
        finally:
            lock.release()

    def mark_replacement(self, name: str, version: str, *, undo: bool = False, key: SigningKey | None = None) -> None:
        """Mark a merged patch as the replacement of what it provides (or not); see :func:`replacement_entry`."""
        config = self.config()
        self._check_signer(key, config, f"{'un' if undo else ''}marking {name}@{version} as a replacement")
        lock = self._locked()
        try:
            idx = self.index()
            entry = replacement_entry(idx.get(name, version), undo=undo, registry=self.url)
            new = idx.next(expires=config.expiry())
            new.put(entry)
            self._write_index(new, key)
        finally:
            lock.release()


def _sig_matches(raw: bytes, sig: bytes) -> bool:
    try:
        return json.loads(sig).get("payload_sha256") == raw_digest(raw)
    except (json.JSONDecodeError, AttributeError):
        return True  # malformed: let signature verification report it
