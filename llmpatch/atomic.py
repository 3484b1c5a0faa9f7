"""Atomic file writes and named crash points, for every module that writes state.

Every state change (environments, registries, keys, reports, caches) is a write to a temp file in the same directory followed
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
_NO_POINT = "-"  # a step name starting with this is not a crash point (writes outside environments)
_trace: list[str] = []


def point(step: str) -> None:
    """A named step at which a crash test may kill this process (no-op unless asked to)."""
    global _points_passed
    target = paths.test_kill_at()
    if target is None or step.startswith(_NO_POINT):
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


def write_bytes(path: Path, data: bytes, *, step: str = _NO_POINT, durable: bool = True, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + os.replace); ``mode`` sets permissions."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        # the temp file is created with the final permissions, so a private key is never readable
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            point(f"{step}: temp written")
            if durable:
                f.flush()
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        point(f"{step}: before replace")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    point(f"{step}: replaced")


def write_text(path: Path, text: str, *, step: str = _NO_POINT, durable: bool = True, mode: int | None = None) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"), step=step, durable=durable, mode=mode)


def write_json(path: Path, data: Any, *, step: str = _NO_POINT, durable: bool = True) -> None:
    """Write canonical JSON (sorted keys, 2-space indent, trailing newline) atomically."""
    write_bytes(path, dumps(data).encode("utf-8"), step=step, durable=durable)


def dumps(data: Any) -> str:
    """Canonical JSON text."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
