"""A registry on the Hugging Face Hub: ``hf://ORG/INDEX-REPO``.

- One model repo per patch, ``ORG/<patch name>``, holding the patch directory as is (peft adapter,
  ``llmpatch.json``, and ``README.md``: a model card with base_model, tags, domains and evals).
  Each version is a commit tagged ``v<version>``; the index records the commit id, because tags
  can move and commit ids cannot.
- The index (``index.json`` + ``index.sig.json`` + optional ``config.json``) lives in the index
  repo and is only ever changed by a commit whose ``parent_commit`` is the head it was computed
  from: a publisher that lost a race gets HTTP 412, re-reads and retries, never clobbers.
- The patch files are committed and tagged *before* the index names them, so a failure part-way
  leaves an index that does not point at anything half-uploaded.

Authentication is ``huggingface_hub``'s own (``HF_TOKEN``, ``hf auth login``). The endpoint is
``huggingface_hub``'s (``HF_ENDPOINT``) unless the URL names one: ``hf://org/index?endpoint=http://host:port``.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlparse

from llmpatch import paths
from llmpatch.errors import (
    AlreadyPublishedError, IntegrityError, LlmpatchError, RegistryError, RegistryHTTPError, SignatureError,
)
from llmpatch.registry.base import RegistryBase, RegistryConfig, replacement_entry
from llmpatch.registry.index import CONFIG_FILE, INDEX_FILE, INDEX_SIG_FILE, Index, IndexEntry
from llmpatch.signing import SigningKey

#: How many times a publisher re-reads and retries after losing an index race (HTTP 412).
MAX_INDEX_RETRIES = 8


def parse_hub_url(url: str) -> tuple[str, str | None]:
    """``hf://org/repo[?endpoint=...]`` -> (repo_id, endpoint)."""
    parsed = urlparse(url)
    repo_id = f"{parsed.netloc}{parsed.path}".strip("/")
    if parsed.scheme != "hf" or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise RegistryError(f"invalid Hub registry URL {url!r}: expected hf://ORG/INDEX-REPO",
                            hint="e.g. hf://acme/llmpatch-index")
    endpoint = parse_qs(parsed.query).get("endpoint", [None])[0]
    return repo_id, endpoint


class HubRegistry(RegistryBase):
    """A registry stored in Hugging Face Hub repos."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        from huggingface_hub import HfApi

        self.index_repo, self.endpoint = parse_hub_url(url)
        self.namespace = self.index_repo.split("/")[0]
        self.api = HfApi(endpoint=self.endpoint)  # token: HF_TOKEN or `hf auth login`, read by the client

    def __repr__(self) -> str:
        return f"HubRegistry({self.url!r})"

    def patch_repo(self, name: str) -> str:
        """The Hub repo holding every version of one patch."""
        return f"{self.namespace}/{name}"

    # -- errors ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _hub(self, what: str) -> Iterator[None]:
        """Turn huggingface_hub and network failures into RegistryError with a hint."""
        import httpx2 as httpx  # the HTTP client huggingface_hub uses
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

        try:
            yield
        except LlmpatchError:
            raise
        except OfflineModeIsEnabled:
            raise RegistryError(f"{what}: the Hugging Face Hub client is in offline mode (HF_HUB_OFFLINE=1)",
                                hint="unset HF_HUB_OFFLINE to use an hf:// registry") from None
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status == 401:
                raise RegistryError(f"{what}: the Hub at {self.api.endpoint} rejected the credentials (HTTP 401)",
                                    hint="set HF_TOKEN or run `hf auth login` with a token that has write access") from None
            if status == 403:
                raise RegistryError(f"{what}: no write access to {self.namespace} on {self.api.endpoint} (HTTP 403)",
                                    hint=f"use a token of a member of {self.namespace!r} with write access") from None
            raise RegistryHTTPError(f"{what}: the Hub answered HTTP {status}: {exc}", status=status) from None
        except (httpx.HTTPError, OSError) as exc:
            raise RegistryError(f"{what}: could not reach the Hub at {self.api.endpoint} ({type(exc).__name__}: {exc})",
                                hint="check the network and the endpoint (HF_ENDPOINT); nothing was recorded in the index") from None

    # -- reading ----------------------------------------------------------------------------

    def _download(self, repo_id: str, filename: str, revision: str) -> Path:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=str(paths.cache_dir("hub")),
                                    endpoint=self.endpoint))

    def _head(self) -> tuple[str | None, dict[str, bytes]]:
        """The index repo's head commit id and its registry files (None when the repo does not exist)."""
        from huggingface_hub.errors import RepositoryNotFoundError

        with self._hub(f"reading the index of {self.url}"):
            try:
                info = self.api.model_info(self.index_repo)
            except RepositoryNotFoundError:
                return None, {}
            present = {s.rfilename for s in info.siblings or []}
            files = {f: self._download(self.index_repo, f, info.sha).read_bytes()
                     for f in (INDEX_FILE, INDEX_SIG_FILE, CONFIG_FILE) if f in present}
            return info.sha, files

    def _read_index_raw(self) -> tuple[bytes | None, bytes | None]:
        _, files = self._head()
        return files.get(INDEX_FILE), files.get(INDEX_SIG_FILE)

    def config(self) -> RegistryConfig:
        _, files = self._head()
        return RegistryConfig.from_bytes(files.get(CONFIG_FILE), source=f"{self.url} {CONFIG_FILE}")

    def _state(self, *, keys: dict | None = None) -> tuple[str | None, dict[str, bytes], Index, RegistryConfig]:
        head, files = self._head()
        idx = self._verify_index(files.get(INDEX_FILE), files.get(INDEX_SIG_FILE), keys=keys)
        config = RegistryConfig.from_bytes(files.get(CONFIG_FILE), source=f"{self.url} {CONFIG_FILE}")
        return head, files, idx, config

    # -- writing ----------------------------------------------------------------------------

    def init(self, config: RegistryConfig) -> None:
        """Create the index repo and commit its policy."""
        from huggingface_hub import CommitOperationAdd

        with self._hub(f"creating registry {self.url}"):
            self.api.create_repo(self.index_repo, exist_ok=True)
            self.api.create_commit(self.index_repo, [CommitOperationAdd(CONFIG_FILE, config.to_bytes())],
                                   commit_message="llmpatch: registry config")

    def _commit_index(self, change: Any, key: SigningKey | None, message: str, *, keys: dict | None = None,
                      dry_run: bool = False) -> Any:
        """Apply ``change(index) -> result`` to a fresh copy of the index and commit it with optimistic concurrency.

        ``keys``: verify the current index with these instead of the trusted keys (resign);
        ``dry_run``: return ``change``'s result without committing.
        """
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        for attempt in range(MAX_INDEX_RETRIES):
            head, files, idx, config = self._state(keys=keys)
            if key is None and (config.require_signatures or INDEX_SIG_FILE in files):
                raise SignatureError(f"registry {self.url} has a signed index; {message} without a signing key would leave it unsigned",
                                     hint="pass --key NAME (a key created with `llmpatch key generate`)")
            new = idx.next(expires=config.expiry())
            result = change(new)
            if dry_run:
                return result
            raw = new.to_bytes()
            sig = self._sign_index(raw, key)
            ops: list[Any] = [CommitOperationAdd(INDEX_FILE, raw)]
            if sig is not None:
                ops.append(CommitOperationAdd(INDEX_SIG_FILE, sig))
            elif INDEX_SIG_FILE in files:
                ops.append(CommitOperationDelete(INDEX_SIG_FILE))
            try:
                with self._hub(f"{message}: updating the index"):
                    if head is None:
                        self.api.create_repo(self.index_repo, exist_ok=True)
                        head = self.api.model_info(self.index_repo).sha
                    self.api.create_commit(self.index_repo, ops, commit_message=f"llmpatch: {message} (index {new.index_version})",
                                           parent_commit=head)
                return result
            except RegistryError as exc:
                if isinstance(exc, RegistryHTTPError) and exc.status in (409, 412):
                    time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # another publisher won: re-read, retry
                    continue
                raise
        raise RegistryError(f"{message}: the index of {self.url} kept changing under {MAX_INDEX_RETRIES} attempts",
                            hint="many publishers are writing at once; try again")

    def publish(self, patch_dir: Path, *, key: SigningKey | None = None) -> IndexEntry:
        """Upload and tag the patch repo, then add it to the index (optimistic concurrency)."""
        from huggingface_hub import CommitOperationAdd
        from huggingface_hub.errors import HfHubHTTPError

        head, files, idx, config = self._state()
        prepared = self._prepare(Path(patch_dir), key, config)
        m = prepared.manifest
        if key is None and (config.require_signatures or INDEX_SIG_FILE in files):
            raise SignatureError(f"registry {self.url} has a signed index; publishing {m.id} without a signing key would leave it unsigned",
                                 hint="pass --key NAME (a key created with `llmpatch key generate`)")
        if idx.has(m.name, m.version):
            raise AlreadyPublishedError(f"{m.id} is already in registry {self.url}; versions are immutable",
                                        hint=f"bump the version and rebuild, or yank it: `llmpatch yank {m.id}`")
        repo_id, tag = self.patch_repo(m.name), f"v{m.version}"
        if repo_id == self.index_repo:
            raise RegistryError(f"patch name {m.name!r} is the name of the index repo of {self.url}", hint="rename the patch")
        ops = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(prepared.path / rel)) for rel in sorted(prepared.files)]
        for op in ops:  # the bytes uploaded are the bytes verified (nothing changed in between)
            if op.upload_info.sha256.hex() != prepared.files[op.path_in_repo]["sha256"]:
                raise IntegrityError(f"{m.id}: {op.path_in_repo} changed while it was being published")
        with self._hub(f"publishing {m.id} to {self.url}"):
            self.api.create_repo(repo_id, exist_ok=True)
            commit = self.api.create_commit(repo_id, ops, commit_message=f"{m.name} {m.version}")
            try:
                self.api.create_tag(repo_id, tag=tag, revision=commit.oid, tag_message=f"{m.name} {m.version}")
            except HfHubHTTPError as exc:
                if exc.response is None or exc.response.status_code != 409:
                    raise
                # Left by an earlier attempt that failed before the index named it: the index is
                # the truth and does not list this version, so the tag may move.
                self.api.delete_tag(repo_id, tag=tag)
                self.api.create_tag(repo_id, tag=tag, revision=commit.oid, tag_message=f"{m.name} {m.version}")
        entry = prepared.entry({"repo_id": repo_id, "revision": commit.oid, "tag": tag})

        def add(new: Index) -> IndexEntry:
            if new.has(m.name, m.version):
                raise AlreadyPublishedError(f"{m.id} was published to {self.url} by someone else a moment ago",
                                            hint="versions are immutable; bump the version")
            new.put(entry)
            return entry

        return self._commit_index(add, key, f"publish {m.id}")

    def yank(self, name: str, version: str, *, undo: bool = False, reason: str | None = None,
             key: SigningKey | None = None) -> None:
        """Mark a version yanked (or not) in the index; the patch repo is untouched."""

        def change(new: Index) -> None:
            d = new.get(name, version).to_dict()
            d.update(yanked=not undo, yank_reason=None if undo else reason)
            new.put(IndexEntry.from_dict(name, version, d))

        self._commit_index(change, key, f"{'unyank' if undo else 'yank'} {name}@{version}")

    def resign(self, key: SigningKey, *, dry_run: bool = False) -> list[IndexEntry]:
        """Re-sign the index and every version with ``key`` (after a key rotation); return the versions re-signed."""
        own = self._own_keys(key)
        return self._commit_index(lambda new: self._resign_entries(new, key, own), key,
                                  f"re-sign with key {key.keyid[:16]}", keys=own, dry_run=dry_run)

    def mark_replacement(self, name: str, version: str, *, undo: bool = False, key: SigningKey | None = None) -> None:
        """Mark a merged patch as the replacement of what it provides (or not), in the index only."""

        def change(new: Index) -> None:
            new.put(replacement_entry(new.get(name, version), undo=undo, registry=self.url))

        self._commit_index(change, key, f"{'unmark' if undo else 'mark'} {name}@{version} as a replacement")

    def fetch(self, name: str, version: str, dest: Path) -> Path:
        """Download one version by its commit id into ``dest`` and verify it completely."""

        def download(entry: IndexEntry, out: Path) -> None:
            loc = entry.location
            if "repo_id" not in loc:
                raise RegistryError(f"{entry.id}: index location {loc} is not a Hub location")
            with self._hub(f"fetching {entry.id} from {self.url}"):
                for rel in sorted(entry.files):
                    src = self._download(loc["repo_id"], rel, loc["revision"])
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, out / rel)

        return self._fetch_verified(name, version, Path(dest), download)
