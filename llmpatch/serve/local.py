"""The local backend: llmpatch's own runtime, dynamic batching, hot-swapped generations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator

from llmpatch.serve.batching import BatchingEngine, GenRequest
from llmpatch.serve.common import Params, PromptText, context_length
from llmpatch.serve.stacks import FixedStack, Served, StackBackend, StackWatcher


class LocalBackend(StackBackend):
    """Serves an environment's current generation (or a fixed stack) with :class:`PatchedModel`."""

    engine_name = "local"

    def __init__(self, source: StackWatcher | FixedStack, base_model: Any, *, max_batch: int = 32,
                 window_s: float = 0.005) -> None:
        self.source = source
        self.base = base_model  # LoadedBase
        self.tokenizer = base_model.tokenizer
        self.model_id = base_model.info.id
        self.context_length = context_length(base_model.model.config)
        self.engine = BatchingEngine(max_batch=max_batch, window_s=window_s)

    @classmethod
    def from_env(cls, env_dir: Path, **kw: Any) -> "LocalBackend":
        """Load the environment's pinned base once and watch its generations."""
        from llmpatch import base as base_mod
        from llmpatch.env import Environment
        from llmpatch.runtime import PatchedModel

        env = Environment(Path(env_dir))
        loaded = base_mod.load(env.base.spec)
        if loaded.info.fingerprint != env.base_ref.fingerprint:
            from llmpatch.errors import BaseMismatchError

            raise BaseMismatchError(
                f"base {env.base.spec!r} now loads as {loaded.info.fingerprint}, the environment is pinned to "
                f"{env.base_ref.fingerprint}", hint="re-create the environment with `llmpatch init --force`")

        def load(stack):
            model = PatchedModel(loaded, stack)
            model._prefix_kv(1)  # compute the prefix cache now, before the swap
            return model

        watcher = StackWatcher(env.path, load, unpatched=PatchedModel(loaded))
        return cls(watcher, loaded, **kw)

    @classmethod
    def from_model(cls, model: Any, **kw: Any) -> "LocalBackend":
        """Serve one already loaded :class:`PatchedModel` (a fixed stack)."""
        from llmpatch.runtime import PatchedModel

        model._prefix_kv(1)
        return cls(FixedStack(model.stack, model, unpatched=PatchedModel(model.base)), model.base, **kw)

    # -- the backend interface --------------------------------------------------------------------

    def count_tokens(self, served: Served, prompt: PromptText) -> int:
        n = len(self.tokenizer(prompt.text, add_special_tokens=prompt.add_special_tokens)["input_ids"])
        return max(1, n) + served.stack.num_virtual_tokens

    async def generate(self, served: Served, patched: bool, prompt: PromptText, params: Params) -> AsyncIterator[tuple]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        model = served.handle if patched else served.unpatched
        req = GenRequest(model=model, text=prompt.text, add_special_tokens=prompt.add_special_tokens,
                         max_tokens=params.max_tokens, stop=params.stop, temperature=params.temperature,
                         top_p=params.top_p, seed=params.seed, min_tokens=params.min_tokens,
                         sink=lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev))
        self.engine.submit(req)
        try:
            while True:
                ev = await events.get()
                if ev[0] == "error":
                    raise ev[1]
                yield ev
                if ev[0] == "done":
                    return
        finally:
            req.cancelled.set()  # the client went away: the worker drops the row at its next step

    async def aclose(self) -> None:
        self.engine.close()
