"""A full disk is one line naming the file (calfseg.atomic): whatever error the writer
raises for it (torch raises RuntimeError), and before a memory-mapped write rather than as
a SIGBUS in the middle of it. The full disk is simulated: the free-space probe and
``posix_fallocate`` are replaced; the rest of the code runs for real."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

import calfseg.atomic as atomic
from calfseg.atomic import DiskFullError, atomic_write, reserve_blocks
from calfseg.cli.errors import EXIT_FAILURE, exit_code


class _Usage(NamedTuple):
    total: int
    used: int
    free: int


def _free(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _path: _Usage(10**9, 10**9, free))


def _raise(err: BaseException):
    def write(_handle) -> None:
        raise err

    return write


def test_a_writer_error_on_a_full_disk_names_the_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "last.pt"
    target.write_bytes(b"old")
    _free(monkeypatch, 0)
    torch_words = RuntimeError("[enforce fail] PytorchStreamWriter failed writing file data/0")
    with pytest.raises(DiskFullError, match=f"cannot write {target}: no space left") as caught:
        atomic_write(target, _raise(torch_words))
    assert exit_code(caught.value) == EXIT_FAILURE
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["last.pt"]


def test_enospc_without_a_file_name_gets_the_target_named(tmp_path: Path) -> None:
    target = tmp_path / "log.csv"
    with pytest.raises(DiskFullError, match=f"cannot write {target}"):
        atomic_write(target, _raise(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))


def test_other_errors_pass_unchanged_when_there_is_room(tmp_path: Path) -> None:
    assert shutil.disk_usage(tmp_path).free > atomic.FULL_BELOW
    with pytest.raises(RuntimeError, match="a bug"):
        atomic_write(tmp_path / "x", _raise(RuntimeError("a bug")))


def test_reserve_blocks_allocates_a_sparse_file(tmp_path: Path) -> None:
    path = tmp_path / "images.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(64, 1024, 64))
    del array
    reserve_blocks(path, "the cache's images")
    stat = path.stat()
    if stat.st_blocks * 512 < stat.st_size:
        pytest.skip("this file system does not allocate on posix_fallocate")
    assert stat.st_blocks * 512 >= stat.st_size


def _sparse(path: Path, shape: tuple[int, ...]) -> Path:
    """A memory-mapped .npy file of ``shape`` bytes, sparse as the assembly makes them."""
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    return path


def _fallocate_fails(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    def fail(_fd: int, _offset: int, _length: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "posix_fallocate", fail, raising=False)


def test_reserve_blocks_on_a_full_disk_says_what_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _sparse(tmp_path / "images.npy", (1000, 1000, 300))
    _fallocate_fails(monkeypatch, errno.ENOSPC)
    _free(monkeypatch, 50_000_000)
    with pytest.raises(DiskFullError, match=r"the cache's images needs 0\.30 GB, 50\.0 MB free"):
        reserve_blocks(path, "the cache's images")


def test_without_fallocate_the_free_space_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _sparse(tmp_path / "masks.npy", (100, 1000, 1000))
    _fallocate_fails(monkeypatch, errno.EOPNOTSUPP)
    _free(monkeypatch, 10**6)
    with pytest.raises(DiskFullError, match=r"the cache.s masks needs 0\.10 GB"):
        reserve_blocks(path, "the cache's masks")
    _free(monkeypatch, 10**12)
    reserve_blocks(path, "the cache's masks")  # room enough: nothing to say


def test_atomic_text_writes_on_success_only(tmp_path: Path) -> None:
    import csv

    from calfseg.atomic import atomic_text

    target = tmp_path / "verdicts.csv"
    with atomic_text(target) as handle:
        csv.writer(handle).writerows([["a", "b"], [1, 2]])
        assert not target.exists()  # nothing on disk until the block ends
    assert target.read_bytes() == b"a,b\r\n1,2\r\n"  # the csv module's own line ends
    with pytest.raises(RuntimeError), atomic_text(target) as handle:
        handle.write("half")
        raise RuntimeError("killed mid-report")
    assert target.read_bytes() == b"a,b\r\n1,2\r\n" and os.listdir(tmp_path) == ["verdicts.csv"]
