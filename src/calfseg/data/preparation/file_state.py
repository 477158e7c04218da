"""What a case's source files look like on disk, to tell whether a cache is still current.

A file's *state* is its size and modification time (cheap: one ``stat``), plus its sha256
once the file has been read for a case (recorded in the cache's meta for provenance).
Change detection compares size and mtime only, so an unchanged source is never hashed twice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileState:
    """One source file: ``path`` as recorded (relative to the source root where possible),
    ``size`` in bytes and ``mtime_ns`` (both None for a file that does not exist), and its
    ``sha256`` when known."""

    path: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None = None

    def same_file(self, other: FileState) -> bool:
        """Same path, size and mtime (the checksum is not compared)."""
        return (self.path, self.size, self.mtime_ns) == (other.path, other.size, other.mtime_ns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileState:
        return cls(str(data["path"]), data.get("size"), data.get("mtime_ns"), data.get("sha256"))


def display_path(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies below it, else as given."""
    if root is not None:
        try:
            return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
        except ValueError:
            pass
    return str(path)


def stat_files(paths: Iterable[Path], root: Path | None) -> tuple[FileState, ...]:
    """The state of each file, without reading it (a missing file gets size None)."""
    states = []
    for path in paths:
        size: int | None = None
        mtime: int | None = None
        try:
            st = os.stat(path)
            size, mtime = int(st.st_size), int(st.st_mtime_ns)
        except OSError:
            pass
        states.append(FileState(display_path(path, root), size, mtime))
    return tuple(states)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def same_files(a: Iterable[FileState], b: Iterable[FileState]) -> bool:
    """Both lists name the same files with the same sizes and mtimes, in the same order."""
    a, b = list(a), list(b)
    return len(a) == len(b) and all(x.same_file(y) for x, y in zip(a, b, strict=True))
