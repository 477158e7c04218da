"""Cases that cannot be read (``on_error``), and targets that must not be written."""

from __future__ import annotations

from pathlib import Path

import pytest

from calfseg.data.cache import SliceCache
from calfseg.data.preparation.pipeline import CaseFailedError, PrepareError

from .common import assert_same_cache, run_prepare


def test_on_error_skip_leaves_the_case_out_and_lists_it(src: Path, tmp_path: Path):
    (src / "c1" / "label.npy").write_bytes(b"not numpy")
    out = tmp_path / "cache"
    report = run_prepare(src, out, on_error="skip")
    assert [s.case_id for s in report.skipped] == ["c1"]
    assert "label.npy" in report.skipped[0].reason
    cache = SliceCache.open(out)
    assert set(cache.index["case_id"].tolist()) == {"c0", "c2"} and len(cache) == 24
    assert [s["case_id"] for s in cache.meta["skipped"]] == ["c1"]
    assert "label.npy" in cache.meta["skipped"][0]["reason"]
    again = run_prepare(src, out, on_error="skip")  # unchanged: not retried
    assert again.status == "up-to-date" and [s.case_id for s in again.skipped] == ["c1"]


def test_on_error_stop_names_case_and_file_and_writes_no_cache(src: Path, tmp_path: Path):
    (src / "c1" / "flair.npy").write_bytes(b"\x00garbage")
    out = tmp_path / "cache"
    with pytest.raises(CaseFailedError, match=r"case c1 \(.*flair\.npy\)"):
        run_prepare(src, out)
    assert not (out / "meta.json").exists()


def test_a_case_without_label_is_a_case_error(src: Path, tmp_path: Path):
    (src / "c2" / "label.npy").unlink()
    report = run_prepare(src, tmp_path / "cache", on_error="skip")
    assert [(s.case_id, s.reason) for s in report.skipped] == [("c2", "no label file label.npy")]


def test_refuses_to_write_into_a_foreign_folder(src: Path, tmp_path: Path):
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(PrepareError, match="not a calfseg cache"):
        run_prepare(src, foreign)


def test_parallel_workers_give_the_same_cache(src: Path, tmp_path: Path):
    run_prepare(src, tmp_path / "one", workers=1)
    run_prepare(src, tmp_path / "two", workers=2)
    assert_same_cache(tmp_path / "one", tmp_path / "two")


def test_a_full_disk_at_assembly_is_one_error_and_the_cases_stay_resumable(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import errno
    import os

    import calfseg.atomic as atomic
    from calfseg.atomic import DiskFullError

    def full(_fd: int, _offset: int, _length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out = tmp_path / "cache"
    with monkeypatch.context() as patched:
        patched.setattr(atomic.os, "posix_fallocate", full, raising=False)
        with pytest.raises(DiskFullError, match=r"images\.npy: no space left .*the cache's images"):
            run_prepare(src, out)
    assert not (out / "meta.json").exists()
    again = run_prepare(src, out)  # space again: the finished cases are not redone
    assert again.processed == 0 and len(SliceCache.open(out)) == 36
