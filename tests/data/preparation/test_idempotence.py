"""Idempotence and change detection: a rerun on unchanged files changes nothing; a
changed file redoes its case; other options need ``overwrite``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from calfseg.data.cache import SliceCache, cache_digest
from calfseg.data.preparation.pipeline import CacheReplaceError
from calfseg.data.preprocess import PreprocessOptions
from calfseg.data.splits.assign import LeakageWarning
from calfseg.data.splits.options import SplitOptions

from ..tiny_source import write_case
from .common import assert_same_cache, cache_files, mtimes, run_prepare


def test_a_second_run_does_nothing(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    run_prepare(src, out)
    files, times = cache_files(out), mtimes(out)
    report = run_prepare(src, out)
    assert report.status == "up-to-date" and (report.processed, report.reused) == (0, 3)
    assert mtimes(out) == times  # not even rewritten with the same bytes
    assert cache_files(out) == files
    assert not (out / ".parts").exists()


def test_a_second_run_through_prepare_does_nothing(tmp_path: Path):
    from calfseg.data import prepare

    out = tmp_path / "cache"
    first = prepare(None, out, synthetic="paper-like", cases=3, size=16)
    times = mtimes(out)
    again = prepare(None, out, synthetic="paper-like", cases=3, size=16)
    assert (first.status, again.status) == ("written", "up-to-date")
    assert again.n_slices == first.n_slices and mtimes(out) == times


def test_a_changed_file_redoes_only_its_case(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    run_prepare(src, out)
    write_case(src, "c1", seed=7)  # new content, new size or mtime
    report = run_prepare(src, out)
    assert report.status == "written" and (report.processed, report.reused) == (1, 2)
    clean = tmp_path / "clean"
    run_prepare(src, clean)
    assert_same_cache(out, clean)


def test_new_splits_rewrite_the_index_but_not_the_arrays(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    run_prepare(src, out)
    images = (out / "images.npy").stat().st_mtime_ns
    with pytest.raises(CacheReplaceError, match=r"mode case -> slice; seed 0 -> 3.*--overwrite"):
        run_prepare(src, out, splits=SplitOptions(mode="slice", seed=3))
    with pytest.warns(LeakageWarning):
        report = run_prepare(src, out, splits=SplitOptions(mode="slice", seed=3), overwrite=True)
    assert report.status == "reindexed" and report.processed == 0
    assert (out / "images.npy").stat().st_mtime_ns == images
    cache = SliceCache.open(out)
    assert cache.meta["splits"]["mode"] == "slice"
    assert len(set(cache.index["split"][cache.index["case_id"] == "c0"])) > 1


def test_other_options_need_overwrite_then_rebuild(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    run_prepare(src, out)
    before = cache_digest(out)
    labels = PreprocessOptions(size=16, labels=(4,))
    with pytest.raises(CacheReplaceError, match=r"labels null -> \[4\]") as refused:
        run_prepare(src, out, options=labels)
    assert refused.value.differences == ["labels null -> [4]"]
    assert cache_digest(out) == before  # untouched
    moved = tmp_path / "moved"
    shutil.copytree(src, moved)
    with pytest.raises(CacheReplaceError, match=r"source root .*/src -> .*/moved"):
        run_prepare(moved, out)
    report = run_prepare(src, out, options=labels, overwrite=True)
    assert report.status == "written" and report.processed == 3
    assert cache_digest(out) != before
    assert run_prepare(src, out, options=labels).status == "up-to-date"  # now the same: no-op


def test_an_overwrite_run_that_was_interrupted_resumes_with_overwrite(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    run_prepare(src, out)
    labels = PreprocessOptions(size=16, labels=(4,))
    run_prepare(src, out, options=labels, overwrite=True, shard=(1, 2))  # c0, c2 done
    report = run_prepare(src, out, options=labels, overwrite=True)
    assert (report.processed, report.reused) == (1, 2)


def test_prepare_takes_the_fields_of_its_options_objects_as_keywords(tmp_path: Path):
    # split= names SplitOptions.mode, as --split does; anything else unknown is named
    from calfseg.data.preparation.entry import PrepareSettingsError, prepare

    with pytest.warns(LeakageWarning):  # a slice split leaks patients, and says so
        report = prepare(None, tmp_path / "c", synthetic="paper-like", cases=3, size=16,
                         split="slice", val=0.2, test=0.2)  # fmt: skip
    splits = report.meta["splits"]
    assert splits["mode"] == "slice" and splits["fractions"]["val"] == 0.2
    with pytest.raises(PrepareSettingsError, match=r"unknown option\(s\) sise; valid: .*size"):
        prepare(None, tmp_path / "d", synthetic="paper-like", sise=16)
    with pytest.raises(PrepareSettingsError, match="--val must be in"):
        prepare(None, tmp_path / "e", synthetic="paper-like", val=1.5)
