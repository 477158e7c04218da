"""The slice cache: what prepare_cache writes, reading it with SliceCache, and its digest.
The pipeline's own behaviour (resume, idempotence, shards, bad cases) is tested in
tests/data/preparation/."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from calfseg.data.cache import CacheError, SliceCache, cache_digest
from calfseg.data.preparation.pipeline import prepare_cache
from calfseg.data.preparation.source import PrepareSource, reader_source
from calfseg.data.preprocess import PreprocessOptions, slice_case
from calfseg.fingerprint import load_fingerprint
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
    for entry, case in zip(meta["cases"], reader.find_cases(src), strict=True):
        assert entry["case_id"] == case.case_id
        start, stop = entry["rows"]
        expected = slice_case(reader.load(case), OPTIONS)
        np.testing.assert_array_equal(cache.images[start:stop], expected.images)
        np.testing.assert_array_equal(cache.masks[start:stop], expected.masks)
        np.testing.assert_array_equal(cache.index["area"][start:stop], expected.area)
        assert cache.index["modality"][start:stop].tolist() == expected.modality
        assert entry["spacing"] == [1.0, 1.0, 2.0]
        for record, path in zip(entry["files"], case.files, strict=True):
            assert record["path"] == path.relative_to(src).as_posix()
            assert record["size"] == path.stat().st_size
            assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    index = cache.index
    assert index["row"].tolist() == list(range(36))
    np.testing.assert_array_equal(index["has_tumour"], index["area"] > 0)
    np.testing.assert_allclose(index["spacing_x"], 12 / 16)
    np.testing.assert_allclose(index["spacing_y"], 10 / 16)
    np.testing.assert_array_equal(index["spacing_z"], 2.0)  # the source's, not resampled
    for case in CASES:  # a case lies wholly in one split
        assert len(set(index["split"][index["case_id"] == case])) == 1
    assert sorted(set(index["split"])) == ["test", "train", "val"]
    train = cache.rows("train")
    assert len(train) + len(cache.rows("val")) + len(cache.rows("test")) == 36
    fingerprint = load_fingerprint(out / "fingerprint.json").moments
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
        "spacing_z,patient_id"
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
