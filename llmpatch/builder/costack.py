"""Composition-aware builds: the co-patches a new patch is trained and evaluated with.

A recipe's ``[compose]`` names the patches the new one will be stacked with (``with``, in stack
order) and where the new one goes (``position``: ``after`` them, ``before`` them, ``both``, or
``any``: alone or in either order).
Then, exactly as ``llmpatch`` composes a stack at run time (``compose.PatchStack.prefix``: the
patches' prefixes concatenated in order, positions counting from the first virtual token):

* **M, the deployed model**, is the customer's stack *without* the new patch: the base with the
  co-patches. It writes the rejected side of the DPO pairs and the utility anchor's answers, and
  the self-reference M' is that stack with its safety system prompt. So the new patch learns to
  improve on what the customer runs today, not on a base nobody runs, and the everyday answers it
  keeps are those of the co-patched model (it must not undo the co-patches' work).
* **Training**: during SFT and DPO the co-patches' prefixes sit in every forward pass, frozen, in
  front of or behind the trainable prefix (:class:`CoPrefixHook`). The DPO reference goes through
  the same forward, so it sees the same stack with the frozen SFT prefix (``dpo.reference = "sft"``)
  or the co-patches alone (``"base"``). With ``position = "both"`` each optimizer step draws the
  order from the train seed and the step number, so a resumed build draws the same orders. With
  ``position = "any"`` a step may also draw ``alone`` (no co-prefix in that step's forward passes):
  the patch is trained for a customer who installs it without the co-patches, too. M stays the
  co-stacked model for every step (its answers are the targets and rejected samples of all three).
* **Selection and evaluation**: checkpoints are scored in every order trained for; the written
  patch is evaluated alone (its ``evals``) and in each trained order, and each stack's evidence
  (names, versions, payload sha256, order and the whole stack's evals) goes into the manifest's
  ``stacks``.

Co-patches come from a registry (``NAME@RANGE``, newest non-yanked version for this base) or from
directories, are verified completely (``read_patch``) and must be built for exactly the recipe's
base: anything wrong fails before a model is loaded, and nothing is written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from llmpatch import paths
from llmpatch.artifact import Patch, read_patch
from llmpatch.builder.recipe import Recipe, is_patch_dir_entry
from llmpatch.compose import DEFAULT_MAX_VIRTUAL_TOKENS, PatchStack, check_base, check_constraints
from llmpatch.errors import BaseMismatchError, LlmpatchError, RecipeError
from llmpatch.manifest import BaseRef, StackMember

#: Suites that measure a domain, for evaluating a stack on its co-patches' domains too.
DOMAIN_SUITES = {"toxicity": ("toxicity",), "gender_bias": ("gender",), "gender": ("gender",),
                 "harmfulness": ("harmfulness", "over_refusal")}


@dataclass(frozen=True)
class CoStack:
    """The co-patches of a composition-aware build, verified, in ``compose.with`` order."""

    patches: tuple[Patch, ...]
    #: where each came from: a directory, or ``registry URL`` + spec
    sources: tuple[str, ...]
    position: str = "after"

    @property
    def orders(self) -> tuple[str, ...]:
        """The stack orders evaluated (manifest ``stacks``): ``after`` (co-patches first), ``before``, or both."""
        return ("after", "before") if self.position in ("both", "any") else (self.position,)

    @property
    def trained_orders(self) -> tuple[str, ...]:
        """The orders trained for and scored in selection: :attr:`orders`, plus ``alone`` for ``any``."""
        return ("alone", *self.orders) if self.position == "any" else self.orders

    @property
    def num_virtual_tokens(self) -> int:
        return sum(p.manifest.num_virtual_tokens for p in self.patches)

    def prefix(self) -> torch.Tensor:
        """The co-patches' composed prefix (float32), as the runtime builds it."""
        return torch.cat([p.embeddings.float() for p in self.patches], dim=0)

    def stack(self, base: BaseRef | None = None) -> PatchStack:
        """The customer's stack without the new patch: what M, the deployed model, runs."""
        return PatchStack(self.patches, base)

    def arrange(self, new: torch.Tensor, order: str) -> torch.Tensor:
        """The whole stack's prefix with ``new`` in ``order`` (``after``: co-patches first; ``alone``: ``new``)."""
        if order == "alone":
            return new
        co = self.prefix().to(new.device, new.dtype)
        return torch.cat([co, new] if order == "after" else [new, co], dim=0)

    def patch_dirs(self, new_dir: Path, order: str) -> list[Path]:
        """Patch directories of the stack in ``order`` (for ``run_suites``)."""
        co = [p.path for p in self.patches]
        return [*co, Path(new_dir)] if order == "after" else [Path(new_dir), *co]

    def members(self, name: str, version: str, order: str) -> tuple[StackMember, ...]:
        """The stack in ``order`` as the manifest's ``stacks`` records it (the new patch marked self)."""
        co = [StackMember(p.name, p.version, p.payload_sha256) for p in self.patches]
        me = StackMember(name, version)
        return tuple([*co, me] if order == "after" else [me, *co])

    def key(self) -> list[Any]:
        """What identifies the co-stack in cache keys: exact patches and position."""
        return [[p.name, p.version, p.payload_sha256] for p in self.patches] + [self.position]

    def describe(self) -> dict[str, Any]:
        """What the manifest's ``build.compose`` records."""
        return {"with": [{"name": p.name, "version": p.version, "payload_sha256": p.payload_sha256,
                          "num_virtual_tokens": p.manifest.num_virtual_tokens, "source": src}
                         for p, src in zip(self.patches, self.sources)],
                "position": self.position, "orders": list(self.orders),
                "deployed_model": "the base with the co-patches (the customer's stack without the new patch): "
                                  "rejected samples, utility anchors and the self-reference M'"}

    def eval_suites(self, recipe: Recipe) -> list[str]:
        """Suites run on each stack: ``compose.suites``, else the recipe's plus the co-patches' domains'."""
        if recipe.compose is not None and recipe.compose.suites:
            return list(recipe.compose.suites)
        out = list(recipe.eval.suites)
        for p in self.patches:
            for d in p.manifest.domains:
                out += [s for s in DOMAIN_SUITES.get(d, ()) if s not in out]
        return out


# -- resolving the co-patches -------------------------------------------------------------------


def _fetch(registry: Any, name: str, version: str, manifest_sha256: str) -> Path:
    """A verified copy of a registry version, cached by its manifest sha256 (fetched once)."""
    digest = manifest_sha256.split(":", 1)[-1]
    dest = paths.cache_dir("compose-patches") / digest
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}.tmp-", dir=dest.parent))
    try:
        registry.fetch(name, version, tmp / "patch")  # verified against the index (and signatures, if trusted)
        os.replace(tmp / "patch", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _from_registry(entry: str, url: str, base: BaseRef) -> tuple[Path, str]:
    """Resolve ``NAME@RANGE`` to the newest non-yanked version built for ``base`` (an exact pin may be yanked)."""
    from llmpatch.registry import open_registry
    from llmpatch.versions import PatchSpec

    spec = PatchSpec.parse(entry)
    reg = open_registry(url)
    versions = reg.index().versions(spec.name)
    if not versions:
        reg.index().get(spec.name, "0.0.0")  # raises NotFoundError naming similar patches
    for_base = [e for e in versions if e.base_fingerprint == base.fingerprint]
    ok = [e.version for e in for_base if spec.range.contains(e.version, include_prerelease=spec.range.is_exact)
          and (not e.yanked or spec.range.is_exact)]
    best = spec.range.best(ok, include_prerelease=spec.range.is_exact)
    if best is None:
        listed = ", ".join(f"{e.version}{' (yanked)' if e.yanked else ''}"
                           f"{'' if e.base_fingerprint == base.fingerprint else ' (another base)'}" for e in versions)
        raise RecipeError(f"no version of {spec.name} in registry {reg.url} matches {str(spec.range)!r} for base "
                          f"{base.describe()} (versions: {listed})",
                          hint=f"widen the range, publish a build of {spec.name} for this base, or give its directory")
    chosen = next(e for e in for_base if e.version == best)
    return _fetch(reg, chosen.name, chosen.version, chosen.manifest_sha256), f"{reg.url} {spec.name}@{best}"


def resolve(recipe: Recipe, base: BaseRef) -> CoStack | None:
    """The recipe's co-patches, verified and checked against ``base`` and the patch being built (None without ``[compose]``).

    Fails (RecipeError, BaseMismatchError) before any model is loaded: a co-patch that is missing,
    damaged, built for another base, the patch itself, or that breaks the stack's ``requires``/
    ``conflicts`` or virtual-token budget.
    """
    comp = recipe.compose
    if comp is None:
        return None
    patches: list[Patch] = []
    sources: list[str] = []
    url = comp.registry or paths.default_registry_url()
    for i, entry in enumerate(comp.with_):
        where = f"{recipe.source}: compose.with[{i}] {entry!r}"
        try:
            if is_patch_dir_entry(entry):
                path, src = Path(entry).expanduser(), str(entry)
            else:
                path, src = _from_registry(entry, url, base)
            patch = read_patch(path)
            check_base(patch.manifest, base)
        except BaseMismatchError as exc:
            raise BaseMismatchError(f"{where}: {exc.message}",
                                    hint="a composition-aware build trains with co-patches made for its own base "
                                    f"({base.describe()}); use a build of that patch for this base. Nothing was "
                                    "generated or written") from None
        except LlmpatchError as exc:
            raise type(exc)(f"{where}: {exc.message}", hint=exc.hint) from None
        m = patch.manifest
        if m.name == recipe.patch.name:
            raise RecipeError(f"{where} is {m.id}, the patch being built",
                              hint="list the patches it will be stacked with, not itself")
        patches.append(patch)
        sources.append(src)
    manifests = [p.manifest for p in patches]
    try:
        check_constraints(manifests)
    except LlmpatchError as exc:
        raise RecipeError(f"{recipe.source}: compose.with: {exc.message}", hint=exc.hint) from None
    names = {m.name: m for m in manifests}
    for other in sorted(set(recipe.patch.conflicts or {}) & set(names)):
        raise RecipeError(f"{recipe.source}: patch.conflicts names {other}, which compose.with stacks it with",
                          hint=f"remove {other} from compose.with or from patch.conflicts")
    total = sum(m.num_virtual_tokens for m in manifests) + recipe.prefix.num_virtual_tokens
    if total > DEFAULT_MAX_VIRTUAL_TOKENS:
        raise RecipeError(f"{recipe.source}: the stack needs {total} virtual tokens, over the default budget of "
                          f"{DEFAULT_MAX_VIRTUAL_TOKENS}", hint="use fewer co-patches or a shorter prefix")
    return CoStack(tuple(patches), tuple(sources), comp.position)


# -- training: the frozen co-prefix inside every forward pass -----------------------------------


def order_for_step(seed: int, step: int, choices: Sequence[str] = ("after", "before")) -> str:
    """The stack order of one optimizer step under ``position = "both"`` or ``"any"``: seeded, resumable.

    >>> [order_for_step(0, s) for s in range(6)] == [order_for_step(0, s) for s in range(6)]
    True
    >>> sorted({order_for_step(0, s, ("alone", "after", "before")) for s in range(30)})
    ['after', 'alone', 'before']
    """
    return choices[hashlib.sha256(f"llmpatch-compose:{seed}:{step}".encode()).digest()[0] % len(choices)]


@dataclass
class CoPrefixHook:
    """Puts a frozen co-prefix into every forward pass of a training model's backbone.

    peft's prompt tuning hands the backbone ``[P; x]`` as ``inputs_embeds`` (or ``input_ids``
    alone while the adapter is disabled, as for trl's base-model reference). A forward pre-hook on
    the backbone inserts the co-prefix block in front of that (``after``: ``[co; P; x]``) or right
    behind the trainable prefix (``before``: ``[P; co; x]``), extends the attention mask with ones
    and shifts explicit positions, so every token sees what it sees at run time. A forward hook
    takes the co-prefix positions out of the hidden states again: the language-model head, the
    losses and trl's slicing see the shapes they expect. The co-prefix is a plain tensor, not a
    parameter: no optimizer, weight decay or checkpoint ever touches it. With ``order = "alone"``
    the hook leaves the forward pass as it is (the patch trained without its co-patches).
    """

    co: torch.Tensor
    new_tokens: int
    order: str = "after"
    counts: dict[str, int] = field(default_factory=dict)
    _pending: list[tuple[int, int] | None] = field(default_factory=list)
    _handles: list[Any] = field(default_factory=list)

    def attach(self, model: Any) -> "CoPrefixHook":
        """Hook the backbone of ``model`` (a PeftModel or a causal LM)."""
        lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        backbone = lm.base_model  # what the causal LM head (and trl's fused head) calls
        self.co = self.co.detach().clone()
        self._handles = [backbone.register_forward_pre_hook(self._pre, with_kwargs=True),
                         backbone.register_forward_hook(self._post, with_kwargs=True)]
        return self

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _pre(self, module: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        if args:  # input_ids given positionally: make it a keyword like the rest
            kwargs = {"input_ids": args[0], **kwargs}
            args = ()
        past = kwargs.get("past_key_values", kwargs.get("cache"))
        if self.order == "alone":
            self.counts["alone"] = self.counts.get("alone", 0) + 1
            self._pending.append(None)
            return args, kwargs
        if past is not None and getattr(past, "get_seq_length", lambda: 0)() > 0:
            self._pending.append(None)  # a decoding step: the prefix is in the cache already
            return args, kwargs
        embeds = kwargs.get("inputs_embeds")
        has_prefix = embeds is not None  # peft concatenated its prefix; a disabled adapter passes input_ids
        if embeds is None:
            embeds = module.get_input_embeddings()(kwargs["input_ids"])
        off = self.new_tokens if (self.order == "before" and has_prefix) else 0
        if has_prefix and embeds.shape[1] < self.new_tokens:
            raise LlmpatchError(f"a training batch of {embeds.shape[1]} positions lacks the {self.new_tokens}-token prefix")
        b, c = embeds.shape[0], self.co.shape[0]
        co = self.co.to(embeds.device, embeds.dtype)[None].expand(b, -1, -1)
        kwargs["inputs_embeds"] = torch.cat([embeds[:, :off], co, embeds[:, off:]], dim=1)
        kwargs["input_ids"] = None
        mask = kwargs.get("attention_mask")
        if mask is not None:
            if mask.dim() != 2:
                raise LlmpatchError("composition-aware training needs a 2-D attention mask")
            ones = torch.ones(b, c, dtype=mask.dtype, device=mask.device)
            kwargs["attention_mask"] = torch.cat([mask[:, :off], ones, mask[:, off:]], dim=1)
        pos = kwargs.get("position_ids")
        if pos is not None:
            start = pos[:, off - 1:off] + 1 if off else torch.zeros_like(pos[:, :1])
            mid = start + torch.arange(c, device=pos.device)[None]
            kwargs["position_ids"] = torch.cat([pos[:, :off], mid, pos[:, off:] + c], dim=1)
        if kwargs.get("cache_position") is not None:
            n = kwargs["inputs_embeds"].shape[1]
            kwargs["cache_position"] = torch.arange(n, device=embeds.device)
        self.counts[self.order] = self.counts.get(self.order, 0) + 1
        self._pending.append((off, c))
        return args, kwargs

    def _post(self, module: Any, args: tuple, kwargs: dict[str, Any], output: Any) -> Any:
        span = self._pending.pop() if self._pending else None
        if span is None:
            return output
        off, c = span

        def cut(h: torch.Tensor) -> torch.Tensor:
            return torch.cat([h[:, :off], h[:, off + c:]], dim=1)

        if isinstance(output, tuple):
            return (cut(output[0]), *output[1:])
        output.last_hidden_state = cut(output.last_hidden_state)
        if getattr(output, "hidden_states", None) is not None:
            output.hidden_states = tuple(cut(h) for h in output.hidden_states)
        return output


def order_callback(hook: CoPrefixHook, seed: int, choices: Sequence[str] = ("after", "before")) -> Any:
    """A trainer callback that draws each optimizer step's stack order (``position = "both"``/``"any"``)."""
    from transformers import TrainerCallback

    class _Order(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # noqa: D401
            hook.order = order_for_step(seed, state.global_step, choices)

    return _Order()


def attach(trainer: Any, costack: CoStack, recipe: Recipe) -> CoPrefixHook:
    """Put the co-prefix into ``trainer``'s model (and its DPO reference, which shares the forward)."""
    hook = CoPrefixHook(costack.prefix(), recipe.prefix.num_virtual_tokens, costack.orders[0]).attach(trainer.model)
    if costack.position in ("both", "any"):
        trainer.add_callback(order_callback(hook, recipe.seeds.train, costack.trained_orders))
    return hook


def check_untouched(hook: CoPrefixHook, costack: CoStack) -> None:
    """After a stage: the co-prefix the model saw is still bit-identical to the co-patches' payloads."""
    if not torch.equal(hook.co.cpu(), costack.prefix()):
        raise LlmpatchError("a co-patch's prefix changed during training",
                            hint="this is a bug in llmpatch; the co-patches on disk are untouched")

