"""The slice cache: writing it with prepare_cache / merge_cache, reading it with SliceCache,
and the atomic, resumable, idempotent and sharded behaviour."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calfseg.data.cache import CacheError, SliceCache, cache_digest
from calfseg.data.preparation import writer as cache_writer
from calfseg.data.preparation.pipeline import (
    CacheReplaceError,
    CaseFailedError,
    MissingPartsError,
    PrepareError,
    merge_cache,
    prepare_cache,
)
from calfseg.data.preparation.source import PrepareSource, reader_source
from calfseg.data.preprocess import PreprocessOptions, slice_case
from calfseg.data.splits.assign import LeakageWarning
from calfseg.data.splits.options import SplitOptions
from calfseg.stats import AreaMoments

from .tiny_source import TinySource, write_case

OPTIONS = PreprocessOptions(size=16)
CASES = ("c0", "c1", "c2")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for i, case in enumerate(CASES):
        write_case(root, case, seed=i)
    return root


def _source(root: Path, **reader: Any) -> PrepareSource:
    return reader_source(TinySource(**reader), root)


def _prepare(root: Path, out: Path, **kwargs: Any):
    options = kwargs.pop("options", OPTIONS)
    return prepare_cache(_source(root, **kwargs.pop("reader", {})), out, options, **kwargs)


def _comparable_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k != "created"}


def _assert_same_cache(a: Path, b: Path) -> None:
    x, y = SliceCache.open(a), SliceCache.open(b)
    np.testing.assert_array_equal(x.images, y.images)
    np.testing.assert_array_equal(x.masks, y.masks)
    assert (a / "index.csv").read_text() == (b / "index.csv").read_text()
    assert (a / "fingerprint.json").read_text() == (b / "fingerprint.json").read_text()
    assert _comparable_meta(x.meta) == _comparable_meta(y.meta)


# -- round trip -----------------------------------------------------------------------------


def test_round_trip_arrays_index_meta_and_fingerprint(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    report = _prepare(src, out)
    assert report.status == "written" and report.processed == 3 and report.n_slices == 36
    cache = SliceCache.open(out)
    meta = cache.meta
    assert meta["format"] == "calfseg.cache/1" and meta["complete"] is True
    assert meta["channels"] == ["image"] and meta["size"] == [16, 16]
    assert meta["image_dtype"] == "uint8" and meta["n_slices"] == 36 == len(cache)
    assert meta["options"] == OPTIONS.to_dict()
    assert meta["splits"] == {
        "mode": "case",
        "fractions": {"train": 0.8, "val": 0.1, "test": 0.1},
        "seed": 0,
    }
    assert meta["skipped"] == []
    assert cache.images.shape == (36, 1, 16, 16) and cache.masks.shape == (36, 16, 16)
    assert not cache.images.flags.writeable

    reader = TinySource()
    for entry, case in zip(meta["cases"], reader.find_cases(src)):
        assert entry["case_id"] == case.case_id
        start, stop = entry["rows"]
        expected = slice_case(reader.load(case), OPTIONS)
        np.testing.assert_array_equal(cache.images[start:stop], expected.images)
        np.testing.assert_array_equal(cache.masks[start:stop], expected.masks)
        np.testing.assert_array_equal(cache.index["area"][start:stop], expected.area)
        assert cache.index["modality"][start:stop].tolist() == expected.modality
        assert entry["spacing"] == [1.0, 1.0, 2.0]
        for record, path in zip(entry["files"], case.files):
            assert record["path"] == path.relative_to(src).as_posix()
            assert record["size"] == path.stat().st_size
            assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    index = cache.index
    assert index["row"].tolist() == list(range(36))
    np.testing.assert_array_equal(index["has_tumour"], index["area"] > 0)
    np.testing.assert_allclose(index["spacing_x"], 12 / 16)
    np.testing.assert_allclose(index["spacing_y"], 10 / 16)
    for case in CASES:  # a case lies wholly in one split
        assert len(set(index["split"][index["case_id"] == case])) == 1
    assert sorted(set(index["split"])) == ["test", "train", "val"]
    train = cache.rows("train")
    assert len(train) + len(cache.rows("val")) + len(cache.rows("test")) == 36
    fingerprint = AreaMoments.load(out / "fingerprint.json")
    expected_moments = AreaMoments.from_areas(index["area"][train])
    assert fingerprint.count == len(train)
    assert fingerprint.skewness() == pytest.approx(expected_moments.skewness())


def test_the_cache_reads_with_plain_numpy_csv_and_json(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    _prepare(src, out)
    meta = json.loads((out / "meta.json").read_text())
    images = np.load(out / "images.npy", mmap_mode="r")
    masks = np.load(out / "masks.npy", mmap_mode="r")
    header, *rows = (out / "index.csv").read_text().splitlines()
    assert header == (
        "row,case_id,dataset,modality,slice_index,area,has_tumour,split,spacing_x,spacing_y,"
        "patient_id"
    )
    assert len(rows) == meta["n_slices"] == images.shape[0] == masks.shape[0]
    assert set(np.unique(masks).tolist()) <= {0, 1}


def test_stacked_float16_cache(src: Path, tmp_path: Path):
    options = PreprocessOptions(size=8, modalities=("flair", "t1c"), stack=True,
                                image_dtype="float16")  # fmt: skip
    out = tmp_path / "cache"
    _prepare(src, out, options=options)
    cache = SliceCache.open(out)
    assert cache.meta["channels"] == ["flair", "t1c"]
    assert cache.images.shape == (18, 2, 8, 8) and cache.images.dtype == np.float16
    assert set(cache.index["modality"].tolist()) == {"flair+t1c"}


def test_opening_something_else_says_it_is_not_a_finished_cache(tmp_path: Path):
    with pytest.raises(CacheError, match="not a finished calfseg cache"):
        SliceCache.open(tmp_path / "missing")
    with pytest.raises(CacheError, match=r"not a finished calfseg cache: .*no meta\.json"):
        SliceCache.open(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format": "other/1"}))
    with pytest.raises(CacheError, match="format 'other/1'"):
        SliceCache.open(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format": "calfseg.cache/1"}))
    with pytest.raises(CacheError, match="not marked complete"):
        SliceCache.open(tmp_path)


# -- atomicity and resume -------------------------------------------------------------------


def test_a_crash_leaves_no_cache_and_a_rerun_resumes(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _prepare(src, out, reader={"crash_on": {"c1"}})
    assert not (out / "meta.json").exists()
    with pytest.raises(CacheError, match="interrupted"):
        SliceCache.open(out)
    assert next((out / ".parts").glob("c0-*/case.json")).is_file()

    # c0 is finished: the rerun must not read it again (reading it would crash).
    report = _prepare(src, out, reader={"crash_on": {"c0"}})
    assert (report.processed, report.reused) == (2, 1)
    assert not (out / ".parts").exists()  # the parts are in the cache now
    clean = tmp_path / "clean"
    _prepare(src, clean)
    _assert_same_cache(out, clean)


def test_a_crash_while_assembling_leaves_no_finished_cache(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    out = tmp_path / "cache"
    _prepare(src, out)
    real_replace = os.replace

    def crash_on_masks(a: Any, b: Any) -> None:
        if str(b).endswith("masks.npy"):
            raise OSError("disk full")
        real_replace(a, b)

    monkeypatch.setattr(cache_writer.os, "replace", crash_on_masks)
    with pytest.raises(OSError, match="disk full"):
        _prepare(src, out, options=PreprocessOptions(size=8), overwrite=True)
    with pytest.raises(CacheError, match=r"no meta\.json"):
        SliceCache.open(out)
    monkeypatch.undo()
    report = _prepare(src, out, options=PreprocessOptions(size=8))
    assert report.status == "written" and report.reused == 3  # parts survived the crash
    assert SliceCache.open(out).meta["size"] == [8, 8]


# -- idempotence and change detection -------------------------------------------------------


def test_a_second_run_does_nothing(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    _prepare(src, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    report = _prepare(src, out)
    assert report.status == "up-to-date" and report.processed == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_a_changed_file_redoes_only_its_case(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    _prepare(src, out)
    write_case(src, "c1", seed=7)  # new content, new size or mtime
    report = _prepare(src, out)
    assert report.status == "written" and (report.processed, report.reused) == (1, 2)
    clean = tmp_path / "clean"
    _prepare(src, clean)
    _assert_same_cache(out, clean)


def test_new_splits_rewrite_the_index_but_not_the_arrays(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    _prepare(src, out)
    images = (out / "images.npy").stat().st_mtime_ns
    with pytest.raises(CacheReplaceError, match=r"mode case -> slice; seed 0 -> 3.*--overwrite"):
        _prepare(src, out, splits=SplitOptions(mode="slice", seed=3))
    with pytest.warns(LeakageWarning):
        report = _prepare(src, out, splits=SplitOptions(mode="slice", seed=3), overwrite=True)
    assert report.status == "reindexed" and report.processed == 0
    assert (out / "images.npy").stat().st_mtime_ns == images
    cache = SliceCache.open(out)
    assert cache.meta["splits"]["mode"] == "slice"
    assert len(set(cache.index["split"][cache.index["case_id"] == "c0"])) > 1


def test_other_options_need_overwrite_then_rebuild(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    _prepare(src, out)
    before = cache_digest(out)
    labels = PreprocessOptions(size=16, labels=(4,))
    with pytest.raises(CacheReplaceError, match=r"labels null -> \[4\]") as refused:
        _prepare(src, out, options=labels)
    assert refused.value.differences == ["labels null -> [4]"]
    assert cache_digest(out) == before  # untouched
    moved = tmp_path / "moved"
    shutil.copytree(src, moved)
    with pytest.raises(CacheReplaceError, match=r"source root .*/src -> .*/moved"):
        _prepare(moved, out)
    report = _prepare(src, out, options=labels, overwrite=True)
    assert report.status == "written" and report.processed == 3
    assert cache_digest(out) != before
    assert _prepare(src, out, options=labels).status == "up-to-date"  # now the same: no-op


def test_an_overwrite_run_that_was_interrupted_resumes_with_overwrite(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    _prepare(src, out)
    labels = PreprocessOptions(size=16, labels=(4,))
    _prepare(src, out, options=labels, overwrite=True, shard=(1, 2))  # c0, c2 done
    report = _prepare(src, out, options=labels, overwrite=True)
    assert (report.processed, report.reused) == (1, 2)


# -- cache_digest ---------------------------------------------------------------------------


def _independent_digest(cache: Path) -> str:
    """METHOD: sha256 of meta.json without created/calfseg_version (sorted JSON), then the
    bytes of index.csv; the first 16 hex digits."""
    meta = json.loads((cache / "meta.json").read_text())
    kept = {k: v for k, v in meta.items() if k not in ("created", "calfseg_version")}
    digest = hashlib.sha256(json.dumps(kept, sort_keys=True).encode())
    digest.update((cache / "index.csv").read_bytes())
    return digest.hexdigest()[:16]


def test_cache_digest_covers_what_the_cache_holds(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    _prepare(src, out)
    digest = cache_digest(out)
    assert len(digest) == 16 and digest == _independent_digest(out)
    assert SliceCache.open(out).digest == digest
    again = tmp_path / "again"
    _prepare(src, again)  # another folder, another time stamp: the same content
    assert cache_digest(again) == digest
    index = (out / "index.csv").read_text().replace(",train,", ",test,", 1)
    (out / "index.csv").write_text(index)
    assert cache_digest(out) != digest
    with pytest.raises(CacheError, match="not a finished calfseg cache"):
        cache_digest(tmp_path / "nothing")


# -- shards ---------------------------------------------------------------------------------


def test_two_shards_then_merge_equal_a_single_run(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    first = _prepare(src, out, shard=(1, 2))
    assert first.status == "shard-done" and first.cases == 2  # c0, c2
    with pytest.raises(MissingPartsError, match="shard 2/2") as missing:
        merge_cache(out)
    assert missing.value.missing == ["shard 2/2"]
    assert _prepare(src, out, shard=(2, 2)).cases == 1
    assert not (out / "meta.json").exists()
    report = merge_cache(out)
    assert report.status == "written" and report.n_slices == 36
    single = tmp_path / "single"
    _prepare(src, single)
    _assert_same_cache(out, single)


def test_shards_with_different_options_do_not_merge(src: Path, tmp_path: Path):
    out = tmp_path / "cache"
    _prepare(src, out, shard=(1, 2))
    _prepare(src, out, shard=(2, 2), options=PreprocessOptions(size=8))
    with pytest.raises(PrepareError, match="other options"):
        merge_cache(out)
    with pytest.raises(PrepareError, match="no finished shard"):
        merge_cache(tmp_path / "nothing")


# -- bad cases ------------------------------------------------------------------------------


def test_on_error_skip_leaves_the_case_out_and_lists_it(src: Path, tmp_path: Path):
    (src / "c1" / "label.npy").write_bytes(b"not numpy")
    out = tmp_path / "cache"
    report = _prepare(src, out, on_error="skip")
    assert [s.case_id for s in report.skipped] == ["c1"]
    assert "label.npy" in report.skipped[0].reason
    cache = SliceCache.open(out)
    assert set(cache.index["case_id"].tolist()) == {"c0", "c2"} and len(cache) == 24
    assert [s["case_id"] for s in cache.meta["skipped"]] == ["c1"]
    assert "label.npy" in cache.meta["skipped"][0]["reason"]
    again = _prepare(src, out, on_error="skip")  # unchanged: not retried
    assert again.status == "up-to-date" and [s.case_id for s in again.skipped] == ["c1"]


def test_on_error_stop_names_case_and_file_and_writes_no_cache(src: Path, tmp_path: Path):
    (src / "c1" / "flair.npy").write_bytes(b"\x00garbage")
    out = tmp_path / "cache"
    with pytest.raises(CaseFailedError, match=r"case c1 \(.*flair\.npy\)"):
        _prepare(src, out)
    assert not (out / "meta.json").exists()


def test_a_case_without_label_is_a_case_error(src: Path, tmp_path: Path):
    (src / "c2" / "label.npy").unlink()
    report = _prepare(src, tmp_path / "cache", on_error="skip")
    assert [(s.case_id, s.reason) for s in report.skipped] == [("c2", "no label file label.npy")]


def test_refuses_to_write_into_a_foreign_folder(src: Path, tmp_path: Path):
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(PrepareError, match="not a calfseg cache"):
        _prepare(src, foreign)


def test_parallel_workers_give_the_same_cache(src: Path, tmp_path: Path):
    _prepare(src, tmp_path / "one", workers=1)
    _prepare(src, tmp_path / "two", workers=2)
    _assert_same_cache(tmp_path / "one", tmp_path / "two")
