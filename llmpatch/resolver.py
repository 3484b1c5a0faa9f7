"""Choosing exact patch versions: resolvelib (pip's resolver) with llmpatch's policy in a provider.

The resolver is pure: it takes the requested specs and a ``lookup(name)`` that returns index
entries (anything with ``name``, ``version``, ``base_fingerprint``, ``requires``,
``conflicts``, ``yanked``), newest first, and returns the chosen entries. Policy:

* the newest version that fits every range wins;
* prereleases only with ``pre=True`` (or when a range names a prerelease itself);
* yanked versions are skipped unless some requirement pins that exact version;
* every candidate must be built for the environment's base fingerprint (like pip treats the
  running Python: a fixed constraint that filters candidates);
* ``requires`` become dependencies; ``conflicts`` become *negative* requirements that a
  virtual "absent" candidate satisfies, so a conflicting patch is never pulled in just to
  be excluded, and backtracking handles both;
* ``provides`` (merged patches, like Debian's Provides/Replaces): a merged patch M that
  provides ``tox-fix 1.1.0`` satisfies a requirement on ``tox-fix`` through a *stand-in*
  candidate ("tox-fix 1.1.0, provided by M") that depends on M. M is offered as a stand-in
  only when M is itself requested or installed, when the caller passes ``prefer_merged``, or
  when the registry marks M as a replacement (``replaces`` in its index entry); the last two
  only for a request that names every patch M provides. Choosing M adds, for each name it
  provides, a *provision* requirement that only M's stand-in (or absence) satisfies, so M and
  a patch it provides are never chosen together; an installed patch is kept as itself, never
  swapped for a stand-in behind the user's back.

When nothing fits, :class:`~llmpatch.errors.ResolutionError` lists the candidates of each
name involved and why each was rejected.

>>> entries = {"tox-fix": [Entry("tox-fix", "1.2.1"), Entry("tox-fix", "1.2.0"), Entry("tox-fix", "1.1.0")]}
>>> [e.version for e in resolve([PatchSpec.parse("tox-fix@1.2")], entries.get, base_fingerprint=None)]
['1.2.1']
"""

from __future__ import annotations

import difflib
import operator
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import nodesemver
import resolvelib
import semver

from llmpatch.errors import NotFoundError, ResolutionError
from llmpatch.manifest import short_fp
from llmpatch.versions import PatchSpec, VersionRange, parse_version

#: Cap on resolvelib rounds: a patch graph is small; a runaway resolution should fail, not hang.
MAX_ROUNDS = 2000
#: ``Requirement.parent`` of a requirement that keeps an installed patch at its version.
KEPT = "(installed)"


@dataclass(frozen=True)
class Entry:
    """A minimal index entry (what the resolver reads from a registry's ``IndexEntry``)."""

    name: str
    version: str
    base_fingerprint: str | None = None
    requires: Mapping[str, str] = field(default_factory=dict)
    conflicts: Mapping[str, str] = field(default_factory=dict)
    yanked: bool = False
    yank_reason: str | None = None
    #: (merged patches) the versions it stands in for: dicts or objects with name and version
    provides: Sequence[Any] = ()
    replaces: bool = False


Lookup = Callable[[str], "Sequence[Any] | None"]


# ---------------------------------------------------------------------------------------------
# Version matching, compiled once per range text (10,000-version indexes must stay fast)


_RELEASE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "": operator.eq, "=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _release_tuple(version: str) -> tuple[int, int, int] | None:
    m = _RELEASE.fullmatch(version)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def _tuple_sets(node: Any) -> list[list[tuple[Callable[[Any, Any], bool], tuple[int, int, int]]]] | None:
    """The range as (operator, bound) tuples, when no bound is a prerelease (else None)."""
    sets = []
    for comparators in node.set:
        out = []
        for c in comparators:
            if c.semver is nodesemver.ANY:
                continue
            if c.semver.prerelease or c.semver.build or c.operator not in _OPS:
                return None
            out.append((_OPS[c.operator], (c.semver.major, c.semver.minor, c.semver.patch)))
        sets.append(out)
    return sets


@lru_cache(maxsize=4096)
def _matcher(text: str) -> Callable[[str, bool], bool]:
    rng = VersionRange.parse(text)
    if rng.is_exact:
        want = parse_version(rng.text.lstrip("=").strip())
        return lambda v, pre: semver.Version.parse(v) == want
    node = nodesemver.make_range("*" if rng.text == "latest" else rng.text, loose=False)
    sets = _tuple_sets(node)

    def match(v: str, pre: bool) -> bool:
        # Release versions against release bounds compare as integer tuples: ~10x faster than
        # node-semver, which matters when scanning 10,000 versions. Anything else uses node-semver.
        t = _release_tuple(v) if sets is not None else None
        if t is not None:
            return any(all(op(t, bound) for op, bound in s) for s in sets)
        return bool(node.test(v, include_prerelease=pre))

    return match


@lru_cache(maxsize=4096)
def _is_exact(text: str) -> bool:
    return VersionRange.parse(text).is_exact


def provided_by(entry: Any) -> dict[str, str]:
    """name -> version of what ``entry`` provides (index entries hold dicts, manifests objects)."""
    out: dict[str, str] = {}
    for p in getattr(entry, "provides", None) or ():
        if isinstance(p, dict):
            out[p["name"]] = p["version"]
        else:
            out[p.name] = p.version
    return out


def _is_prerelease(version: str) -> bool:
    # A prerelease has a '-' before any '+build' part.
    return "-" in version.split("+", 1)[0]


@dataclass(frozen=True)
class Requirement:
    """A range on one name, from the user (parent None), a ``requires`` or a ``conflicts``."""

    name: str
    range: str
    parent: str | None = None
    negative: bool = False  # a conflict: satisfied by absence or a version outside the range
    #: a provision: ``via`` (``merged@1.0.0``) provides this name, so only its stand-in (or absence) satisfies it
    via: str | None = None

    @property
    def exact(self) -> bool:
        return not self.negative and self.via is None and _is_exact(self.range)

    @property
    def positive(self) -> bool:
        """Asks for the patch to be present (a request, a ``requires`` or a kept installed version)."""
        return not self.negative and self.via is None

    def describe(self) -> str:
        who = "requested" if self.parent is None else self.parent
        if self.via is not None:
            return f"{self.parent} provides {self.name} {self.range} (a merged patch: {self.name} cannot also be in the stack)"
        if self.negative:
            return f"{who} conflicts with {self.name} {self.range}"
        if self.parent is None:
            return f"{self.name}@{self.range} (requested)"
        if self.parent == KEPT:
            return f"installed {self.name} {self.range} (kept; `llmpatch upgrade {self.name}` changes it)"
        return f"{who} requires {self.name} {self.range}"


@dataclass(frozen=True)
class Candidate:
    """One version of one patch (``entry`` is None for the virtual 'not installed' candidate)."""

    name: str
    version: str | None
    entry: Any = field(default=None, compare=False, hash=False)
    #: a stand-in: ``name`` at ``version`` as provided by the merged patch ``via`` (``merged@1.0.0``);
    #: ``entry`` is then the merged patch's entry
    via: str | None = None

    @property
    def absent(self) -> bool:
        return self.version is None

    def __str__(self) -> str:
        if self.via is not None:
            return f"{self.name} {self.version} (provided by {self.via})"
        return f"{self.name} {self.version}" if self.version else f"{self.name} (not installed)"


# ---------------------------------------------------------------------------------------------
# Policy


def _satisfies(req: Requirement, version: str, pre: bool) -> bool:
    inside = _matcher(req.range)(version, pre or req.negative)
    return not inside if req.negative else inside


def rejection(entry: Any, reqs: Sequence[Requirement], *, base_fingerprint: str | None, pre: bool) -> str | None:
    """Why ``entry`` cannot be chosen under ``reqs`` (None when it can)."""
    version = entry.version
    exact_pin = any(r.exact and _matcher(r.range)(version, True) for r in reqs)
    for r in reqs:
        if r.via is not None:
            return f"excluded: {r.via.replace('@', ' ')} provides {r.name} {r.range} (a merged patch and a patch it " \
                   "provides cannot be in one stack)"
        if not _satisfies(r, version, pre or exact_pin):
            if r.negative:
                return f"excluded: {r.describe()}"
            if _is_prerelease(version) and not pre and _matcher(r.range)(version, True):
                return "prerelease (pass --pre to allow)"
            return f"outside {r.range} ({r.describe()})"
    if getattr(entry, "yanked", False) and not exact_pin:
        why = getattr(entry, "yank_reason", None)
        return f"yanked{': ' + why if why else ''} (pin the exact version to use it anyway)"
    if base_fingerprint is not None and getattr(entry, "base_fingerprint", None) != base_fingerprint:
        built = getattr(entry, "base_fingerprint", None) or "?"
        bid = getattr(entry, "base_id", None)
        return f"built for base {bid + ' ' if bid else ''}({short_fp(built)}), not this environment's ({short_fp(base_fingerprint)})"
    return None


class Provider(resolvelib.AbstractProvider):
    """llmpatch's resolution policy for resolvelib."""

    def __init__(self, lookup: Lookup, *, base_fingerprint: str | None, pre: bool, prefer_merged: bool = False,
                 requested: frozenset[str] = frozenset(), explicit: frozenset[str] = frozenset()) -> None:
        self._lookup = lookup
        self.base_fingerprint = base_fingerprint
        self.pre = pre
        self.prefer_merged = prefer_merged
        #: names the user asked for now; and those plus the installed (kept) ones
        self.requested = requested
        self.explicit = explicit
        self._entries: dict[str, Sequence[Any]] = {}
        self._providers: dict[str, list[Any]] = {}

    def entries(self, name: str) -> Sequence[Any]:
        """Index entries of ``name``, newest first (memoised)."""
        if name not in self._entries:
            self._entries[name] = list(self._lookup(name) or ())
        return self._entries[name]

    def providers(self, name: str) -> list[Any]:
        """Entries of merged patches that provide ``name`` and may stand in for it here (memoised).

        A merged patch the user names or has installed may always stand in for what it provides;
        another one only with ``prefer_merged`` or the registry's ``replaces`` mark, and only when
        everything it provides is requested now (it must not bring in an effect nobody asked for).
        """
        if name not in self._providers:
            found: list[Any] = []
            for n in sorted(self.explicit):  # named or installed merged patches, found by their own name
                found += [e for e in self.entries(n) if name in provided_by(e)]
            more = getattr(self._lookup, "providers", None)
            for e in (more(name) if callable(more) else ()):
                if e.name in self.explicit or not (self.prefer_merged or getattr(e, "replaces", False)):
                    continue
                if set(provided_by(e)) <= self.requested and rejection(
                        e, [], base_fingerprint=self.base_fingerprint, pre=self.pre) is None:
                    found.append(e)
            self._providers[name] = found
        return self._providers[name]

    def identify(self, requirement_or_candidate: Requirement | Candidate) -> str:
        return requirement_or_candidate.name

    def get_preference(self, identifier, resolutions, candidates, information, backtrack_causes):
        infos = list(information[identifier])
        # Exact pins first, then user requests, then the most constrained names.
        pinned = any(i.requirement.exact for i in infos)
        requested = any(i.parent is None for i in infos)
        only_negative = all(i.requirement.negative for i in infos)
        return (not pinned, not requested, only_negative, identifier)

    def find_matches(self, identifier, requirements, incompatibilities):
        reqs = list(requirements[identifier])
        bad = {(c.version, c.via) for c in incompatibilities[identifier]}
        if not any(r.positive for r in reqs):
            # Nothing asks for this patch; only conflicts or provisions mention it: leave it out.
            return [] if (None, None) in bad else [Candidate(identifier, None)]
        entries = self.entries(identifier)
        provision = any(r.via is not None for r in reqs)

        def matches() -> Iterator[Candidate]:
            # stand-ins first: a merged patch that may stand in here was named, installed, preferred or marked
            for e in self.providers(identifier):
                c = Candidate(identifier, provided_by(e)[identifier], e, via=f"{e.name}@{e.version}")
                if (c.version, c.via) not in bad and all(self.is_satisfied_by(r, c) for r in reqs):
                    yield c
            if provision:
                return  # a chosen merged patch provides this name: the patch itself cannot join the stack
            for e in entries:
                if (e.version, None) in bad:
                    continue
                if rejection(e, reqs, base_fingerprint=self.base_fingerprint, pre=self.pre) is None:
                    yield Candidate(identifier, e.version, e)

        return matches

    def is_satisfied_by(self, requirement: Requirement, candidate: Candidate) -> bool:
        if candidate.absent:
            return not requirement.positive
        if requirement.via is not None:
            return candidate.via == requirement.via
        if candidate.via is not None and requirement.parent == KEPT:
            return False  # an installed patch stays itself; swapping it for a merged one is the user's call
        return _satisfies(requirement, candidate.version, True)

    def get_dependencies(self, candidate: Candidate) -> Iterable[Requirement]:
        if candidate.absent:
            return []
        e = candidate.entry
        if candidate.via is not None:  # a stand-in needs its merged patch, at that exact version
            return [Requirement(e.name, e.version, parent=f"{candidate.name} {candidate.version} (as provided by {e.name})")]
        me = f"{candidate.name} {candidate.version}"
        deps = [Requirement(n, r, parent=me) for n, r in sorted((getattr(e, "requires", None) or {}).items())]
        deps += [Requirement(n, r, parent=me, negative=True) for n, r in sorted((getattr(e, "conflicts", None) or {}).items())]
        deps += [Requirement(n, v, parent=me, via=f"{e.name}@{e.version}") for n, v in sorted(provided_by(e).items())]
        return deps


# ---------------------------------------------------------------------------------------------
# Entry point


@dataclass(frozen=True)
class Resolution:
    """What :func:`resolve_stack` chose: the entries to install, and the names merged patches stand in for."""

    entries: list[Any]
    #: provided name -> (its version, the merged patch's entry that provides it)
    provided: dict[str, tuple[str, Any]] = field(default_factory=dict)


def resolve(specs: Sequence[PatchSpec | Requirement], lookup: Lookup, **options: Any) -> list[Any]:
    """Choose one entry per needed name: user specs first (in order), then dependencies.

    The options are :func:`resolve_stack`'s (``base_fingerprint`` is required there).
    """
    return resolve_stack(specs, lookup, **options).entries


def resolve_stack(
    specs: Sequence[PatchSpec | Requirement],
    lookup: Lookup,
    *,
    base_fingerprint: str | None,
    pre: bool = False,
    where: str = "the registry",
    prefer_merged: bool = False,
) -> Resolution:
    """:func:`resolve`, also saying which requested names a merged patch stands in for.

    ``prefer_merged``: a merged patch that provides every requested name it stands in for may be
    chosen instead of the separate patches (without it, only a merged patch the user names, has
    installed, or the registry marks as a replacement is).
    """
    reqs = [s if isinstance(s, Requirement) else Requirement(s.name, s.range.text) for s in specs]
    requested = frozenset(r.name for r in reqs if r.parent is None and r.positive)
    explicit = requested | frozenset(r.name for r in reqs if r.parent == KEPT)
    provider = Provider(lookup, base_fingerprint=base_fingerprint, pre=pre, prefer_merged=prefer_merged,
                        requested=requested, explicit=explicit)
    for r in reqs:
        if r.parent is None and r.positive and not provider.entries(r.name) and not provider.providers(r.name):
            _raise_unknown(r.name, lookup, where)
    resolver = resolvelib.Resolver(provider, resolvelib.BaseReporter())
    try:
        result = resolver.resolve(reqs, max_rounds=MAX_ROUNDS)
    except resolvelib.ResolutionImpossible as exc:
        raise _explain(exc.causes, provider, where) from None
    except resolvelib.ResolutionTooDeep:
        raise ResolutionError(
            f"resolution did not finish within {MAX_ROUNDS} rounds",
            hint="pin exact versions (name@1.2.3) to narrow the search",
        ) from None
    order = [r.name for r in reqs if r.parent is None]
    rank = {n: i for i, n in enumerate(order)}
    provided = {c.name: (c.version, c.entry) for c in result.mapping.values() if c.via is not None}
    for name, (_, merged) in provided.items():  # a merged patch takes the place of the first request it stands in for
        if name in rank:
            rank[merged.name] = min(rank.get(merged.name, len(order)), rank[name])
    chosen = [c for c in result.mapping.values() if not c.absent and c.via is None]
    chosen.sort(key=lambda c: (rank.get(c.name, len(order)), c.name))
    return Resolution([c.entry for c in chosen], provided)


def _raise_unknown(name: str, lookup: Lookup, where: str) -> None:
    names: list[str] = []
    all_names = getattr(lookup, "names", None)
    if callable(all_names):
        names = list(all_names())
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "check the name with `llmpatch search`"
    raise NotFoundError(f"no patch named {name!r} in {where}", hint=hint)


def _explain_provision(causes: Sequence[Any], provider: Provider) -> ResolutionError | None:
    """A clear error when a merged patch and a patch it provides were both asked for (else None)."""
    reqs = [info.requirement for info in causes]
    for via in [r for r in reqs if r.via is not None]:
        others = [r for r in reqs if r.name == via.name and r.positive]
        kept = [r for r in others if r.parent == KEPT]
        if not others:
            continue
        merged = via.via.replace("@", " ")
        merged_name = via.via.split("@")[0]
        why = "is installed" if kept else "is also needed (" + "; ".join(r.describe() for r in others) + ")"
        if kept:
            hint = (f"a merged patch replaces the patches it provides: `llmpatch remove {via.name}` first, then install "
                    f"{merged_name}; or keep the separate patches")
        else:
            hint = f"ask for {merged_name} or for {via.name}, not both"
        return ResolutionError(
            f"{merged} provides {via.name} {via.range} (a merged patch: {via.name}'s effect is trained into it), "
            f"and {via.name} {why}: a stack cannot hold both, the effect would apply twice",
            hint=hint,
        )
    return None


def _explain(causes: Sequence[Any], provider: Provider, where: str, *, limit: int = 8) -> ResolutionError:
    special = _explain_provision(causes, provider)
    if special is not None:
        return special
    by_name: dict[str, list[Requirement]] = {}
    for info in causes:
        by_name.setdefault(info.requirement.name, [])
        if info.requirement not in by_name[info.requirement.name]:
            by_name[info.requirement.name].append(info.requirement)
    lines: list[str] = []
    for name, reqs in by_name.items():
        lines.append(f"{name}: needed as " + "; ".join(r.describe() for r in reqs))
        entries = provider.entries(name)
        if not entries:
            lines.append(f"  no versions of {name} exist in {where}")
        for e in entries[:limit]:
            why = rejection(e, reqs, base_fingerprint=provider.base_fingerprint, pre=provider.pre)
            lines.append(f"  {e.version}: {why or 'fits these ranges, but not together with the other choices'}")
        if len(entries) > limit:
            lines.append(f"  ... and {len(entries) - limit} older versions")
    return ResolutionError(
        "no set of patch versions satisfies the request:\n" + "\n".join(lines),
        hint="relax a range, pass --pre for prereleases, pin a yanked version exactly, or use patches built for this base",
    )
