"""Building patches: recipes, reference policies, training data, trl SFT + DPO, build-time evaluation."""

from __future__ import annotations

from llmpatch.build.builder import BuildResult, build
from llmpatch.build.recipe import Recipe

__all__ = ["BuildResult", "Recipe", "build"]
