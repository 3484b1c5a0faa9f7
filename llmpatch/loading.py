"""Loading a base with an ordered stack of patches: what ``llmpatch.load`` does without an environment.

Below the environment layer, so that evaluation and builds (which never read an environment)
can load a patched model without importing the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from llmpatch import base as base_mod
from llmpatch.artifact import Patch, read_patch
from llmpatch.compose import DEFAULT_MAX_VIRTUAL_TOKENS, compose
from llmpatch.runtime import PatchedModel


def load_patched(
    base: str | base_mod.LoadedBase = "default",
    patches: Sequence[str | Path | Patch] = (),
    *,
    dtype: torch.dtype = torch.float32,
    device: str | None = None,
    max_virtual_tokens: int | None = None,
) -> PatchedModel:
    """``base`` (a spec or a LoadedBase) with ``patches`` applied in order, each verified first."""
    loaded_patches = [p if isinstance(p, Patch) else read_patch(p) for p in patches]
    loaded = base if isinstance(base, base_mod.LoadedBase) else base_mod.load(base, dtype=dtype, device=device)
    budget = DEFAULT_MAX_VIRTUAL_TOKENS if max_virtual_tokens is None else max_virtual_tokens
    stack = compose(loaded_patches, loaded.info.to_ref(), max_virtual_tokens=budget)
    return PatchedModel(loaded, stack)
