"""A project-local patch environment: ``.llmpatch/`` pinned to one base, with generations.

Layout::

    project/
      llmpatch.lock                 exact stack for reproduction (commit this file)
      .llmpatch/
        environment.json            the pinned base (spec, id, revision, fingerprint), registry
        generations/<N>.json        immutable states, N = 1, 2, ...; 1 is the empty stack from init
        current                     "N": the active generation, replaced atomically
        store/<sha256>/             verified patch directories, addressed by manifest sha256
        lock, lock.owner            the writer lock and who holds it

The active state is whatever ``current`` names. A change writes a new generation file, then
swaps ``current`` with ``os.replace``; a process killed at any moment leaves either the old
pointer (and maybe an unreferenced generation file or store entry, cleaned on the next run)
or the new one, each pointing at complete, verified content.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from llmpatch import paths
from llmpatch.compose import DEFAULT_MAX_VIRTUAL_TOKENS, check_stack, compose
from llmpatch import atomic
from llmpatch.env.locking import DEFAULT_TIMEOUT, EnvLock
from llmpatch.env.records import EnvConfig, Generation, Installed, LockFile, PinnedBase, read_json
from llmpatch.env.store import Store
from llmpatch.errors import EnvironmentStateError, LlmpatchError, NotFoundError
from llmpatch.manifest import BaseRef
from llmpatch.util import now_iso

CONFIG_NAME = "environment.json"
CURRENT_NAME = "current"
ACTIVATED_NAME = "activated"
GENERATIONS_DIR = "generations"
STORE_DIR = "store"
LOCKFILE_NAME = "llmpatch.lock"
INIT_HINT = "run `llmpatch init --base <spec>` in your project directory (or set $LLMPATCH_ENV)"


def find_env(start: Path | None = None) -> Path:
    """The environment directory: ``$LLMPATCH_ENV``, else the nearest ``.llmpatch/`` upward from ``start``."""
    if start is not None:
        p = Path(start).expanduser()
        for cand in (p, p / paths.ENV_DIRNAME):
            if (cand / CONFIG_NAME).is_file():
                return cand.resolve()
    explicit = paths.env_dir_override()
    if explicit and start is None:
        p = Path(explicit).expanduser()
        for cand in (p, p / paths.ENV_DIRNAME):
            if (cand / CONFIG_NAME).is_file():
                return cand.resolve()
        raise EnvironmentStateError(f"${paths.ENV_DIR_ENV} is {explicit!r}, which is not a llmpatch environment", hint=INIT_HINT)
    here = Path(start or Path.cwd()).expanduser().resolve()
    for d in (here, *here.parents):
        cand = d / paths.ENV_DIRNAME
        if (cand / CONFIG_NAME).is_file():
            return cand
    raise EnvironmentStateError(f"no llmpatch environment in {here} or any parent directory", hint=INIT_HINT)


def _stored_policy(policy: Path, project_dir: Path) -> str:
    """A policy file as environment.json records it: relative to the project when inside it (so it can move)."""
    pol, project = Path(policy).expanduser().absolute(), Path(project_dir).absolute()
    return str(pol.relative_to(project)) if pol.is_relative_to(project) else str(pol)


class Environment:
    """An open environment. Read methods need no lock; changes go through :meth:`transaction`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.store = Store(self.path / STORE_DIR)
        self.gen_dir = self.path / GENERATIONS_DIR
        self._config: EnvConfig | None = None

    # -- configuration --------------------------------------------------------------------

    @property
    def config(self) -> EnvConfig:
        if self._config is None:
            self._config = EnvConfig.from_dict(read_json(self.path / CONFIG_NAME, "environment file"),
                                               source=str(self.path / CONFIG_NAME))
        return self._config

    @property
    def base(self) -> PinnedBase:
        return self.config.base

    @property
    def base_ref(self) -> BaseRef:
        return self.config.base.ref

    @property
    def project_dir(self) -> Path:
        return self.path.parent

    @property
    def lockfile_path(self) -> Path:
        return self.project_dir / LOCKFILE_NAME

    def registry_url(self, override: str | None = None) -> str:
        """The registry to use: the override, the environment's, or the default."""
        return override or self.config.registry or paths.default_registry_url()

    @property
    def policy_path(self) -> Path | None:
        """The environment's verify policy file (``llmpatch policy set``), or None."""
        p = self.config.policy
        if p is None:
            return None
        path = Path(p).expanduser()
        return path if path.is_absolute() else self.project_dir / path

    def set_policy(self, policy: Path | None) -> str | None:
        """Record (or with None, forget) the environment's policy file; call with the lock held.

        A file inside the project is stored relative to it, so the project can move. Returns the stored form.
        """
        stored = _stored_policy(policy, self.project_dir) if policy is not None else None
        cfg = self.config
        new = EnvConfig(cfg.created, cfg.base, cfg.registry, cfg.max_virtual_tokens, stored)
        atomic.write_json(self.path / CONFIG_NAME, new.to_dict(), step="environment file")
        self._config = new
        return stored

    # -- generations ----------------------------------------------------------------------

    def current_number(self) -> int:
        f = self.path / CURRENT_NAME
        try:
            raw = f.read_bytes()[:64] if f.is_file() else b""
        except OSError as exc:
            raise EnvironmentStateError(f"{f} cannot be read ({exc.strerror})") from None
        text = raw.decode("ascii", errors="replace").strip()
        if not re.fullmatch(r"[1-9][0-9]{0,8}", text):  # ASCII digits only: "٣".isdigit() is True
            raise EnvironmentStateError(f"{f} is missing or garbled ({raw!r}), expected a generation number",
                                        hint="write the number of a generation shown by `llmpatch history` into it, "
                                             "or re-create the environment with `llmpatch init --force`")
        return int(text)

    def generation(self, number: int) -> Generation:
        f = self.gen_dir / f"{number}.json"
        if not f.is_file():
            raise NotFoundError(f"generation {number} does not exist in {self.path}",
                                hint="see `llmpatch history` for the generations you can roll back to")
        return Generation.from_dict(read_json(f, "generation file"), source=str(f))

    def numbers(self) -> list[int]:
        """Numbers of every generation file, including ones above ``current`` (never deleted but by gc)."""
        return sorted(int(p.stem) for p in self.gen_dir.glob("*.json") if re.fullmatch(r"[1-9][0-9]{0,8}", p.stem))

    def activated(self) -> set[int]:
        """Generations that were current at some point (``activated``: one number per line, append-only)."""
        f = self.path / ACTIVATED_NAME
        if not f.is_file():
            return set(self.numbers())  # written by an older llmpatch: treat every generation as once current
        return {int(t) for t in f.read_text(encoding="ascii", errors="replace").split() if t.isascii() and t.isdigit()}

    def _mark_activated(self, number: int) -> None:
        f = self.path / ACTIVATED_NAME
        if not f.is_file():
            seed = sorted(self.activated() | {number})
            atomic.write_bytes(f, "".join(f"{n}\n" for n in seed).encode())
            return
        with open(f, "a", encoding="ascii") as out:
            out.write(f"{number}\n")

    def generations(self) -> list[Generation]:
        return [self.generation(n) for n in self.numbers()]

    def current(self) -> Generation:
        return self.generation(self.current_number())

    def patch_dirs(self, gen: Generation | None = None) -> list[Path]:
        """Store directories of a generation's patches, in stack order."""
        g = gen or self.current()
        return [self.store.path(p.manifest_sha256) for p in g.patches]

    def load_stack(self, gen: Generation | None = None):
        """Verify every patch of a generation and compose it for the pinned base."""
        g = gen or self.current()
        patches = [self.store.verify(p.manifest_sha256, what=f"{p.name} {p.version}") for p in g.patches]
        return compose(patches, self.base_ref, max_virtual_tokens=self.config.max_virtual_tokens)

    def check_stack(self, gen: Generation) -> None:
        """Every check of :meth:`load_stack` without loading tensors (see ``Store.check``): no torch import."""
        manifests = [self.store.check(p.manifest_sha256, what=f"{p.name} {p.version}") for p in gen.patches]
        check_stack(manifests, self.base_ref, max_virtual_tokens=self.config.max_virtual_tokens)

    # -- changes --------------------------------------------------------------------------

    @contextmanager
    def transaction(self, command: str, *, timeout: float = DEFAULT_TIMEOUT,
                    on_wait: Callable[[str], None] | None = None,
                    on_recover: Callable[[str], None] | None = None) -> Iterator["Environment"]:
        """Hold the environment lock (recovering from an interrupted run first)."""
        with EnvLock(self.path, command=command, timeout=timeout, on_wait=on_wait) as lock:
            atomic.point("lock acquired")
            notes = self.recover()
            atomic.point("recovered")
            if lock.stale is not None:
                notes.insert(0, f"a previous llmpatch run ({lock.stale.describe()}) was interrupted; "
                                f"generation {self.current_number()} is intact")
            for note in notes:
                if on_recover:
                    on_recover(note)
            yield self

    def recover(self) -> list[str]:
        """Remove what an interrupted run left behind (call with the lock held)."""
        notes: list[str] = []
        for p in list(self.gen_dir.iterdir()):
            if p.name.startswith("."):
                p.unlink(missing_ok=True)
        for p in self.path.iterdir():
            if p.is_file() and ".tmp-" in p.name:
                p.unlink(missing_ok=True)
        if n := self.store.clean_temp():
            notes.append(f"removed {n} unfinished download(s) from the store")
        gen = self.current()
        if gen.number not in self.activated():  # killed between the pointer swap and recording it
            self._mark_activated(gen.number)
        locked = self.read_lockfile_stack()
        # Killed between the pointer swap and the lock file write: the lock file still shows the
        # parent generation (or is missing). Any other difference is the user's (e.g. a lock file
        # pulled from git, waiting for `llmpatch sync`) and is left alone.
        parent = self.generation(gen.parent).stack_id if gen.parent and gen.parent in self.numbers() else None
        if locked is None or (locked != gen.stack_id and locked == parent):
            self.write_lockfile(gen)
            if locked is not None:
                notes.append(f"updated {self.lockfile_path.name} to generation {gen.number}")
        return notes

    def commit(self, patches: list[Installed], *, action: str, command: str,
               restores: int | None = None) -> Generation:
        """Write a new generation and make it current (call with the lock held)."""
        cur = self.current_number()
        # Above every existing file: a generation that was once current (the user may have moved
        # `current` back by hand) or is waiting for gc is never overwritten.
        number = max([cur, *self.numbers()]) + 1
        gen = Generation(number=number, created=now_iso(), action=action, command=command, parent=cur,
                         restores=restores, base_fingerprint=self.base_ref.fingerprint, patches=tuple(patches))
        for p in gen.patches:
            if not self.store.has(p.manifest_sha256):
                raise EnvironmentStateError(f"{p.id} is not in the store; refusing to activate a generation without it")
        self.gen_dir.mkdir(exist_ok=True)
        atomic.write_json(self.gen_dir / f"{gen.number}.json", gen.to_dict(), step="generation file")
        atomic.write_bytes(self.path / CURRENT_NAME, f"{gen.number}\n".encode(), step="current pointer")
        atomic.point("generation switched")
        self._mark_activated(gen.number)
        self.write_lockfile(gen)
        return gen

    # -- lock file ------------------------------------------------------------------------

    def lockfile(self, gen: Generation | None = None) -> LockFile:
        g = gen or self.current()
        return LockFile(self.base, self.config.registry, g.patches)

    def write_lockfile(self, gen: Generation | None = None, path: Path | None = None) -> Path:
        """Write ``llmpatch.lock`` for a generation (default: the current one)."""
        target = Path(path) if path else self.lockfile_path
        atomic.write_json(target, self.lockfile(gen).to_dict(), step="lock file", durable=False)
        return target

    def read_lockfile_stack(self) -> str | None:
        try:
            return LockFile.read(self.lockfile_path).stack_id
        except LlmpatchError:
            return None

    # -- health ---------------------------------------------------------------------------

    def damaged(self, gens: list[Generation] | None = None, *, full: bool = False) -> dict[str, str]:
        """Store entries the given generations (default: every one) need that are missing or damaged: digest -> why.

        ``full`` also reads every tensor (``llmpatch check``); the default checks every file's
        sha256, which is as strong for store entries and needs no torch (``llmpatch list``)."""
        out: dict[str, str] = {}
        for g in (self.generations() if gens is None else gens):
            for p in g.patches:
                if p.manifest_sha256 not in out:
                    why = self.store.problem(p.manifest_sha256, what=f"{p.name} {p.version}", full=full)
                    if why is not None:
                        out[p.manifest_sha256] = why
        return out

    def check(self) -> list[str]:
        """Problems that would make the environment unusable (empty list when healthy)."""
        problems: list[str] = []
        try:
            gen = self.current()
            self.load_stack(gen)
        except LlmpatchError as exc:
            problems.append(exc.message)
            return problems
        for n in self.numbers():
            try:
                self.generation(n)
            except LlmpatchError as exc:
                problems.append(exc.message)
        return problems

    # -- creation -------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, base_spec: str, *, registry: str | None = None, force: bool = False,
               max_virtual_tokens: int = DEFAULT_MAX_VIRTUAL_TOKENS, policy: Path | None = None) -> "Environment":
        """Create an environment at ``path`` (a ``.llmpatch`` dir) pinned to ``base_spec``; atomic."""
        from llmpatch import base as base_mod

        path = Path(path).absolute()
        if (path / CONFIG_NAME).exists() and not force:
            existing = cls(path)
            raise EnvironmentStateError(
                f"{path} is already an environment, pinned to {existing.base_ref.describe()}",
                hint="use it as it is, or pass --force to replace it (its generations are discarded)",
            )
        if path.exists() and not (path / CONFIG_NAME).exists() and (not path.is_dir() or any(path.iterdir())):
            # Never replace (let alone delete) a directory that is not an environment.
            raise EnvironmentStateError(f"{path} exists and is not a llmpatch environment; refusing to use it",
                                        hint="choose another --path (or $LLMPATCH_ENV), or remove it yourself")
        if registry:
            registry = paths.canonical_registry(registry)  # a relative path means the same from any directory
        info = base_mod.identify(base_spec)
        pinned = PinnedBase(spec=info.spec or base_spec, ref=info.to_ref())
        stored_policy = _stored_policy(policy, path.parent) if policy is not None else None
        config = EnvConfig(created=now_iso(), base=pinned, registry=registry, max_virtual_tokens=max_virtual_tokens,
                           policy=stored_policy)
        gen = Generation(number=1, created=config.created, action="init", command=f"llmpatch init --base {base_spec}",
                         parent=None, restores=None, base_fingerprint=info.fingerprint, patches=())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{path.name}.tmp-", dir=path.parent))
        try:
            (tmp / GENERATIONS_DIR).mkdir()
            (tmp / STORE_DIR).mkdir()
            (tmp / ".gitignore").write_text("# created by llmpatch: commit llmpatch.lock, not this directory\n*\n")
            atomic.write_json(tmp / CONFIG_NAME, config.to_dict(), step="environment file")
            atomic.write_json(tmp / GENERATIONS_DIR / "1.json", gen.to_dict(), step="generation file")
            atomic.write_bytes(tmp / CURRENT_NAME, b"1\n", step="current pointer")
            (tmp / ACTIVATED_NAME).write_bytes(b"1\n")
            if path.exists():
                aside = path.with_name(f"{path.name}.old-{os.getpid()}")
                os.rename(path, aside)
                os.rename(tmp, path)
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.rename(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        env = cls(path)
        if not env.lockfile_path.exists():  # a checked-out project's llmpatch.lock is kept for `sync`
            env.write_lockfile()
        return env
