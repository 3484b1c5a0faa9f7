"""Customer environments: a pinned base, an ordered stack of exact patch versions, generations.

>>> # in a project directory, after `llmpatch init --base default && llmpatch install tox-fix`
>>> # spec, dirs = current_stack()        # ('default', [Path('.llmpatch/store/9bc1.../')])
"""

from __future__ import annotations

from pathlib import Path

from llmpatch.env.environment import Environment, find_env
from llmpatch.env.records import EnvConfig, Generation, Installed, LockFile

__all__ = ["Environment", "EnvConfig", "Generation", "Installed", "LockFile", "current_stack", "find_env"]


def current_stack(env_dir: Path | None = None) -> tuple[str, list[Path]]:
    """(pinned base spec, ordered patch directories of the current generation) of an environment."""
    env = Environment(find_env(env_dir))
    return env.base.spec, env.patch_dirs()
