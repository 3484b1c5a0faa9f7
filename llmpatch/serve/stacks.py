"""What the server serves: the environment's current generation, swapped in whole between requests.

The environment's ``current`` pointer is replaced atomically by ``install``/``remove``/``rollback``.
:class:`StackWatcher` stats it on every request (one ``stat`` call); when it changed, the new
generation's stack is verified, composed and *fully* loaded (prefix cache computed) before one
reference is swapped. A request takes the reference once, at its start, and keeps it: it finishes
on the stack it started with, and no request ever sees a half-loaded stack.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from llmpatch.compose import PatchStack
from llmpatch.serve.common import PromptText, format_chat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """One loaded generation: its number, its stack and the backend's loaded form (``handle``)."""

    generation: int | None
    stack: PatchStack
    handle: Any
    unpatched: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stack_id(self) -> str:
        return self.stack.id

    @property
    def describe(self) -> str:
        return self.stack.describe()

    @property
    def fingerprint(self) -> str:
        """``system_fingerprint``: generation and a short stack id (``llmpatch-g3-1a2b3c4d5e6f``)."""
        gen = f"g{self.generation}" if self.generation is not None else "fixed"
        return f"llmpatch-{gen}-{self.stack_id.split(':', 1)[-1][:12]}"

    def headers(self) -> dict[str, str]:
        """Response headers naming the stack that answered."""
        h = {"x-llmpatch-stack": self.describe, "x-llmpatch-stack-id": self.stack_id}
        if self.generation is not None:
            h["x-llmpatch-generation"] = str(self.generation)
        return h


class StackWatcher:
    """The current :class:`Served` of an environment, reloaded when its ``current`` pointer moves.

    ``load(stack) -> handle`` turns a composed stack into what the backend runs (a
    :class:`~llmpatch.runtime.PatchedModel` with its prefix cache computed, or a prefix tensor).
    """

    def __init__(self, env_dir: Path, load: Callable[[PatchStack], Any], *, unpatched: Any = None) -> None:
        from llmpatch.env import Environment

        self.env = Environment(Path(env_dir))
        self._load = load
        self._unpatched = unpatched
        self._swap_lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._served: Served | None = None
        self.refresh()

    def _pointer_stamp(self) -> tuple[int, int, int]:
        st = os.stat(self.env.path / "current")
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def current(self) -> Served:
        """The stack to answer a request with (reloading first if the environment changed)."""
        try:
            changed = self._pointer_stamp() != self._stamp
        except OSError:
            changed = False  # mid-replace or removed: keep serving what is loaded
        if changed:
            self.refresh()
        assert self._served is not None
        return self._served

    def refresh(self) -> Served:
        """Load the environment's current generation (if new) and swap it in; returns it."""
        with self._swap_lock:
            stamp = self._pointer_stamp()
            if stamp == self._stamp and self._served is not None:
                return self._served
            number = self.env.current_number()
            if self._served is not None and self._served.generation == number:
                self._stamp = stamp
                return self._served
            gen = self.env.generation(number)
            stack = self.env.load_stack(gen)
            handle = self._load(stack)
            served = Served(number, stack, handle, self._unpatched)
            # one reference assignment: readers see the old Served or the new one, never a mix
            self._served, self._stamp = served, stamp
            log.info("serving generation %s: %s", number, stack.describe())
            return served


class FixedStack:
    """A stack that never changes (``llmpatch serve --base B --patch P``, or tests)."""

    def __init__(self, stack: PatchStack, handle: Any, *, unpatched: Any = None) -> None:
        self._served = Served(None, stack, handle, unpatched)

    def current(self) -> Served:
        return self._served


class StackBackend:
    """What every backend shares: the stack it serves now and how it turns a request into a prompt.

    A subclass sets ``source`` (a :class:`StackWatcher` or :class:`FixedStack`) and ``tokenizer``.
    """

    source: "StackWatcher | FixedStack"
    tokenizer: Any

    def current(self) -> Served:
        return self.source.current()

    def prompt(self, *, messages: Sequence[dict] | None = None, text: str | None = None) -> PromptText:
        if messages is not None:
            return PromptText(format_chat(self.tokenizer, messages), add_special_tokens=False)
        return PromptText(text or "", add_special_tokens=True)
