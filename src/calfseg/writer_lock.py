"""One writer per results folder: an advisory lock held while a command writes into it.

``with writing(folder, "calf benchmark"):`` takes an exclusive ``flock`` on
``folder/.calf-writer.lock`` (one lock file per ``--shard K/N``, so that the shards of one grid
can share a folder, as docs/scale.md runs them) and records the owner in it: process id,
host, command and start time. A second writer is refused at once with
:class:`FolderBusyError`, which names the owner; it never waits.

Why ``flock``: the kernel releases it when its process ends, however it ends (kill -9
included), so a lock cannot outlive its writer and there is no stale lock to clean up by
hand. A lock file that still holds an owner record when the lock is taken belonged to a
writer that ended without releasing it; taking it over says so
(:class:`TakenOverWarning`). On NFS (v4, or v3 with a lock manager) Linux implements
``flock`` with the server's byte-range locks, so writers on different machines exclude each
other too; file systems without locks (some FUSE mounts) raise an ``OSError`` that names the
folder.

The lock is re-entrant within a process: the benchmark writes its report inside its own
lock, and ``train_run`` calls ``fit`` inside its run folder's lock. This module imports
nothing from calfseg but its error kinds.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import re
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

from calfseg.errors import DataError

LOCK_NAME = ".calf-writer.lock"
_SHARD_LOCK = re.compile(r"\.calf-writer\.shard-\d+-of-\d+\.lock")

_HELD: dict[str, int] = {}  # lock file (resolved) -> depth, in this process


class FolderBusyError(DataError):
    """Another process is writing into the folder (the message names it)."""


class TakenOverWarning(UserWarning):
    """The lock of a writer that ended without releasing it was taken over."""


def is_lock_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a writer lock file (of the folder or of a shard): a folder that
    holds only these holds nothing of its own."""
    name = Path(path).name
    return name == LOCK_NAME or bool(_SHARD_LOCK.fullmatch(name))


def lock_file(folder: str | os.PathLike[str], shard: tuple[int, int] | None = None) -> Path:
    """The lock file of ``folder`` (of one ``--shard K/N`` of it)."""
    if shard is None:
        return Path(folder) / LOCK_NAME
    return Path(folder) / f".calf-writer.shard-{shard[0]}-of-{shard[1]}.lock"


@contextlib.contextmanager
def writing(
    folder: str | os.PathLike[str], command: str, *, shard: tuple[int, int] | None = None
) -> Iterator[None]:
    """Hold ``folder``'s writer lock (created with the folder) for the ``with`` block.

    Raises:
        FolderBusyError: another process holds it; nothing was written.
    """
    path = lock_file(folder, shard)
    key = os.path.realpath(path)
    if key in _HELD:  # this process holds it already
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _acquire(fd, path, command)
    except BaseException:
        os.close(fd)
        raise
    _HELD[key] = 1
    try:
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no owner: nothing to take over
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _acquire(fd: int, path: Path, command: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            message = f"{path.parent}: cannot lock the folder ({err.strerror})"
            raise OSError(err.errno, message) from err
        raise FolderBusyError(
            f"{path.parent} is being written by {_describe(_read_owner(fd))}: wait for it to "
            "finish, or write into another folder"
        ) from None
    earlier = _read_owner(fd)
    if earlier:
        warnings.warn(
            f"{path.parent}: took over the writer lock of {_describe(earlier)}, which ended "
            "without releasing it",
            TakenOverWarning,
            stacklevel=4,
        )
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)


def _read_owner(fd: int) -> dict[str, object]:
    try:
        data = os.pread(fd, 4096, 0)
        owner = json.loads(data) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _describe(owner: dict[str, object]) -> str:
    if not owner:
        return "another process"
    return (
        f"{owner.get('command', 'a calf command')} (process {owner.get('pid', '?')} on "
        f"{owner.get('host', '?')}, started {owner.get('started', '?')})"
    )
