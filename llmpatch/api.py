"""The Python API: ``llmpatch.load()``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from llmpatch import base as base_mod
from llmpatch.artifact import Patch, read_patch
from llmpatch.compose import DEFAULT_MAX_VIRTUAL_TOKENS, compose
from llmpatch.runtime import PatchedModel


def load(
    base: str | base_mod.LoadedBase = "default",
    patches: Sequence[str | Path | Patch] = (),
    *,
    dtype: torch.dtype = torch.float32,
    device: str | None = None,
    max_virtual_tokens: int | None = None,
    env: str | Path | None = None,
) -> PatchedModel:
    """Load ``base`` (a spec or a LoadedBase) with ``patches`` applied in the given order.

    Every patch is verified (schema, sha256 of every file, safetensors) and must have been built
    for this exact base (same fingerprint) before anything runs. ``env=`` (a project directory
    or its ``.llmpatch``) loads that environment's pinned base and current stack instead, under
    the environment's virtual-token budget. ``max_virtual_tokens`` defaults to 256.
    """
    if env is not None:
        from llmpatch.env import Environment, find_env

        environment = Environment(find_env(Path(env)))
        base = base if isinstance(base, base_mod.LoadedBase) else environment.base.spec
        patches = [*environment.patch_dirs(), *patches]
        if max_virtual_tokens is None:
            max_virtual_tokens = environment.config.max_virtual_tokens
    if max_virtual_tokens is None:
        max_virtual_tokens = DEFAULT_MAX_VIRTUAL_TOKENS
    loaded_patches = [p if isinstance(p, Patch) else read_patch(p) for p in patches]
    loaded = base if isinstance(base, base_mod.LoadedBase) else base_mod.load(base, dtype=dtype, device=device)
    stack = compose(loaded_patches, loaded.info.to_ref(), max_virtual_tokens=max_virtual_tokens)
    return PatchedModel(loaded, stack)
