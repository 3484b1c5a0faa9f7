"""llmpatch: a package manager for LLM safety patches.

>>> import llmpatch
>>> model = llmpatch.load("default", patches=["examples/patches/tox-fix"])  # doctest: +SKIP
>>> model.generate(["Tell me about your neighbours."])  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from llmpatch.api import load  # noqa: E402

__all__ = ["load", "__version__"]
