"""Dynamic batching on the local runtime: one worker thread, one model call per batch.

Requests arriving within ``window_s`` of each other (and any that queued while the previous batch
ran) are grouped when they can share a batch: same loaded model (so the same generation's prefix
cache), same tokenisation mode, and compatible decoding (every greedy request batches with every
other; unseeded sampling requests with the same temperature/top_p batch together; a seeded
sampling request runs alone so that its seed reproduces its output). Greedy rows of a padded batch
equal one-at-a-time decoding (tests/test_runtime.py), so batching never changes an answer.

Each request gets events through its ``sink`` (called from the worker thread):
``("delta", text)`` while streaming, then ``("done", finish_reason, n_tokens, text)``, or
``("error", exc)``.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from llmpatch.runtime import GenerationConfig, PatchedModel

log = logging.getLogger(__name__)

Sink = Callable[[tuple], None]


@dataclass
class GenRequest:
    """One completion to produce. ``text`` is already formatted (chat template applied)."""

    model: PatchedModel
    text: str
    add_special_tokens: bool
    max_tokens: int
    sink: Sink
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    min_tokens: int = 0
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def batch_key(self) -> tuple:
        if self.greedy:
            mode: tuple = ("greedy",)
        elif self.seed is not None:
            mode = ("seeded", id(self))  # alone: its seed must reproduce its output
        else:
            mode = ("sample", self.temperature, self.top_p)
        return (id(self.model), self.add_special_tokens, self.min_tokens, mode)


class _Row:
    """Incremental detokenisation, stop strings and finish reason of one request in a batch."""

    def __init__(self, req: GenRequest) -> None:
        self.req = req
        self.tokens: list[int] = []
        self.sent = 0  # characters already sent as deltas
        self.text = ""
        self.finished: str | None = None
        self.hold = max((len(s) for s in req.stop), default=1) - 1

    def push(self, tok: int | None, decode: Callable[[list[int]], str]) -> bool:
        """Add one step's token (None = EOS); returns True when the row is finished now."""
        if self.finished:
            return True
        if self.req.cancelled.is_set():
            self.finished = "cancelled"
            return True
        if tok is None:
            self.finished = "stop"
            return True
        self.tokens.append(tok)
        self.text = decode(self.tokens)
        for s in self.req.stop:
            at = self.text.find(s)
            if at >= 0:
                self.text = self.text[:at]
                self.finished = "stop"
        if not self.finished and len(self.tokens) >= self.req.max_tokens:
            self.finished = "length"
        if not self.finished:
            # hold back an incomplete UTF-8 character and what could be the start of a stop string
            safe = len(self.text.rstrip("\ufffd")) - self.hold
            if safe > self.sent:
                self.req.sink(("delta", self.text[self.sent:safe]))
                self.sent = safe
        return self.finished is not None

    def finish(self) -> None:
        if self.text[self.sent:]:
            self.req.sink(("delta", self.text[self.sent:]))
        self.req.sink(("done", self.finished or "stop", len(self.tokens), self.text))


class BatchingEngine:
    """A queue and a worker thread that runs compatible requests together (see module doc)."""

    def __init__(self, *, max_batch: int = 32, window_s: float = 0.005) -> None:
        self.max_batch = max_batch
        self.window_s = window_s
        self._queue: queue.Queue[GenRequest | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="llmpatch-batcher", daemon=True)
        self._thread.start()
        self.batches_run = 0
        self.largest_batch = 0

    def submit(self, req: GenRequest) -> None:
        self._queue.put(req)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    # -- worker ---------------------------------------------------------------------------------

    def _collect(self) -> list[GenRequest] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = self._queue.get(timeout=left)
                except queue.Empty:
                    break
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(item)
        return batch

    def _work(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            groups: dict[tuple, list[GenRequest]] = {}
            for r in batch:
                groups.setdefault(r.batch_key(), []).append(r)
            for group in groups.values():
                try:
                    self._run(group)
                except Exception as exc:  # noqa: BLE001 - reported to each request, never lost
                    log.exception("generation failed")
                    for r in group:
                        r.sink(("error", exc))

    def _run(self, group: list[GenRequest]) -> None:
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(group))
        first = group[0]
        model = first.model
        cfg = GenerationConfig(
            max_new_tokens=max(r.max_tokens for r in group),
            min_new_tokens=first.min_tokens,
            do_sample=not first.greedy,
            temperature=first.temperature if not first.greedy else 1.0,
            top_p=first.top_p if not first.greedy else 1.0,
            seed=first.seed if first.seed is not None else random.randrange(2**31),
            batch_size=len(group),
        )
        rows = [_Row(r) for r in group]

        def decode(tokens: list[int]) -> str:
            return model.tokenizer.decode(tokens, skip_special_tokens=True)

        def on_step(emitted: list[int | None]) -> list[int]:
            return [i for i, (row, tok) in enumerate(zip(rows, emitted)) if row.push(tok, decode)]

        model.generate_ids([r.text for r in group], cfg, add_special_tokens=first.add_special_tokens,
                           max_new_tokens=[r.max_tokens for r in group], on_step=on_step)
        for row in rows:
            if row.finished is None:  # the runtime stopped the row (its own limit)
                row.finished = "length" if len(row.tokens) >= row.req.max_tokens else "stop"
            row.finish()
