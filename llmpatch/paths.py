"""Where llmpatch keeps things on disk. Environment variables are read here and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

#: Overrides the llmpatch home (caches, converted models, keys, trusted keys, registries).
HOME_ENV = "LLMPATCH_HOME"
#: Overrides the default registry URL (default: ``<home>/registry``, a local registry).
REGISTRY_ENV = "LLMPATCH_REGISTRY"
#: Selects the environment directory instead of searching upward for ``.llmpatch/``.
ENV_DIR_ENV = "LLMPATCH_ENV"

#: Overrides where converted base models are cached (default ``<home>/models``); tests share one.
MODELS_ENV = "LLMPATCH_MODELS"

ENV_DIRNAME = ".llmpatch"


def home() -> Path:
    """The llmpatch home directory (``$LLMPATCH_HOME`` or ``~/.cache/llmpatch``)."""
    value = os.environ.get(HOME_ENV)
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "llmpatch"


def models_dir() -> Path:
    """Converted base models (e.g. the embedded GGUF default, as safetensors)."""
    value = os.environ.get(MODELS_ENV)
    return Path(value).expanduser() if value else home() / "models"


def cache_dir(kind: str) -> Path:
    """A named cache (``generations``, ``fingerprints``, ``build-data`` ...)."""
    return home() / "cache" / kind


def keys_dir() -> Path:
    """The vendor's signing keys."""
    return home() / "keys"


def trust_dir() -> Path:
    """Trusted public keys and last-seen index versions, per registry."""
    return home() / "trust"


def env_dir_override() -> str | None:
    """``$LLMPATCH_ENV`` as given: the environment directory to use instead of searching upward."""
    return os.environ.get(ENV_DIR_ENV) or None


def new_env_dir() -> Path:
    """Where ``llmpatch init`` creates an environment: ``$LLMPATCH_ENV``, else ``./.llmpatch``."""
    value = os.environ.get(ENV_DIR_ENV)
    return Path(value) if value else Path.cwd() / ENV_DIRNAME


def hf_endpoint() -> str | None:
    """``$HF_ENDPOINT``: the Hugging Face Hub to use (None: huggingface_hub's default)."""
    return os.environ.get("HF_ENDPOINT") or None


def default_registry_url() -> str:
    """The registry used when none is named: ``$LLMPATCH_REGISTRY`` or a local one in the home."""
    return os.environ.get(REGISTRY_ENV) or str(home() / "registry")


#: Test hook for crash-safety tests: SIGKILL the process at the N-th named crash point.
TEST_KILL_AT_ENV = "LLMPATCH_TEST_KILL_AT"


def test_kill_at() -> int | None:
    """The crash point number at which to SIGKILL this process (tests only), or None."""
    value = os.environ.get(TEST_KILL_AT_ENV)
    return int(value) if value and value.strip().isdigit() else None


#: URL schemes a registry location may use (anything else is refused, never read as a path).
REGISTRY_SCHEMES = ("file", "hf")


def canonical_registry(url: str) -> str:
    """One spelling per registry, used to open it and to key its trust and freshness state.

    A local registry becomes its absolute path with symlinks, ``.``/``..`` and trailing slashes
    resolved (``file://`` URLs included); a Hub registry becomes ``hf://org/repo`` with the
    endpoint (when given) lower-cased and without a trailing slash. Any other scheme is refused.
    (Hub ids are case-insensitive; :func:`registry_identity` folds their case for trust state.)

    >>> canonical_registry("hf://Acme/Index/?endpoint=HTTP://Host:8080/")
    'hf://Acme/Index?endpoint=http://host:8080'
    """
    from urllib.parse import parse_qs, unquote, urlparse

    from llmpatch.errors import RegistryError

    text = str(url).strip()
    if not text:
        raise RegistryError("empty registry location", hint="give a directory, file:///PATH or hf://ORG/INDEX-REPO")
    if "\x00" in text:
        raise RegistryError(f"invalid registry location {text!r}")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme and scheme not in REGISTRY_SCHEMES:
        raise RegistryError(f"unsupported registry scheme {scheme + '://'!r} in {text!r}",
                            hint="use a directory, file:///PATH or hf://ORG/INDEX-REPO")
    if scheme == "hf":
        parsed = urlparse(text)
        repo = f"{parsed.netloc}{parsed.path}".strip("/")
        parts = repo.split("/")
        if len(parts) != 2 or not all(parts):
            raise RegistryError(f"invalid Hub registry URL {text!r}: expected hf://ORG/INDEX-REPO",
                                hint="e.g. hf://acme/llmpatch-index")
        out = "hf://" + repo
        endpoint = parse_qs(parsed.query).get("endpoint", [None])[0]
        if endpoint:
            ep = urlparse(endpoint.strip())
            out += f"?endpoint={ep.scheme.lower()}://{ep.netloc.lower()}{ep.path.rstrip('/')}"
        return out
    if scheme == "file":
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise RegistryError(f"file:// URL {text!r} names host {parsed.netloc!r}; only local files are supported",
                                hint="use file:///ABSOLUTE/PATH or a plain path")
        text = unquote(parsed.path)
    return str(Path(text).expanduser().resolve())


def registry_identity(url: str) -> str:
    """The key of a registry's trust and freshness state: its canonical location, Hub ids case-folded."""
    canon = canonical_registry(url)
    if canon.startswith("hf://"):
        repo, sep, query = canon[len("hf://"):].partition("?")
        return "hf://" + repo.lower() + sep + query
    return canon


def silence_third_party_progress_bars() -> None:
    """Default huggingface_hub's (and so transformers') and tqdm's own bars to off: the CLI shows its own.

    Defaults only (a user's explicit setting wins), set before those libraries are imported:
    both read them at import time; transformers' GGUF converter calls tqdm directly.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
