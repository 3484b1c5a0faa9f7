"""Building patches (``llmpatch build``): recipes, reference policies, training data, trl SFT + DPO, build-time evaluation."""

from __future__ import annotations

from llmpatch.builder.pipeline import BuildResult, build
from llmpatch.builder.recipe import Recipe

__all__ = ["BuildResult", "Recipe", "build"]
