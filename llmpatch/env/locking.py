"""The environment lock: one writer at a time, a clear message while waiting, stale owners noticed.

``filelock`` takes an OS lock (``fcntl.flock``) on ``.llmpatch/lock``; the OS drops it when the
holder dies, so a killed process never blocks others. Next to it, ``lock.owner`` names the
holder (pid, host, command, since) for the "waiting for lock held by pid ..." message; when a
new holder finds an owner file left by a dead process, the previous run was interrupted and the
environment is recovered (stray temp files removed, half-made generations dropped).
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import filelock

from llmpatch import atomic
from llmpatch.errors import LlmpatchError, LockTimeoutError

LOCK_NAME = "lock"
OWNER_NAME = "lock.owner"
#: How long to wait for another llmpatch process by default (seconds).
#: Longest wait for the environment lock that is accepted (one day).
MAX_TIMEOUT = 86400.0
DEFAULT_TIMEOUT = 120.0
#: How often to repeat "still waiting" (seconds).
NOTIFY_EVERY = 10.0


@dataclass(frozen=True)
class Owner:
    """Who holds (or last held) an environment's lock."""

    pid: int
    host: str
    command: str
    since: float

    def alive(self) -> bool:
        """True when the owner process still runs (always assumed for another host)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def describe(self) -> str:
        ago = max(0.0, time.time() - self.since)
        return f"pid {self.pid} on {self.host} ({self.command!r}, for {ago:.0f}s)"


def read_owner(env_dir: Path) -> Owner | None:
    """The recorded lock owner, or None."""
    try:
        d = json.loads((env_dir / OWNER_NAME).read_text())
        return Owner(int(d["pid"]), str(d["host"]), str(d["command"]), float(d["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class EnvLock:
    """Context manager holding an environment's lock; ``stale`` is set when recovery is needed."""

    def __init__(self, env_dir: Path, *, command: str = "llmpatch", timeout: float = DEFAULT_TIMEOUT,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.env_dir = Path(env_dir)
        self.command = command
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
                or not 0 <= timeout <= MAX_TIMEOUT:
            raise LlmpatchError(f"lock timeout {timeout!r} is not a number of seconds in [0, {MAX_TIMEOUT:.0f}]",
                                hint="e.g. --lock-timeout 120")
        self.timeout = timeout
        self.on_wait = on_wait or (lambda msg: None)
        self.stale: Owner | None = None
        self._lock = filelock.FileLock(str(self.env_dir / LOCK_NAME), thread_local=False)

    def _holder_text(self) -> str:
        owner = read_owner(self.env_dir)
        if owner is None:
            return "another llmpatch process"
        if not owner.alive():
            return f"{owner.describe()}, which is no longer running (its lock should be released shortly)"
        return owner.describe()

    def __enter__(self) -> "EnvLock":
        start = time.monotonic()
        deadline = start + self.timeout
        told_at: float | None = None
        while True:
            try:
                self._lock.acquire(timeout=min(0.5, max(0.0, deadline - time.monotonic())), poll_interval=0.02)
                break
            except filelock.Timeout:
                now = time.monotonic()
                if now >= deadline:
                    raise LockTimeoutError(
                        f"gave up after {self.timeout:.0f}s waiting for the lock on {self.env_dir}, held by "
                        f"{self._holder_text()}",
                        hint="wait for that command to finish and retry, or raise --lock-timeout",
                    ) from None
                if told_at is None or now - told_at >= NOTIFY_EVERY:
                    told_at = now
                    self.on_wait(f"waiting for lock on {self.env_dir} held by {self._holder_text()} ...")
        previous = read_owner(self.env_dir)
        if previous is not None and (previous.pid != os.getpid() or previous.host != socket.gethostname()):
            # The OS released the lock, yet the owner file survived: that process was killed mid-way.
            self.stale = previous
        try:
            atomic.write_json(self.env_dir / OWNER_NAME, {
                "pid": os.getpid(), "host": socket.gethostname(), "command": self.command, "since": time.time(),
            }, step="lock owner", durable=False)
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            (self.env_dir / OWNER_NAME).unlink(missing_ok=True)
        finally:
            self._lock.release()
