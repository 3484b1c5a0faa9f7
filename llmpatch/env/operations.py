"""The customer's verbs: install, remove, upgrade, order, rollback, sync, gc.

Each builds a :class:`Plan` (pure: which exact versions in which order), then :func:`apply`
fetches what the store lacks, verifies and composes the whole new stack for the pinned base,
and commits it as a new generation. Everything runs under the environment lock. Rollback is
a new generation too (a forward step to an older state), so history is never rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from llmpatch.artifact import ADAPTER_WEIGHTS
from llmpatch.compose import check_base
from llmpatch import atomic
from llmpatch.env.environment import Environment
from llmpatch.env.records import Generation, Installed, LockFile
from llmpatch.errors import (
    BaseMismatchError,
    EnvironmentStateError,
    IntegrityError,
    InvalidSpecError,
    NotFoundError,
    PolicyViolation,
)
from llmpatch.manifest import Manifest
from llmpatch.resolver import KEPT, Entry, Requirement, resolve_stack
from llmpatch.versions import PatchSpec



def open_registry(url: str) -> Any:
    """Open a registry by URL or path (the registry package is imported only when needed)."""
    from llmpatch.registry import open_registry as _open

    return _open(url)


@dataclass
class Item:
    """One patch of a planned stack: already in the environment, or to be fetched."""

    name: str
    version: str
    manifest_sha256: str
    requested: str | None
    installed: Installed | None = None
    entry: Any = None
    registry: str | None = None

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass
class Plan:
    """What a command will do: the stack before and after."""

    action: str
    command: str
    before: tuple[Installed, ...]
    after: list[Item]
    restores: int | None = None
    locked: LockFile | None = None
    notes: list[str] = field(default_factory=list)
    #: missing or damaged store entries of the stack to fetch again even when the stack is unchanged
    repair: list[Item] = field(default_factory=list)

    @property
    def to_fetch(self) -> list[Item]:
        return [i for i in self.after if i.installed is None]

    @property
    def unchanged(self) -> bool:
        return [(p.name, p.version, p.manifest_sha256) for p in self.before] == \
               [(i.name, i.version, i.manifest_sha256) for i in self.after]

    def changes(self) -> list[dict[str, Any]]:
        """Added, removed, upgraded/downgraded and moved patches, for display and --json."""
        old = {p.name: (i, p) for i, p in enumerate(self.before)}
        new = {it.name: (i, it) for i, it in enumerate(self.after)}
        out: list[dict[str, Any]] = []
        for name, (pos, it) in new.items():
            if name not in old:
                out.append({"op": "add", "name": name, "version": it.version, "position": pos + 1})
            else:
                opos, p = old[name]
                if p.version != it.version:
                    out.append({"op": "change", "name": name, "from": p.version, "to": it.version, "position": pos + 1})
        for name, (opos, p) in old.items():
            if name not in new:
                out.append({"op": "remove", "name": name, "version": p.version})
        kept_old = [p.name for p in self.before if p.name in new]
        kept_new = [it.name for it in self.after if it.name in old]
        if kept_old != kept_new:
            out.append({"op": "reorder", "from": kept_old, "to": kept_new})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action, "command": self.command,
            "before": [p.id for p in self.before], "after": [i.id for i in self.after],
            "fetch": [i.id for i in self.to_fetch], "changes": self.changes(), "unchanged": self.unchanged,
            "notes": list(self.notes), "repair": [i.id for i in self.repair],
        }


def _item(p: Installed) -> Item:
    return Item(p.name, p.version, p.manifest_sha256, p.requested, installed=p, registry=p.registry)


def _stored_entry(env: Environment, p: Installed) -> Entry:
    """An index-entry view of an installed patch, from its manifest in the store (no registry needed)."""
    m = Manifest.read(env.store.path(p.manifest_sha256) / "llmpatch.json")
    return Entry(p.name, p.version, m.base.fingerprint, dict(m.requires), dict(m.conflicts), provides=m.provides)


class _Lookup:
    """Resolver lookup: installed patches from the store, the rest from the registry index."""

    def __init__(self, env: Environment, registry: Any, pinned: dict[str, Installed]) -> None:
        self.env, self.registry, self.pinned = env, registry, pinned
        self._index = None

    def index(self) -> Any:
        if self._index is None:
            if self.registry is None:
                raise EnvironmentStateError("this change needs a registry, and none is available")
            self._index = self.registry.index()
        return self._index

    def __call__(self, name: str) -> Sequence[Any]:
        if name in self.pinned:
            return [_stored_entry(self.env, self.pinned[name])]
        try:
            return list(self.index().versions(name))
        except NotFoundError:
            return []

    def names(self) -> list[str]:
        return list(self.index().names())

    def providers(self, name: str) -> list[Any]:
        """Merged patches in the registry that provide ``name`` (installed ones are found by their own name)."""
        if self.registry is None:
            return []
        return [e for e in self.index().providers(name) if e.name not in self.pinned]


def _where(registry: Any, url: str | None) -> str:
    return f"registry {url}" if url else "the registry"


def plan_resolve(env: Environment, registry: Any, *, action: str, command: str,
                 change: dict[str, PatchSpec], keep: Sequence[Installed], drop: set[str] = frozenset(),
                 pre: bool = False, position: int | None = None, registry_url: str | None = None,
                 prefer_merged: bool = False) -> Plan:
    """Resolve ``change`` (name -> spec) while keeping ``keep`` pinned; order is preserved.

    A merged patch chosen to stand in for requested names (see :mod:`llmpatch.resolver`) is
    recorded as requested ``NAME@VERSION`` (exactly the version that provides them), and the plan
    says what it stands in for.
    """
    cur = env.current()
    pinned = {p.name: p for p in keep if p.name not in change and p.name not in drop}
    reqs = [Requirement(s.name, s.range.text) for s in change.values()]
    reqs += [Requirement(p.name, p.version, parent=KEPT) for p in pinned.values()]
    lookup = _Lookup(env, registry, pinned)
    resolution = resolve_stack(reqs, lookup, base_fingerprint=env.base_ref.fingerprint, pre=pre,
                               where=_where(registry, registry_url), prefer_merged=prefer_merged)
    entries = resolution.entries
    chosen = {e.name: e for e in entries}
    stand_ins: dict[str, list[str]] = {}  # merged patch -> the requested specs it stands in for
    ordered: dict[str, PatchSpec] = {}  # the request, a stand-in taking the place of the first spec it provides
    for name, spec in change.items():
        ordered[name] = spec
        version, merged = resolution.provided.get(name, (None, None))
        if merged is not None:
            stand_ins.setdefault(merged.name, []).append(f"{spec} (as {name} {version})")
            if merged.name not in change and merged.name not in pinned and merged.name not in ordered:
                ordered[merged.name] = PatchSpec.parse(f"{merged.name}@{merged.version}")
    requested_now = set(change)
    change = ordered
    by_old = {p.name: p for p in cur.patches}
    after: list[Item] = []
    for p in cur.patches:  # existing order first, changed versions in place
        e = chosen.get(p.name)
        if e is None:
            continue
        if p.name in pinned or (e.version == p.version and p.name not in change):
            after.append(_item(p))
        else:
            after.append(_new_item(e, p.name, change, registry_url, by_old.get(p.name)))
    new_items = [_new_item(chosen[n], n, change, registry_url, None) for n in
                 [s.name for s in change.values()] + [e.name for e in entries] if n in chosen and n not in by_old]
    seen: set[str] = set()
    new_items = [i for i in new_items if not (i.name in seen or seen.add(i.name))]
    at = len(after) if position is None else max(0, min(len(after), position - 1))
    after[at:at] = new_items
    notes = [f"{i.id} is yanked" + (f": {i.entry.yank_reason}" if getattr(i.entry, "yank_reason", None) else "")
             for i in after if i.installed is None and getattr(i.entry, "yanked", False)]
    for merged_name, specs in stand_ins.items():
        e = chosen[merged_name]
        why = ("installed" if merged_name in pinned else "requested" if merged_name in requested_now
               else "marked by the registry as their replacement" if getattr(e, "replaces", False) else "--prefer-merged")
        notes.append(f"note: {merged_name} {e.version} (a merged patch, {why}) provides {', '.join(specs)}")
    return Plan(action, command, cur.patches, after, notes=notes)


def _hex(digest: str) -> str:
    """Digests are stored as bare hex; an index may write them as ``sha256:<hex>``."""
    return digest.split(":", 1)[1] if digest.startswith("sha256:") else digest


def _new_item(e: Any, name: str, change: dict[str, PatchSpec], url: str | None, old: Installed | None) -> Item:
    spec = change.get(name)
    requested = str(spec) if spec is not None else (old.requested if old else None)
    digest = _hex(e.manifest_sha256)
    if old is not None and old.version == e.version and old.manifest_sha256 == digest:
        return Item(name, e.version, digest, requested, installed=old, registry=old.registry)
    return Item(name, e.version, digest, requested, entry=e, registry=url)


# ---------------------------------------------------------------------------------------------
# Plans for each verb


def plan_install(env: Environment, registry: Any, specs: Sequence[PatchSpec], *, command: str, pre: bool = False,
                 position: int | None = None, registry_url: str | None = None, prefer_merged: bool = False) -> Plan:
    """Add (or change the range of) ``specs``; installed patches keep their versions.

    ``prefer_merged``: a merged patch that provides every requested name it stands for is
    installed instead of the separate patches (see :func:`llmpatch.resolver.resolve_stack`).
    """
    change: dict[str, PatchSpec] = {}
    for s in specs:
        if s.name in change and str(change[s.name]) != str(s):
            raise InvalidSpecError(f"{s.name} is requested twice with different specs ({change[s.name]} and {s})",
                                   hint=f"name {s.name} once, with the range you want")
        change[s.name] = s
    return plan_resolve(env, registry, action="install", command=command, change=change,
                        keep=env.current().patches, pre=pre, position=position, registry_url=registry_url,
                        prefer_merged=prefer_merged)


def plan_remove(env: Environment, names: Sequence[str], *, command: str) -> Plan:
    cur = env.current()
    installed = {p.name for p in cur.patches}
    missing = [n for n in names if n not in installed]
    if missing:
        raise NotFoundError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed "
                            f"(installed: {', '.join(sorted(installed)) or 'nothing'})")
    return Plan("remove", command, cur.patches, [_item(p) for p in cur.patches if p.name not in names])


def plan_upgrade(env: Environment, registry: Any, specs: Sequence[PatchSpec], *, command: str, pre: bool = False,
                 registry_url: str | None = None) -> Plan:
    """Re-resolve the named patches (default: all) to the newest versions their specs allow."""
    cur = env.current()
    installed = {p.name: p for p in cur.patches}
    for s in specs:
        if s.name not in installed:
            raise NotFoundError(f"{s.name} is not installed", hint=f"install it with `llmpatch install {s}`")
    if specs:
        change = {s.name: (s if s.range.text != "latest" or not installed[s.name].requested
                           else PatchSpec.parse(installed[s.name].requested)) for s in specs}
        keep = [p for p in cur.patches if p.name not in change]
    else:
        change = {p.name: PatchSpec.parse(p.requested) for p in cur.patches if p.requested}
        keep = []  # dependencies are re-resolved from the requires of what is chosen
    # Upgrading everything re-resolves dependencies from what is chosen; unneeded ones drop out.
    return plan_resolve(env, registry, action="upgrade", command=command, change=change, keep=keep,
                        drop=set() if specs else {p.name for p in cur.patches if not p.requested},
                        pre=pre, registry_url=registry_url)


def plan_order(env: Environment, names: Sequence[str], *, command: str) -> Plan:
    """Put ``names`` first, in that order; the others follow in their current order."""
    cur = env.current()
    by_name = {p.name: p for p in cur.patches}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise NotFoundError(f"{', '.join(unknown)} not installed; installed: {', '.join(by_name) or 'nothing'}")
    if len(set(names)) != len(names):
        raise EnvironmentStateError(f"a name appears twice in {' '.join(names)}")
    order = list(names) + [p.name for p in cur.patches if p.name not in names]
    return Plan("order", command, cur.patches, [_item(by_name[n]) for n in order])


def rollback_target(env: Environment) -> int:
    """The generation ``rollback`` returns to: the one before the state now current."""
    gen = env.current()
    # After a rollback, step back from the generation it restored, so repeated rollbacks walk back.
    origin = env.generation(gen.restores) if gen.restores else gen
    if origin.parent is None:
        raise EnvironmentStateError(
            f"generation {gen.number} has no earlier state to roll back to",
            hint="see `llmpatch history`; `llmpatch rollback --to N` picks a generation",
        )
    return origin.parent


def plan_rollback(env: Environment, to: int | None, *, command: str) -> Plan:
    cur = env.current()
    target_no = rollback_target(env) if to is None else to
    target = env.generation(target_no)
    plan = Plan("rollback", command, cur.patches, [_item(p) for p in target.patches], restores=target_no)
    for p in target.patches:
        if not env.store.has(p.manifest_sha256):
            raise IntegrityError(
                f"generation {target_no} needs {p.id}, whose payload is no longer in the store",
                hint="run `llmpatch gc` only with the generations you want to keep; reinstall with `llmpatch install`",
            )
    return plan


def plan_sync(env: Environment, lock: LockFile, registry_for: Callable[[str | None], Any], *, command: str,
              registry_url: str | None = None) -> Plan:
    """Reproduce a lock file exactly: same base, versions, order and content digests."""
    if lock.base.ref.fingerprint != env.base_ref.fingerprint:
        raise BaseMismatchError(
            f"the lock file is for base {lock.base.ref.describe()}, this environment is pinned to {env.base_ref.describe()}",
            hint=f"create the environment with `llmpatch init --base {lock.base.spec}` (same fingerprint), then sync",
        )
    cur = env.current()
    after: list[Item] = []
    repair: list[Item] = []
    indexes: dict[str | None, Any] = {}
    for p in lock.patches:
        problem = env.store.problem(p.manifest_sha256, what=p.id) if env.store.has(p.manifest_sha256) else "missing"
        if problem is None:
            _check_lock_label(env, p)
            after.append(Item(p.name, p.version, p.manifest_sha256, p.requested, installed=p, registry=p.registry))
            continue
        url = registry_url or p.registry
        if url not in indexes:
            indexes[url] = registry_for(url).index()
        try:
            entry = indexes[url].get(p.name, p.version)
        except NotFoundError as exc:
            raise NotFoundError(f"{p.id} from the lock file is not in registry {url}: {exc.message}",
                                hint="pass the registry that has it with --registry") from None
        if _hex(entry.manifest_sha256) != p.manifest_sha256:
            raise IntegrityError(
                f"{p.id} in registry {url} has manifest sha256 {_hex(entry.manifest_sha256)}, the lock file says {p.manifest_sha256}",
                hint="the registry's copy differs from the locked one; do not use it, ask the vendor",
            )
        item = Item(p.name, p.version, p.manifest_sha256, p.requested, entry=entry, registry=url)
        if any(c.manifest_sha256 == p.manifest_sha256 for c in cur.patches):
            item.installed = p  # in the stack already, only its store copy is damaged: repair, same generation
            repair.append(item)
        after.append(item)
    return Plan("sync", command, cur.patches, after, locked=lock, repair=repair)


def _check_lock_label(env: Environment, p: Installed) -> None:
    """A lock entry's name and version must be those of the manifest its digest names."""
    m = Manifest.read(env.store.path(p.manifest_sha256) / "llmpatch.json")
    if (m.name, m.version) != (p.name, p.version):
        raise IntegrityError(
            f"llmpatch.lock says {p.id}, but manifest sha256:{p.manifest_sha256[:12]}… it names is {m.id}",
            hint="the lock file was edited; restore it from version control or rewrite it with `llmpatch lock`",
        )
    if m.files[ADAPTER_WEIGHTS].sha256 != p.payload_sha256:
        raise IntegrityError(f"llmpatch.lock says payload {p.payload_sha256} for {p.id}, its manifest says "
                             f"{m.files[ADAPTER_WEIGHTS].sha256}", hint="restore llmpatch.lock from version control")


# ---------------------------------------------------------------------------------------------
# Applying a plan


def _download(env: Environment, it: Item, registry_for: Callable[[str | None], Any] | None,
              progress: Callable[[str], None] | None, verb: str, why: str) -> None:
    """Fetch ``it`` into the store (replacing a damaged copy), verified."""
    if registry_for is None:
        raise EnvironmentStateError(f"{it.id} must be downloaded{why}, and no registry is available")
    reg = registry_for(it.registry)
    if progress:
        progress(f"{verb} {it.id}{why}")
    env.store.add(it.manifest_sha256, lambda dest: reg.fetch(it.name, it.version, dest),
                  what=f"{it.name} {it.version}", repair=True)


def apply(env: Environment, plan: Plan, registry_for: Callable[[str | None], Any] | None = None,
          *, progress: Callable[[str], None] | None = None) -> Generation | None:
    """Fetch, verify, compose and commit ``plan`` as a new generation (None when nothing changes)."""
    for it in plan.repair:
        _download(env, it, registry_for, progress, "repairing", " (missing or damaged in the store)")
    if plan.unchanged and plan.action not in ("rollback",):
        return None
    final: list[Installed] = []
    locked = {p.name: p for p in plan.locked.patches} if plan.locked else {}
    for it in plan.after:
        if it.installed is not None:
            final.append(it.installed)
            continue
        _download(env, it, registry_for, progress, "fetching", "")
        m = Manifest.read(env.store.path(it.manifest_sha256) / "llmpatch.json")
        check_base(m, env.base_ref)
        payload = m.files[ADAPTER_WEIGHTS].sha256
        if it.name in locked and locked[it.name].payload_sha256 != payload:
            raise IntegrityError(f"{it.id}: payload sha256 {payload} differs from the lock file's {locked[it.name].payload_sha256}")
        loc = getattr(it.entry, "location", None) or {}
        final.append(Installed(it.name, it.version, it.manifest_sha256, payload, m.num_virtual_tokens,
                               it.requested, it.registry, dict(loc)))
    gen_preview = Generation(1, "", plan.action, plan.command, None, None, env.base_ref.fingerprint, tuple(final))
    env.check_stack(gen_preview)  # every file verified, base, budget, requires/conflicts, as a whole
    atomic.point("new stack verified")
    return env.commit(final, action=plan.action, command=plan.command, restores=plan.restores)


@dataclass(frozen=True)
class Tested:
    """One stack a vendor evaluated a patch in (a manifest's ``stacks`` entry), with whose manifest it is."""

    name: str
    version: str
    evidence: Any  # StackEvidence

    @property
    def stack(self) -> str:
        return self.evidence.label(self.name, self.version)

    def describe(self) -> str:
        """``harm-fix 1.3.0 was tested with tox-fix 1.1.0 before it``."""
        return f"{self.name} {self.version} was {self.evidence.describe()}"

    def to_dict(self) -> dict[str, Any]:
        return {"patch": f"{self.name}@{self.version}", "stack": self.stack, "describe": self.describe(),
                "evidence": self.evidence.to_dict()}


@dataclass(frozen=True)
class StackGuidance:
    """What the vendors' manifests say about a stack of two or more patches: was it evaluated together?

    ``evidence`` is the manifest entry that covers exactly this stack (names, versions, payload
    sha256 and order), when one does; ``related`` lists the stacks the vendors did evaluate with
    these patches (another order, or part of this stack), to say what was tested instead.
    """

    stack: tuple[str, ...]
    evidence: Tested | None
    related: tuple[Tested, ...] = ()

    @property
    def evaluated(self) -> bool:
        """Whether a vendor measured exactly this stack (a single patch: its own ``evals`` did)."""
        return self.evidence is not None or len(self.stack) == 1

    def messages(self) -> list[str]:
        """Lines for the user: what was tested together, or that nothing was, and what the vendors tested."""
        label = " -> ".join(self.stack)
        if len(self.stack) == 1:
            return [f"{t.describe()} ({t.stack}); alone, its own evals apply" for t in self.related]
        if self.evidence is not None:
            return [f"this stack ({label}) was evaluated together at build time: {self.evidence.describe()}"]
        lines = [f"no vendor evaluated this stack ({label}) together"]
        lines += [f"  tested instead: {t.describe()} ({t.stack})" for t in self.related]
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"stack": list(self.stack), "evaluated": self.evaluated,
                "evidence": None if self.evidence is None else self.evidence.to_dict(),
                "tested": [t.to_dict() for t in self.related]}


def stack_guidance(env: Environment, patches: Sequence[Installed]) -> StackGuidance | None:
    """Whether a vendor evaluated this exact stack together (from the stored manifests).

    None for an empty stack, and for a single patch built alone (nothing to say); a single patch
    from a composition-aware build gets the stacks it was tested in, as information.
    """
    from llmpatch.compose import find_evidence, related_evidence

    if not patches:
        return None
    manifests = [Manifest.read(env.store.path(p.manifest_sha256) / "llmpatch.json") for p in patches]
    if len(manifests) == 1:
        m = manifests[0]
        return StackGuidance((patches[0].id,), None, tuple(Tested(m.name, m.version, st) for st in m.stacks)) \
            if m.stacks else None
    found = find_evidence(manifests)
    related = tuple(Tested(m.name, m.version, st) for m, st in related_evidence(manifests)
                    if found is None or st is not found[1])
    return StackGuidance(tuple(p.id for p in patches),
                         None if found is None else Tested(found[0].name, found[0].version, found[1]), related)


#: ``check(env_dir) -> (passed, failures)``: the eval gate of ``install --verify`` (the command
#: layer passes ``llmpatch.verify.gate.verify_environment``; environments do not import verify).
GateCheck = Callable[[Path], tuple[bool, Sequence[str]]]


def gate(env: Environment, gen: Generation, previous: int, check: GateCheck, *, command: str) -> None:
    """Eval-gated install: ``check`` the new generation; roll back and raise PolicyViolation if it fails."""
    passed, failures = check(env.path)
    if passed:
        return
    target = env.generation(previous)
    back = env.commit(list(target.patches), action="verify-rollback",
                      command=f"{command} (failed verification, rolled back)", restores=previous)
    raise PolicyViolation(
        f"generation {gen.number} ({gen.describe()}) failed verification"
        + (": " + "; ".join(failures) if failures else "")
        + f"; rolled back to the stack of generation {previous} (now generation {back.number})",
        hint="inspect the report with `llmpatch verify`, or install another version",
    )


def gc(env: Environment, *, keep_last: int | None = None, dry_run: bool = False) -> dict[str, list[str]]:
    """Delete generations beyond the last ``keep_last`` (never the current one) and unreferenced payloads.

    ``dry_run``: only report what would be deleted.
    """
    removed_gens: list[str] = []
    cur = env.current_number()
    activated = env.activated()
    for n in env.numbers():  # written but never activated (an interrupted run)
        if n != cur and n not in activated:
            if not dry_run:
                (env.gen_dir / f"{n}.json").unlink()
            removed_gens.append(str(n))
    nums = [n for n in env.numbers() if str(n) not in removed_gens]
    if keep_last is not None:
        if keep_last < 1:
            raise EnvironmentStateError(f"--keep-last must be at least 1, got {keep_last}")
        for n in nums[:-keep_last]:
            if n != cur:
                if not dry_run:
                    (env.gen_dir / f"{n}.json").unlink()
                removed_gens.append(str(n))
    needed = {p.manifest_sha256 for g in env.generations() if str(g.number) not in removed_gens for p in g.patches}
    removed_payloads = []
    for digest in env.store.entries():
        if digest not in needed:
            if not dry_run:
                env.store.remove(digest)
            removed_payloads.append(digest)
    return {"generations": removed_gens, "payloads": removed_payloads}

