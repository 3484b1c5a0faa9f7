"""Composing patches: an ordered stack of patches becomes one prefix.

Order is part of a stack's identity (the paper found the first segment dominates), so the
stack id hashes the ordered list. The total number of virtual tokens is capped, and
``requires``/``conflicts`` declared in manifests are enforced.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from llmpatch.artifact import ADAPTER_WEIGHTS, Patch
from llmpatch.errors import BaseMismatchError, CompositionError
from llmpatch.fingerprint import diff_components
from llmpatch.manifest import BaseRef, Manifest, StackEvidence, short_fp
from llmpatch.versions import VersionRange

if TYPE_CHECKING:  # torch is imported where a tensor is built: list/history must not pay for it
    import torch

#: Default cap on the composed prefix (the paper composes 2 x 50 and ablates up to ~100 per patch).
DEFAULT_MAX_VIRTUAL_TOKENS = 256


def check_base(manifest: Manifest, base: BaseRef) -> None:
    """Raise BaseMismatchError unless ``manifest`` was built for exactly ``base``."""
    built = manifest.base
    if built.fingerprint == base.fingerprint and built.hidden_size == base.hidden_size:
        return
    if built.hidden_size != base.hidden_size:
        why = f"hidden size {built.hidden_size} vs {base.hidden_size}: the patch cannot even be applied"
    else:
        parts = diff_components(built.components, base.components)
        why = f"they differ in {', '.join(parts)}" if parts else "the fingerprints differ"
    raise BaseMismatchError(
        f"patch {manifest.name} {manifest.version} was built for base {built.describe()}, "
        f"but this base is {base.describe()} ({why})",
        hint=f"install a build of {manifest.name} made for {short_fp(base.fingerprint)}, "
        f"or use the base it was built for ({built.id}{'@' + built.revision if built.revision else ''})",
    )


def check_constraints(manifests: Sequence[Manifest]) -> None:
    """Enforce unique names, ``provides``, ``requires`` and ``conflicts`` within a stack.

    A name a merged patch ``provides`` counts as present (at the provided version) for
    ``requires`` and ``conflicts``; the provided patch itself, or a second patch providing the
    same name, may not be in the stack too (its effect would apply twice).
    """
    by_name: dict[str, Manifest] = {}
    for m in manifests:
        if m.name in by_name:
            raise CompositionError(
                f"{m.name} appears twice in the stack ({by_name[m.name].version} and {m.version})",
                hint="a stack holds one version of each patch; remove one",
            )
        by_name[m.name] = m
    provided: dict[str, tuple[str, Manifest]] = {}  # name -> (version, the merged patch providing it)
    for m in manifests:
        for p in m.provides:
            if p.name in by_name:
                have = by_name[p.name]
                raise CompositionError(
                    f"{m.name} {m.version} provides {p.name} {p.version} (a merged patch: {p.name}'s effect is "
                    f"trained into it), and the stack also holds {p.name} {have.version}: its effect would apply twice",
                    hint=f"remove {p.name} (the merged patch replaces it), or remove {m.name} and keep the separate patches",
                )
            if p.name in provided:
                other = provided[p.name][1]
                raise CompositionError(
                    f"{m.name} {m.version} and {other.name} {other.version} both provide {p.name}: "
                    "two merged patches cannot stand in for the same patch",
                    hint=f"remove {m.name} or {other.name}",
                )
            provided[p.name] = (p.version, m)
    for m in manifests:
        for dep, rng in sorted(m.requires.items()):
            if dep not in by_name and dep in provided:
                version, merged = provided[dep]
                if VersionRange.parse(rng).contains(version, include_prerelease=True):
                    continue
                raise CompositionError(
                    f"{m.name} {m.version} requires {dep} {rng}, but the stack's {merged.name} {merged.version} "
                    f"provides {dep} {version}",
                    hint=f"use a merged patch that provides {dep} within {rng}, or the separate {dep} patch",
                )
            have = by_name.get(dep)
            if have is None:
                raise CompositionError(
                    f"{m.name} {m.version} requires {dep} {rng}, which is not in the stack",
                    hint=f"add {dep}@{rng} to the stack",
                )
            if not VersionRange.parse(rng).contains(have.version, include_prerelease=True):
                raise CompositionError(
                    f"{m.name} {m.version} requires {dep} {rng}, but the stack has {dep} {have.version}",
                    hint=f"use a version of {dep} matching {rng}",
                )
        for other, rng in sorted(m.conflicts.items()):
            have = by_name.get(other)
            if have is not None and VersionRange.parse(rng).contains(have.version, include_prerelease=True):
                raise CompositionError(
                    f"{m.name} {m.version} conflicts with {other} {rng}, and the stack has {other} {have.version}",
                    hint=f"remove {other} or {m.name} from the stack",
                )
            if have is None and other in provided and provided[other][1] is not m \
                    and VersionRange.parse(rng).contains(provided[other][0], include_prerelease=True):
                merged = provided[other][1]
                raise CompositionError(
                    f"{m.name} {m.version} conflicts with {other} {rng}, and the stack's {merged.name} {merged.version} "
                    f"provides {other} {provided[other][0]}",
                    hint=f"remove {merged.name} or {m.name} from the stack",
                )


def stack_id(entries: Sequence[tuple[str, str, str]]) -> str:
    """Identity of an ordered stack of (name, version, payload sha256)."""
    h = hashlib.sha256(b"llmpatch-stack-v1\n")
    for name, version, digest in entries:
        h.update(f"{name}@{version}:{digest}\n".encode())
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True)
class PatchStack:
    """An ordered, checked list of patches for one base. Empty means the unpatched base."""

    patches: tuple[Patch, ...]
    base: BaseRef | None = None

    @property
    def num_virtual_tokens(self) -> int:
        return sum(p.manifest.num_virtual_tokens for p in self.patches)

    @property
    def id(self) -> str:
        return stack_id([(p.name, p.version, p.payload_sha256) for p in self.patches])

    def prefix(self, dtype: torch.dtype | None = None) -> torch.Tensor | None:
        """The composed prefix (total_virtual_tokens x hidden; float32 by default), or None for an empty stack."""
        if not self.patches:
            return None
        import torch

        dtype = dtype or torch.float32
        return torch.cat([p.embeddings.to(dtype) for p in self.patches], dim=0)

    def describe(self) -> str:
        return " -> ".join(f"{p.name}@{p.version}" for p in self.patches) or "(no patches)"


def compose(
    patches: Sequence[Patch],
    base: BaseRef | None = None,
    *,
    max_virtual_tokens: int = DEFAULT_MAX_VIRTUAL_TOKENS,
) -> PatchStack:
    """Check and stack ``patches`` in the given order for ``base``."""
    check_stack([p.manifest for p in patches], base, max_virtual_tokens=max_virtual_tokens)
    return PatchStack(tuple(patches), base)


def check_stack(manifests: Sequence[Manifest], base: BaseRef | None = None, *,
                max_virtual_tokens: int = DEFAULT_MAX_VIRTUAL_TOKENS) -> None:
    """Every check :func:`compose` makes, on manifests alone (no tensor is loaded): base, sizes, constraints, budget."""
    if base is not None:
        for m in manifests:
            check_base(m, base)
    sizes = {m.base.hidden_size for m in manifests}
    if len(sizes) > 1:
        raise CompositionError(f"patches target different hidden sizes {sorted(sizes)}; they cannot be stacked")
    check_constraints(manifests)
    total = sum(m.num_virtual_tokens for m in manifests)
    if total > max_virtual_tokens:
        detail = " + ".join(f"{m.name} {m.num_virtual_tokens}" for m in manifests)
        raise CompositionError(
            f"the stack needs {total} virtual tokens ({detail}), over the budget of {max_virtual_tokens}",
            hint="remove a patch, or raise the budget (--max-virtual-tokens) if the base's context allows it",
        )


# -- stack evidence: which stacks a vendor evaluated together ---------------------------------


def _members(manifest: Manifest, evidence: StackEvidence) -> list[tuple[str, str, str | None]]:
    """(name, version, payload sha256) of each patch of a stack entry, the patch itself resolved."""
    own = manifest.files[ADAPTER_WEIGHTS].sha256 if ADAPTER_WEIGHTS in manifest.files else None
    return [(m.name, m.version, own if m.is_self else m.payload_sha256) for m in evidence.order]


def find_evidence(manifests: Sequence[Manifest]) -> tuple[Manifest, StackEvidence] | None:
    """The manifest and stack entry showing that exactly this stack was evaluated together at build
    time: the same patches (names, versions, payload sha256) in the same order. None if no vendor did.

    A single patch (or none) needs no stack evidence: its own ``evals`` cover it, so this returns
    None for it too; callers ask only about stacks of two or more.
    """
    want = [(m.name, m.version, m.files[ADAPTER_WEIGHTS].sha256 if ADAPTER_WEIGHTS in m.files else None)
            for m in manifests]
    for m in manifests:
        for st in m.stacks:
            if _members(m, st) == want:
                return m, st
    return None


def related_evidence(manifests: Sequence[Manifest]) -> list[tuple[Manifest, StackEvidence]]:
    """Stack entries of these manifests whose other patches are all in this stack (same versions and
    payloads), in another order or as a part of it: what a vendor did test, for guidance."""
    have = {(m.name, m.version, m.files[ADAPTER_WEIGHTS].sha256 if ADAPTER_WEIGHTS in m.files else None)
            for m in manifests}
    return [(m, st) for m in manifests for st in m.stacks if set(_members(m, st)) <= have]
