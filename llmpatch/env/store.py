"""The content-addressed patch store: ``.llmpatch/store/<sha256 of llmpatch.json>/``.

A patch enters the store only whole and verified: it is fetched into a temp directory inside
the store, its manifest digest and every file's sha256 are checked (``read_patch``), and only
then is the directory renamed to its content address. A killed process leaves at most a
``.tmp-*`` directory, which recovery deletes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from llmpatch.artifact import Patch, read_patch, refuse_pickles, verify_files
from llmpatch import atomic
from llmpatch.errors import IntegrityError
from llmpatch.manifest import MANIFEST_NAME, Manifest

TMP_PREFIX = ".tmp-"


def manifest_digest(patch_dir: Path) -> str:
    """Hex sha256 of a patch directory's ``llmpatch.json`` (its content address)."""
    return hashlib.sha256((Path(patch_dir) / MANIFEST_NAME).read_bytes()).hexdigest()


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1] if digest.startswith("sha256:") else digest


class Store:
    """Verified patch directories addressed by manifest sha256."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, manifest_sha256: str) -> Path:
        return self.root / _hex(manifest_sha256)

    def has(self, manifest_sha256: str) -> bool:
        return (self.path(manifest_sha256) / MANIFEST_NAME).is_file()

    def entries(self) -> list[str]:
        """Digests of every complete entry."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".") and p.is_dir())

    def add(self, manifest_sha256: str, fetch: Callable[[Path], Path], *, what: str, repair: bool = False) -> Path:
        """Fetch (into a temp dir), verify, and rename into place; return the store path.

        With ``repair`` an entry already present is replaced (after the new copy verified) unless it verifies.
        """
        final = self.path(manifest_sha256)
        if self.has(manifest_sha256) and (not repair or self.problem(manifest_sha256, what=what) is None):
            return final
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=self.root))
        try:
            got = Path(fetch(tmp / "patch"))
            atomic.point("store: fetched")
            actual = manifest_digest(got)
            if actual != _hex(manifest_sha256):
                raise IntegrityError(
                    f"{what}: the fetched llmpatch.json has sha256 {actual}, the index says {_hex(manifest_sha256)}",
                    hint="the registry copy was modified or the index is stale; do not use it, tell the vendor",
                )
            read_patch(got)  # every file's size and sha256, safetensors parse, shapes
            atomic.point("store: verified")
            if final.exists():  # damaged, or left by an interrupted gc or a manual copy: replace it
                self.remove(final.name)
            os.rename(got, final)
            atomic.point("store: renamed into place")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def verify(self, manifest_sha256: str, *, what: str) -> Patch:
        """Read and fully verify a stored patch (checks its content address too)."""
        return read_patch(self._addressed(manifest_sha256, what))

    def check(self, manifest_sha256: str, *, what: str) -> Manifest:
        """Verify a stored patch's bytes without loading its tensor: content address, no pickles, every file's sha256.

        As strong as :meth:`verify` for an entry of this store: it entered only after a full
        ``read_patch``, and these checks prove its bytes are still the ones that passed. Lets
        rollback and other stack changes run without importing torch.
        """
        p = self._addressed(manifest_sha256, what)
        refuse_pickles(p)
        m = Manifest.read(p / MANIFEST_NAME)
        verify_files(p, m)
        return m

    def _addressed(self, manifest_sha256: str, what: str) -> Path:
        p = self.path(manifest_sha256)
        if not self.has(manifest_sha256):
            raise IntegrityError(f"{what} is missing from the store ({p})",
                                 hint="run `llmpatch install --locked` (or `llmpatch sync`) to fetch it again")
        actual = manifest_digest(p)
        if actual != _hex(manifest_sha256):
            raise IntegrityError(f"{what}: {p}/llmpatch.json has sha256 {actual}, expected {_hex(manifest_sha256)} (modified)",
                                 hint="delete that directory and run `llmpatch sync` to fetch a good copy")
        return p

    def problem(self, manifest_sha256: str, *, what: str, full: bool = False) -> str | None:
        """Why a stored patch is missing or damaged, or None when it verifies (``full``: also read
        its tensor, as :meth:`verify` does; else every file's sha256, as :meth:`check`, no torch)."""
        from llmpatch.errors import LlmpatchError

        try:
            (self.verify if full else self.check)(manifest_sha256, what=what)
        except LlmpatchError as exc:
            return exc.message
        return None

    def clean_temp(self) -> int:
        """Delete leftovers of interrupted fetches; return how many."""
        if not self.root.is_dir():
            return 0
        n = 0
        for p in self.root.iterdir():
            if p.name.startswith(TMP_PREFIX) or p.name.startswith(".gc-"):
                shutil.rmtree(p, ignore_errors=True)
                n += 1
        return n

    def remove(self, digest: str) -> None:
        """Delete one entry: renamed aside first, so a kill never leaves a half-deleted entry in place."""
        src = self.path(digest)
        aside = self.root / f".gc-{src.name}"
        os.rename(src, aside)
        atomic.point("store: entry moved aside")
        shutil.rmtree(aside)
