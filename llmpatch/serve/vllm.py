"""The vLLM backend: vLLM serves the base (any scale), llmpatch adds the patch as ``prompt_embeds``.

vLLM started with ``--enable-prompt-embeds`` accepts, on ``/v1/completions``, a ``prompt_embeds``
field: a ``torch.save``d tensor (sequence x hidden), base64-encoded. For each request llmpatch
sends ``[stack prefix ; embeddings of the templated prompt's tokens]`` and relays vLLM's answer in
the OpenAI format with the same stack headers as the local engine. Only the embedding table of the
base is loaded here (read from its safetensors), not the model.

Before serving, the base vLLM runs must be the environment's base: vLLM's ``/v1/models`` names the
directory it loaded (``root``); when that directory is readable here its fingerprint (config,
tokenizer, every weight) must equal the environment's, else serving is refused. A remote vLLM
whose directory is not visible here needs ``check_weights=False`` and the check done on its host
(``llmpatch base show DIR``), see docs/serving.md.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path
from typing import Any, AsyncIterator

import torch

from llmpatch.errors import BaseMismatchError, LlmpatchError
from llmpatch.serve.common import APIError, Params, PromptText, context_length
from llmpatch.serve.stacks import FixedStack, Served, StackBackend, StackWatcher

log = logging.getLogger(__name__)

EMBEDDING_KEYS = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "embeddings.weight")


def tensor_to_base64(t: torch.Tensor) -> str:
    """What vLLM's ``tensor2base64`` does: ``torch.save`` then base64."""
    buf = io.BytesIO()
    torch.save(t.contiguous(), buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def load_embedding_table(model_dir: Path) -> torch.Tensor:
    """The input embedding matrix (vocab x hidden) from a base's safetensors files, not the whole model."""
    from safetensors import safe_open

    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                if key.endswith(EMBEDDING_KEYS) and "position" not in key:
                    return st.get_tensor(key)
    raise LlmpatchError(f"no input embedding table found in {model_dir}",
                        hint="the vLLM engine supports decoder-only models with an embed_tokens-style table")


class VLLMBackend(StackBackend):
    """Relays to a vLLM OpenAI server that was started with ``--enable-prompt-embeds``."""

    engine_name = "vllm"

    def __init__(self, source: StackWatcher | FixedStack, base_info: Any, tokenizer: Any, embeddings: torch.Tensor,
                 config: Any, *, url: str, vllm_model: str | None = None, api_key: str | None = None,
                 timeout: float = 600.0, check_weights: bool = True) -> None:
        import httpx

        self.source = source
        self.info = base_info
        self.tokenizer = tokenizer
        self.embeddings = embeddings.float()
        self.model_id = base_info.id
        self.url = url.rstrip("/")
        if self.url.endswith("/v1"):
            self.url = self.url[:-3]
        self.context_length = context_length(config)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._headers = headers
        self._timeout = timeout
        self.client = httpx.AsyncClient(base_url=self.url, timeout=timeout, headers=headers)
        self.vllm_model, root, max_len = self._probe(vllm_model)
        if max_len:
            self.context_length = min(self.context_length, max_len)
        if check_weights:
            self._check_weights(root)

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def from_env(cls, env_dir: Path, *, url: str, **kw: Any) -> "VLLMBackend":
        from llmpatch import base as base_mod
        from llmpatch.env import Environment

        env = Environment(Path(env_dir))
        info = base_mod.identify(env.base.spec)
        tok, config, emb = _base_parts(info)
        watcher = StackWatcher(env.path, lambda stack: stack.prefix(torch.float32))
        return cls(watcher, info, tok, emb, config, url=url, **kw)

    @classmethod
    def from_stack(cls, base_spec: str, stack: Any, *, url: str, **kw: Any) -> "VLLMBackend":
        from llmpatch import base as base_mod

        info = base_mod.identify(base_spec)
        tok, config, emb = _base_parts(info)
        return cls(FixedStack(stack, stack.prefix(torch.float32)), info, tok, emb, config, url=url, **kw)

    def _probe(self, wanted: str | None) -> tuple[str, str | None, int | None]:
        import httpx

        try:
            r = httpx.get(f"{self.url}/v1/models", headers=self._headers, timeout=30)
            r.raise_for_status()
            data = r.json()["data"]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise LlmpatchError(f"cannot reach vLLM at {self.url} ({exc})",
                                hint="start it with --enable-prompt-embeds (see docs/serving.md) and pass its URL") from None
        ids = [m["id"] for m in data]
        entry = next((m for m in data if m["id"] == wanted), None) if wanted else (data[0] if data else None)
        if entry is None:
            raise LlmpatchError(f"vLLM at {self.url} does not serve {wanted!r} (it serves {ids})",
                                hint="pass --vllm-model with one of those")
        return entry["id"], entry.get("root"), entry.get("max_model_len")

    def _check_weights(self, root: str | None) -> None:
        from llmpatch import base as base_mod

        if not root or not Path(root).is_dir():
            raise BaseMismatchError(
                f"cannot check that vLLM's model ({root!r}) is this environment's base {self.info.fingerprint}: "
                "its directory is not readable here",
                hint="run `llmpatch base show DIR` on the vLLM host and compare, then pass --no-check-weights")
        got = base_mod.identify(str(root))
        if got.fingerprint != self.info.fingerprint:
            raise BaseMismatchError(
                f"vLLM serves {root} with fingerprint {got.fingerprint}, but the environment is pinned to "
                f"{self.info.fingerprint} ({self.info.id}); a patch is only valid on its exact base",
                hint="start vLLM on the pinned base (see `llmpatch base show` for its path and revision)")

    # -- the backend interface --------------------------------------------------------------------

    def token_ids(self, prompt: PromptText) -> list[int]:
        ids = self.tokenizer(prompt.text, add_special_tokens=prompt.add_special_tokens)["input_ids"]
        if not ids:  # what the local runtime does with an empty prompt
            bos = self.tokenizer.bos_token_id
            ids = [bos if bos is not None else self.tokenizer.eos_token_id]
        return ids

    def count_tokens(self, served: Served, prompt: PromptText) -> int:
        return len(self.token_ids(prompt)) + served.stack.num_virtual_tokens

    def prompt_embeds(self, prefix: torch.Tensor | None, prompt: PromptText) -> torch.Tensor:
        """``[prefix ; token embeddings]`` (sequence x hidden), as vLLM's model would embed the tokens."""
        emb = self.embeddings[torch.tensor(self.token_ids(prompt))]
        return emb if prefix is None else torch.cat([prefix.float(), emb], dim=0)

    async def generate(self, served: Served, patched: bool, prompt: PromptText, params: Params) -> AsyncIterator[tuple]:
        embeds = self.prompt_embeds(served.handle if patched else None, prompt)
        body: dict[str, Any] = {
            "model": self.vllm_model, "prompt_embeds": tensor_to_base64(embeds), "max_tokens": params.max_tokens,
            "temperature": params.temperature, "top_p": params.top_p, "stream": True,
            "stream_options": {"include_usage": True}, "skip_special_tokens": True,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.min_tokens:
            body["min_tokens"] = params.min_tokens
        text, finish, n_tokens = "", "stop", 0
        async with self.client.stream("POST", "/v1/completions", json=body) as r:
            if r.status_code != 200:
                detail = (await r.aread()).decode(errors="replace")[:500]
                raise APIError(502 if r.status_code >= 500 else r.status_code, f"vLLM answered {r.status_code}: {detail}",
                               type="server_error" if r.status_code >= 500 else "invalid_request_error")
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    raise APIError(502, f"vLLM: {chunk['error']}", type="server_error")
                for c in chunk.get("choices", []):
                    if c.get("text"):
                        text += c["text"]
                        n_tokens += 1
                        yield ("delta", c["text"])
                    if c.get("finish_reason"):
                        finish = c["finish_reason"]
                if chunk.get("usage"):
                    n_tokens = chunk["usage"].get("completion_tokens", n_tokens)
        yield ("done", finish, n_tokens, text)

    async def aclose(self) -> None:
        await self.client.aclose()


def _base_parts(info: Any) -> tuple[Any, Any, torch.Tensor]:
    """Tokenizer, config and embedding table of an identified base (no model load)."""
    from transformers import AutoConfig, AutoTokenizer

    path = Path(info.path)
    tok = AutoTokenizer.from_pretrained(path)
    config = AutoConfig.from_pretrained(path)
    return tok, config, load_embedding_table(path)
