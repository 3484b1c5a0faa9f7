"""llmpatch: a package manager for LLM safety patches.

>>> import llmpatch
>>> model = llmpatch.load("default", patches=["examples/patches/tox-fix"])  # doctest: +SKIP
>>> model.generate(["Tell me about your neighbours."])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["load", "__version__"]

if TYPE_CHECKING:
    from llmpatch.api import load


def __getattr__(name: str) -> Any:
    # Lazy: ``import llmpatch`` (and CLI commands such as search) must not pay for importing torch.
    if name == "load":
        from llmpatch.api import load

        return load
    raise AttributeError(f"module 'llmpatch' has no attribute {name!r}")
