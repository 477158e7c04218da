"""Atomic file writes, the one implementation calfseg uses everywhere (checkpoints, logs,
reports, caches).

The data goes into a temporary file beside the target (same folder, so the same file
system), is flushed to disk with ``fsync``, and then ``os.replace`` moves it over the
target in one step. A crash at any point leaves the old file or the new one whole, never a
torn one; a failed write removes its temporary file.

File mode: the file gets the mode a plain ``open(path, "w")`` would give it, ``0o666``
less the process umask (usually ``0o644``). ``tempfile.mkstemp`` alone would make it
private (``0o600``), which would surprise whoever shares a results folder.

This module is the bottom layer: it imports nothing from calfseg.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "same_file",
]


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(handle)`` on a temporary binary file, then move it to ``path``.

    The parent folder is created when missing. ``write`` may raise: the target is then left
    as it was."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (no newline translation)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON plus a newline to ``path`` atomically. NaN and
    infinity are refused (ValueError): they are not JSON, and other readers reject them."""
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name one file: the same inode when both exist (links
    included), else the same resolved path. An output that is one of a command's inputs
    would replace it."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def _umask() -> int:
    """The process umask. Linux shows it in /proc; elsewhere ``os.umask`` can only read it
    by setting it, which for an instant affects files other threads create."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
