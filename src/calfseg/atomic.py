"""Atomic file writes, the one implementation calfseg uses everywhere (checkpoints, logs,
reports, caches).

The data goes into a temporary file beside the target (same folder, so the same file
system), is flushed to disk with ``fsync``, and then ``os.replace`` moves it over the
target in one step. A crash at any point leaves the old file or the new one whole, never a
torn one; a failed write removes its temporary file.

File mode: the file gets the mode a plain ``open(path, "w")`` would give it, ``0o666``
less the process umask (usually ``0o644``). ``tempfile.mkstemp`` alone would make it
private (``0o600``), which would surprise whoever shares a results folder.

A write that fails because the disk is full is a :class:`DiskFullError` naming the file,
whatever the writer raised (torch reports a full disk as a ``RuntimeError``); a large file
written through a memory map first reserves its blocks (:func:`reserve_blocks`): a full disk
under a memory map is a ``SIGBUS`` that kills the process without a word.

This module is the bottom layer: it imports only :mod:`calfseg.errors` from calfseg.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from calfseg.errors import DataError

__all__ = [
    "DiskFullError",
    "atomic_text",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "reserve_blocks",
    "same_file",
]

FULL_BELOW = 1 << 20  # bytes free under which a failed write is put down to a full disk


class DiskFullError(DataError):
    """A file could not be written for want of space; the message names it (exit 1)."""


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
    except BaseException as err:
        full = isinstance(err, Exception) and _disk_full(err, target.parent)
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise DiskFullError(f"cannot write {target}: no space left on the device") from err
        raise


def reserve_blocks(path: str | os.PathLike[str], what: str) -> None:
    """Allocate the blocks of the file at ``path`` up to its size (``posix_fallocate``),
    so that writing it through a memory map cannot meet a full disk later.

    Raises:
        DiskFullError: the file system cannot hold it; the message names the file, ``what``
            it is, the bytes it needs and those free.
    """
    target = Path(path)
    size = target.stat().st_size
    try:
        with open(target, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, size)
        return
    except AttributeError:  # no posix_fallocate on this platform: compare with free space
        pass
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise _not_room(target, what, size) from err
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    allocated = getattr(target.stat(), "st_blocks", 0) * 512
    if size - allocated > shutil.disk_usage(target.parent).free:
        raise _not_room(target, what, size)


def _not_room(target: Path, what: str, size: int) -> DiskFullError:
    free = shutil.disk_usage(target.parent).free
    return DiskFullError(
        f"cannot write {target}: no space left on the device ({what} needs "
        f"{_size(size)}, {_size(free)} free there)"
    )


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _disk_full(err: BaseException, folder: Path) -> bool:
    """Whether ``err`` (or an error it was raised from) is ENOSPC, or the folder's file
    system has (almost) no space left: some writers report a full disk in their own words."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        return shutil.disk_usage(folder).free < FULL_BELOW
    except OSError:
        return False


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (no newline translation)."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_text(path: str | os.PathLike[str]) -> Iterator[io.StringIO]:
    """``with atomic_text(path) as handle:`` a text handle (no newline translation, as
    ``open(path, "w", newline="")`` for the csv module) whose text is written to ``path``
    atomically when the block ends without an error; nothing is written otherwise."""
    buffer = io.StringIO(newline="")
    yield buffer
    atomic_write_text(path, buffer.getvalue())


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
