"""The Python API: ``llmpatch.load()``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from llmpatch import base as base_mod
from llmpatch.artifact import Patch
from llmpatch.loading import load_patched
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
    return load_patched(base, patches, dtype=dtype, device=device, max_virtual_tokens=max_virtual_tokens)
