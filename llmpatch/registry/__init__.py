"""Registries: where vendors publish patches and customers find and fetch them.

``open_registry(url)`` picks the backend from the URL: ``hf://org/index-repo`` is the Hugging
Face Hub, anything else (a path or ``file://``) a local directory registry.
"""

from __future__ import annotations

from llmpatch import paths
from llmpatch.registry.base import Registry, RegistryConfig
from llmpatch.registry.index import Index, IndexEntry

__all__ = ["open_registry", "Registry", "RegistryConfig", "Index", "IndexEntry"]


def open_registry(url: str | None = None) -> Registry:
    """The registry at ``url`` (default: ``llmpatch.paths.default_registry_url()``)."""
    url = paths.canonical_registry(url or paths.default_registry_url())
    if url.startswith("hf://"):
        from llmpatch.registry.hub import HubRegistry

        return HubRegistry(url)
    from llmpatch.registry.local import LocalRegistry

    return LocalRegistry(url)
