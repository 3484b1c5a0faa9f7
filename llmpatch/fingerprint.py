"""Base-model fingerprints: what a patch is pinned to.

A fingerprint is ``sha256:<hex>`` over three components, each a sha256 of its own:

* ``config``: the architecture fields a soft prompt depends on (class, sizes, layer and head
  counts, RoPE theta, tied embeddings). Only these, not the raw ``config.json``, so that the
  same model saved by two transformers versions keeps its fingerprint.
* ``tokenizer``: the vocabulary (token -> id), special tokens and the chat template, since a
  patch trained on chat-formatted prompts depends on the exact prompt format.
* ``weights``: every tensor of every ``*.safetensors`` file, by name, dtype, shape and bytes,
  in name order (so sharding does not matter). All weights, not just the input embeddings: a
  fine-tune that keeps the embedding matrix but changes the layers would otherwise pass as
  the same base while the patch's effect on it is unknown. sha256 runs at ~1 GB/s, so a 7B
  bf16 base costs ~15 s once; results are cached per file (path, size, mtime), so later
  checks are instant.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from llmpatch import atomic, paths
from llmpatch.util import canonical_json

FINGERPRINT_VERSION = "llmpatch-fingerprint-v1"

_CONFIG_KEYS = (
    "model_type", "hidden_size", "vocab_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "intermediate_size", "head_dim", "tie_word_embeddings",
    "max_position_embeddings",
)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config_component(config: dict[str, Any]) -> str:
    """Fingerprint of the architecture-defining part of a ``config.json`` dict."""
    cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    picked = {k: cfg.get(k) for k in _CONFIG_KEYS}
    rope = cfg.get("rope_parameters") or {}
    picked["rope_theta"] = cfg.get("rope_theta", rope.get("rope_theta") if isinstance(rope, dict) else None)
    picked["architectures"] = config.get("architectures")
    return _sha(canonical_json(picked))


def tokenizer_component(tokenizer: Any) -> str:
    """Fingerprint of a tokenizer's vocabulary, special tokens and chat template."""
    data = {
        "vocab": sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]),
        "special": {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())},
        "chat_template": getattr(tokenizer, "chat_template", None),
    }
    return _sha(canonical_json(data))


def _file_cache_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}".encode()).hexdigest()


def _tensor_digests(path: Path) -> dict[str, str]:
    """sha256 of each tensor (dtype, shape, bytes) in one safetensors file, cached."""
    cache = paths.cache_dir("fingerprints") / f"{_file_cache_key(path)}.json"
    if cache.is_file():
        try:
            return json.loads(cache.read_text())
        except (OSError, json.JSONDecodeError):
            pass
    import torch  # only when hashing: check_base (install, list) needs diff_components, not torch
    from safetensors import safe_open

    out: dict[str, str] = {}
    with safe_open(str(path), framework="pt") as f:
        for name in f.keys():
            t = f.get_tensor(name).contiguous()
            h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.view(-1).view(dtype=torch.uint8).numpy().tobytes() if t.numel() else b"")
            out[name] = h.hexdigest()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(cache, json.dumps(out), durable=False)
    except OSError:
        pass  # a read-only home only costs a re-hash next time
    return out


def weights_component(model_dir: Path) -> str:
    """Fingerprint of every tensor in the ``*.safetensors`` files of ``model_dir``."""
    digests: dict[str, str] = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        digests.update(_tensor_digests(f))
    return _sha(canonical_json(sorted(digests.items())))


def combine(components: dict[str, str]) -> str:
    """The overall fingerprint from its named components."""
    lines = [FINGERPRINT_VERSION] + [f"{k}={components[k]}" for k in ("config", "tokenizer", "weights")]
    return _sha("\n".join(lines).encode())


def diff_components(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """Names of components that differ (empty if unknown on either side)."""
    return [k for k in ("config", "tokenizer", "weights") if k in a and k in b and a[k] != b[k]]
