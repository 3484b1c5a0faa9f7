"""Atomic file writes and named crash points.

Every state change in an environment is a write to a temp file in the same directory followed
by ``os.replace``, so a reader sees the old file or the new one, never half of one. Crash points
mark the steps between; the crash-safety tests SIGKILL the process at each of them in turn
(``$LLMPATCH_TEST_KILL_AT=<n>``) and check the environment afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

from llmpatch import paths

_points_passed = 0
_trace: list[str] = []


def point(step: str) -> None:
    """A named step at which a crash test may kill this process (no-op unless asked to)."""
    global _points_passed
    target = paths.test_kill_at()
    if target is None:
        return
    _points_passed += 1
    _trace.append(step)
    if _points_passed == target:
        os.kill(os.getpid(), signal.SIGKILL)


def points_passed() -> list[str]:
    """Names of the crash points passed so far in this process (only counted in crash tests)."""
    return list(_trace)


def temp_name(path: Path) -> Path:
    """A unique temp path next to ``path`` (same filesystem, so ``os.replace`` is atomic)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def write_bytes(path: Path, data: bytes, *, step: str = "write", durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + os.replace)."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            point(f"{step}: temp written")
            if durable:
                f.flush()
                os.fsync(f.fileno())
        point(f"{step}: before replace")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    point(f"{step}: replaced")


def write_json(path: Path, data: Any, *, step: str = "write", durable: bool = True) -> None:
    """Write canonical JSON (sorted keys, 2-space indent, trailing newline) atomically."""
    write_bytes(path, dumps(data).encode("utf-8"), step=step, durable=durable)


def dumps(data: Any) -> str:
    """Canonical JSON text."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
