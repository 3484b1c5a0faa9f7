"""The patched model: a frozen base with a composed soft-prompt prefix in front of every request.

The prefix's key/value cache is computed once per loaded stack and reused for every batch
(expanded to the batch size), so a patch costs almost nothing at inference: each request only
attends to ``num_virtual_tokens`` more cached positions.

Prompts are left-padded *after* the prefix: ``[prefix][pad ... pad][prompt tokens]``. The
attention mask hides the pads, and position ids continue from the prefix without counting
pads, so every row sees exactly what it would see alone (and what ``peft`` computes).
"""

from __future__ import annotations

import copy
import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch

from llmpatch.base import LoadedBase
from llmpatch.compose import PatchStack


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. Greedy by default; sampling is seeded and reproducible."""

    max_new_tokens: int = 64
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int = 0
    batch_size: int = 8
    #: how decoding caches keys/values: "static" (preallocated, written in place), "dynamic"
    #: (grown per step) or "auto" (static from batch 8 on); outputs are the same either way
    kv_cache: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


#: ``kv_cache = "auto"`` decodes into a static cache from this batch size on.
STATIC_CACHE_MIN_BATCH = 8


class PatchedModel:
    """A base model with a patch stack applied. ``stack`` may be empty (the unpatched base).

    ``prefix`` (``num_virtual_tokens x hidden``) applies a bare, unsaved prefix instead of a stack:
    a build uses it to compare its checkpoints before writing the chosen one.
    """

    def __init__(self, base: LoadedBase, stack: PatchStack | None = None, *, prefix: torch.Tensor | None = None) -> None:
        self.base = base
        self.model = base.model
        self.tokenizer = base.tokenizer
        if stack is not None and prefix is not None:
            raise ValueError("give a patch stack or a bare prefix, not both")
        self.stack = stack or PatchStack((), base.info.to_ref())
        param = next(self.model.parameters())
        self.device, self.dtype = param.device, param.dtype
        if prefix is not None:
            hidden = self.model.get_input_embeddings().weight.shape[-1]
            if prefix.ndim != 2 or prefix.shape[-1] != hidden:
                raise ValueError(f"a prefix must be num_virtual_tokens x {hidden}, got {tuple(prefix.shape)}")
        prefix = prefix.to(self.dtype) if prefix is not None else self.stack.prefix(self.dtype)
        self.prefix = prefix.to(self.device) if prefix is not None else None
        self._prefix_cache: Any = None
        # transformers 5.2x renamed ``past_key_values`` to ``cache`` (old name deprecated)
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._takes_cache_position = "cache_position" in params  # transformers < 5.2x; later ones drop it
        self._takes_logits_to_keep = "logits_to_keep" in params
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos])
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else next(iter(self.eos_ids))

    # -- identity -------------------------------------------------------------------------------

    @property
    def num_virtual_tokens(self) -> int:
        return 0 if self.prefix is None else int(self.prefix.shape[0])

    @property
    def info(self):
        return self.base.info

    def __repr__(self) -> str:
        return f"PatchedModel(base={self.info.id!r}, stack={self.stack.describe()!r})"

    # -- prompt formatting ----------------------------------------------------------------------

    def format_prompts(self, prompts: Sequence[str], *, chat: bool | None = None, system_prompt: str | None = None) -> list[str]:
        """Apply the chat template (default when the tokenizer has one) or pass text through."""
        use_chat = bool(self.tokenizer.chat_template) if chat is None else chat
        if not use_chat:
            if system_prompt:
                return [f"{system_prompt}\n\n{p}" for p in prompts]
            return list(prompts)
        out = []
        for p in prompts:
            msgs = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": p}]
            out.append(self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
        return out

    def _tokenize(self, texts: Sequence[str], add_special_tokens: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        enc = [self.tokenizer(t, add_special_tokens=add_special_tokens)["input_ids"] for t in texts]
        # an empty prompt still needs one position to predict from: start it with BOS (else EOS)
        start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else next(iter(self.eos_ids))
        enc = [e or [start] for e in enc]
        width = max(1, max(len(e) for e in enc))
        ids = torch.full((len(enc), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for i, e in enumerate(enc):
            if e:
                ids[i, width - len(e):] = torch.tensor(e, dtype=torch.long)
                mask[i, width - len(e):] = 1
        return ids.to(self.device), mask.to(self.device)

    # -- the prefix cache -----------------------------------------------------------------------

    def _prefix_source(self) -> Any:
        """The prefix's key/value cache for one row, computed once per loaded stack (None: no prefix)."""
        if self.prefix is None:
            return None
        if self._prefix_cache is None:
            with torch.no_grad():
                out = self.model(inputs_embeds=self.prefix[None], use_cache=True)
            self._prefix_cache = _output_cache(out)
        return self._prefix_cache

    def _prefix_kv(self, batch: int) -> Any:
        """A fresh dynamic cache holding the prefix's keys/values for ``batch`` rows."""
        src = self._prefix_source()
        if src is None:
            return None
        cache = copy.deepcopy(src)
        if batch > 1:
            cache.batch_repeat_interleave(batch)
        return cache

    def _generation_cache(self, batch: int, max_len: int, kind: str) -> Any:
        """The cache one :meth:`generate_ids` call decodes into, the prefix's keys/values in front.

        ``static``: preallocated for ``max_len`` positions and written in place; attention reads a
        view of the positions written so far (``PreallocatedLayer``), so it neither copies
        nor attends to empty positions. A dynamic cache grows by concatenation, which copies every
        layer's keys and values at each decoding step, so its cost grows with the prefix and the
        batch; allocating costs more than those copies at batch 1. ``auto`` takes ``static`` from
        batch 8 on (see benchmarks/bench_generation.py). Models whose layers are not all full
        attention (sliding windows) always decode dynamically.
        """
        if kind == "auto":
            kind = "static" if batch >= STATIC_CACHE_MIN_BATCH else "dynamic"
        if kind == "static":
            from transformers import StaticCache
            from transformers.cache_utils import Cache, StaticLayer

            kinds = StaticCache(config=self.model.config, max_cache_len=1).layers  # one per layer, unallocated
            if all(type(layer) is StaticLayer for layer in kinds):
                cache = Cache(layers=[_preallocated_layer()(max_cache_len=max_len) for _ in kinds])
                src = self._prefix_source()
                if src is not None:
                    for layer, pre in zip(cache.layers, src.layers):
                        layer.update(pre.keys.expand(batch, -1, -1, -1), pre.values.expand(batch, -1, -1, -1))
                return cache
        elif kind != "dynamic":
            raise ValueError(f"kv_cache must be 'auto', 'static' or 'dynamic', got {kind!r}")
        cache = self._prefix_kv(batch)
        if cache is None:
            from transformers import DynamicCache

            cache = DynamicCache(config=self.model.config)
        return cache

    # -- forward --------------------------------------------------------------------------------

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, cache: Any, past_len: int, *,
                 padded: bool = True, last_only: bool = False) -> Any:
        """Run ``ids`` after ``past_len`` cached positions; ``mask`` covers cached + new positions.

        A token's position is the number of real (unmasked) positions before it, prefix included,
        so left padding does not shift positions. ``padded=False`` promises the mask is all ones:
        it is then left out, so attention takes its unmasked causal path. ``last_only`` computes
        logits for the last position only (the vocabulary projection of a whole prompt is ~20% of
        a prefill on a small model).
        """
        new_len = ids.shape[1]
        if padded:
            pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, -new_len:]
        else:
            pos = torch.arange(past_len, past_len + new_len, device=self.device)[None].expand(ids.shape[0], -1)
        kwargs: dict[str, Any] = {self._cache_kw: cache}
        if self._takes_cache_position:
            kwargs["cache_position"] = torch.arange(past_len, past_len + new_len, device=self.device)
        if last_only and self._takes_logits_to_keep:
            kwargs["logits_to_keep"] = 1
        return self.model(input_ids=ids, attention_mask=mask if padded else None, position_ids=pos, use_cache=True,
                          **kwargs)

    @torch.no_grad()
    def logits(self, texts: Sequence[str], *, cached: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-token logits for every (unpadded, left-aligned-right) token position of raw ``texts``.

        Returns ``(logits, mask)`` with logits of shape (batch, seq, vocab) over the prompt tokens
        only (prefix positions excluded). ``cached=False`` recomputes the prefix in one pass.
        """
        ids, mask = self._tokenize(texts)
        P = self.num_virtual_tokens
        if P == 0:
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
            return out.logits, mask
        full_mask = torch.cat([torch.ones(len(texts), P, dtype=mask.dtype, device=self.device), mask], dim=1)
        if cached:
            out = self._forward(ids, full_mask, self._prefix_kv(len(texts)), P)
            return out.logits, mask
        emb = self.model.get_input_embeddings()(ids)
        inputs = torch.cat([self.prefix[None].expand(len(texts), -1, -1), emb], dim=1)
        pos = (full_mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(inputs_embeds=inputs, attention_mask=full_mask, position_ids=pos)
        return out.logits[:, P:], mask

    @torch.no_grad()
    def next_token_logprobs(self, prompts: Sequence[str], *, chat: bool | None = None, system_prompt: str | None = None,
                            batch_size: int = 16) -> torch.Tensor:
        """Log-probabilities of the first token :meth:`generate` would draw after each prompt.

        Prompts are formatted and tokenized exactly as :meth:`generate` does (chat template or plain
        text, the same special tokens), with the stack's prefix in front. Returns a float32 CPU
        tensor of shape (len(prompts), vocab).
        """
        use_chat = bool(self.tokenizer.chat_template) if chat is None else chat
        texts = self.format_prompts(prompts, chat=use_chat, system_prompt=system_prompt)
        rows = []
        for start in range(0, len(texts), max(1, batch_size)):
            ids, mask = self._tokenize(texts[start : start + batch_size], add_special_tokens=not use_chat)
            B, P = ids.shape[0], self.num_virtual_tokens
            if P:
                mask = torch.cat([torch.ones(B, P, dtype=mask.dtype, device=self.device), mask], dim=1)
            cache = self._prefix_kv(B)
            if cache is None:
                from transformers import DynamicCache

                cache = DynamicCache(config=self.model.config)
            out = self._forward(ids, mask, cache, P, last_only=True)  # left padding: the last position is real
            rows.append(torch.log_softmax(out.logits[:, -1, :].float(), dim=-1).cpu())
        if not rows:
            return torch.zeros((0, self.model.config.vocab_size), dtype=torch.float32)
        return torch.cat(rows)

    # -- generation -----------------------------------------------------------------------------

    def _processors(self, cfg: GenerationConfig):
        from transformers import (
            LogitsProcessorList, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
            TopKLogitsWarper, TopPLogitsWarper,
        )

        procs = LogitsProcessorList()
        if cfg.repetition_penalty != 1.0:
            procs.append(RepetitionPenaltyLogitsProcessor(cfg.repetition_penalty))
        if cfg.do_sample:
            if cfg.temperature != 1.0:
                procs.append(TemperatureLogitsWarper(cfg.temperature))
            if cfg.top_k:
                procs.append(TopKLogitsWarper(cfg.top_k))
            if cfg.top_p < 1.0:
                procs.append(TopPLogitsWarper(cfg.top_p))
        return procs

    @torch.no_grad()
    def generate_ids(
        self,
        texts: Sequence[str],
        cfg: GenerationConfig,
        *,
        add_special_tokens: bool = True,
        max_new_tokens: Sequence[int] | None = None,
        on_step: Callable[[list[int | None]], Iterable[int] | None] | None = None,
    ) -> list[list[int]]:
        """Generate token ids for already-formatted texts, one batch (no reordering).

        ``max_new_tokens`` (one per row) caps rows below ``cfg.max_new_tokens``. ``on_step`` is
        called after every step with each row's new token (``None`` once a row is finished, EOS
        included as ``None``) and may return the indices of rows to stop now (a stop string was
        seen, the client went away); the server streams and batches through it.
        """
        ids, mask = self._tokenize(texts, add_special_tokens)
        B, P = ids.shape[0], self.num_virtual_tokens
        limits = [min(cfg.max_new_tokens, int(m)) for m in max_new_tokens] if max_new_tokens is not None else [cfg.max_new_tokens] * B
        if P:
            mask = torch.cat([torch.ones(B, P, dtype=mask.dtype, device=self.device), mask], dim=1)
        cache = self._generation_cache(B, P + ids.shape[1] + max(limits, default=0), cfg.kv_cache)
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        procs = self._processors(cfg)
        history = ids
        # No padding in the batch: no mask at all, so attention takes its plain causal path (what
        # transformers' generate does); positions are then simply past + i.
        padded = not bool(mask.all())
        out = self._forward(ids, mask, cache, P, padded=padded, last_only=True)
        done = [limit <= 0 for limit in limits]
        result: list[list[int]] = [[] for _ in range(B)]
        past = P + ids.shape[1]
        eos = torch.tensor(sorted(self.eos_ids), device=self.device)
        pad = torch.full((B,), self.pad_id, dtype=torch.long, device=self.device)
        step = 0
        while not all(done):
            scores = out.logits[:, -1, :].float()
            if procs:
                scores = procs(history, scores)
            if step < cfg.min_new_tokens:
                scores[:, eos] = float("-inf")
            if cfg.do_sample:
                probs = torch.softmax(scores, dim=-1).cpu()
                nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1).to(self.device)
            else:
                nxt = scores.argmax(dim=-1)
            toks = nxt.tolist()
            emitted: list[int | None] = [None] * B
            for i, tok in enumerate(toks):
                if done[i]:
                    continue
                if tok in self.eos_ids:
                    done[i] = True
                else:
                    result[i].append(tok)
                    emitted[i] = tok
                    done[i] = len(result[i]) >= limits[i]
            if on_step is not None:
                for i in on_step(emitted) or ():
                    done[i] = True
            step += 1
            if all(done):
                break
            nxt = torch.where(torch.tensor(done, device=self.device), pad, nxt)
            if procs:
                history = torch.cat([history, nxt[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            out = self._forward(nxt[:, None], mask, _output_cache(out), past, padded=padded)
            past += 1
        return result

    def generate(
        self,
        prompts: Sequence[str],
        *,
        chat: bool | None = None,
        system_prompt: str | None = None,
        config: GenerationConfig | None = None,
        progress: Callable[[int], None] | None = None,
        on_token: Callable[[int, int], None] | None = None,
        **overrides: Any,
    ) -> list[str]:
        """Generate a completion for each prompt, in batches sorted by length; order preserved.

        ``progress(n)`` is called as prompts finish (n of them; within a batch, as each ends);
        ``on_token(prompt_index, token_id)`` for each generated token (to stream text).
        """
        cfg = config or GenerationConfig()
        if overrides:
            cfg = GenerationConfig(**{**cfg.to_dict(), **overrides})
        use_chat = bool(self.tokenizer.chat_template) if chat is None else chat
        texts = self.format_prompts(prompts, chat=use_chat, system_prompt=system_prompt)
        special = not use_chat  # a chat template already wrote the special tokens
        lengths = [len(self.tokenizer(t, add_special_tokens=special)["input_ids"]) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        outputs: list[str] = [""] * len(texts)
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            batch_cfg = GenerationConfig(**{**cfg.to_dict(), "seed": cfg.seed + start})
            ended: set[int] = set()

            def hook(emitted: list[int | None], idx: list[int] = idx, ended: set[int] = ended) -> None:
                for row, tok in enumerate(emitted):
                    if tok is not None:
                        if on_token:
                            on_token(idx[row], tok)
                    elif row not in ended:  # None: the row has finished (EOS or its token budget)
                        ended.add(row)
                        if progress:
                            progress(1)

            ids = self.generate_ids([texts[i] for i in idx], batch_cfg, add_special_tokens=special,
                                    on_step=hook if (progress or on_token) else None)
            for i, toks in zip(idx, ids):
                outputs[i] = self.tokenizer.decode(toks, skip_special_tokens=True)
            if progress and len(idx) > len(ended):
                progress(len(idx) - len(ended))  # rows that ran to max_new_tokens on the last step
        return outputs


@functools.lru_cache(maxsize=None)
def _preallocated_layer() -> type:
    """The :class:`PreallocatedLayer` class (made on first use: transformers loads lazily)."""
    from transformers.cache_utils import StaticLayer

    class PreallocatedLayer(StaticLayer):
        """transformers' ``StaticLayer`` (keys/values preallocated, written in place) whose attention
        reads a view of the positions written so far, as a dynamic cache would, with no copy.

        The plain static layer returns its whole buffer, so every step attends over all
        ``max_cache_len`` positions (the empty ones masked) and needs a mask even when no row is
        padded. Not marked compileable: its shapes change every step.
        """

        is_compileable = False

        def __init__(self, max_cache_len: int, **kwargs: Any) -> None:
            super().__init__(max_cache_len=max_cache_len, **kwargs)
            self.written = 0

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
            keys, values = super().update(key_states, value_states, *args, **kwargs)
            self.written += key_states.shape[-2]
            return keys[:, :, : self.written], values[:, :, : self.written]

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.written + query_length, 0

        def get_seq_length(self) -> int:
            return self.written

    return PreallocatedLayer


def _output_cache(out: Any) -> Any:
    """The key/value cache of a model output, under its old or new attribute name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values
