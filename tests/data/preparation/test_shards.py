"""Shards: K/N runs then a merge give the cache a single run gives; merging names what is
missing or inconsistent."""

from __future__ import annotations

from pathlib import Path

import pytest

from calfseg.data.preparation.pipeline import MissingPartsError, PrepareError, merge_cache
from calfseg.data.preprocess import PreprocessOptions

from .common import assert_same_cache, cache_files, run_prepare


def test_two_shards_then_merge_equal_a_single_run(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    first = run_prepare(src, out, shard=(1, 2))
    assert first.status == "shard-done" and first.cases == 2  # c0, c2
    with pytest.raises(MissingPartsError, match="shard 2/2") as missing:
        merge_cache(out)
    assert missing.value.missing == ["shard 2/2"]
    assert run_prepare(src, out, shard=(2, 2)).cases == 1
    assert not (out / "meta.json").exists()
    report = merge_cache(out)
    assert report.status == "written" and report.n_slices == 36
    single = tmp_path / "single"
    run_prepare(src, single)
    assert_same_cache(out, single)
    assert cache_files(out) == cache_files(single)  # byte for byte; no .parts left


@pytest.mark.parametrize("shards", [1, 3, 4])
def test_any_number_of_shards_covers_every_case_once(src: Path, tmp_path: Path, shards: int):
    out = tmp_path / "cache"
    covered = []
    for k in range(1, shards + 1):
        report = run_prepare(src, out, shard=(k, shards))
        covered.append(report.cases)
    assert sum(covered) == 3 and max(covered) - min(covered) <= 1
    merge_cache(out)
    single = tmp_path / "single"
    run_prepare(src, single)
    assert cache_files(out) == cache_files(single)


def test_merge_names_a_part_that_has_gone(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    run_prepare(src, out, shard=(1, 2))
    run_prepare(src, out, shard=(2, 2))
    gone = next((out / ".parts").glob("c1-*"))
    for path in gone.iterdir():
        path.unlink()
    gone.rmdir()
    with pytest.raises(MissingPartsError, match="have no finished part: c1") as missing:
        merge_cache(out)
    assert missing.value.missing == ["c1"]
    assert not (out / "meta.json").exists()


def test_a_bad_shard_is_refused_before_any_work(src: Path, tmp_path: Path):
    for shard in [(0, 2), (3, 2)]:
        with pytest.raises(ValueError, match=r"1 <= K <= N"):
            run_prepare(src, tmp_path / "cache", shard=shard)
    assert not (tmp_path / "cache").exists()


def test_shards_with_different_options_do_not_merge(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    run_prepare(src, out, shard=(1, 2))
    run_prepare(src, out, shard=(2, 2), options=PreprocessOptions(size=8))
    with pytest.raises(PrepareError, match="other options"):
        merge_cache(out)
    with pytest.raises(PrepareError, match="no finished shard"):
        merge_cache(tmp_path / "nothing")
