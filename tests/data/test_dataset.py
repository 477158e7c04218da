"""SliceDataset over a cache: values, splits, filters, augmentation, the batch path,
pickling and DataLoader workers, errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from calfseg.data.cache import CacheError, SliceCache
from calfseg.data.dataset import (
    SliceDataset,
    _dihedral,
    dihedral_codes,
)
from calfseg.data.splits.filters import DropEmpty, MinArea
from tests.data.cache_fixture import make_cache


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return make_cache(tmp_path_factory.mktemp("cache") / "c", n_cases=12, slices_per_case=8)


@pytest.fixture(scope="module")
def mirror_cache(tmp_path_factory) -> Path:
    """Images equal to 255 * mask, so that image / 255 must equal the mask after any
    augmentation applied to both."""
    path = make_cache(tmp_path_factory.mktemp("mirror") / "c", n_cases=10, slices_per_case=10)
    masks = np.load(path / "masks.npy")
    np.save(path / "images.npy", (masks * 255).astype(np.uint8)[:, None])
    return path


def test_the_cache_fixture_opens_as_a_cache(cache):
    arrays = SliceCache.open(cache)
    assert arrays.images.shape == (96, 1, 16, 16) and arrays.images.dtype == np.uint8
    assert isinstance(arrays.images, np.memmap) and isinstance(arrays.masks, np.memmap)
    assert arrays.index["area"].dtype == np.int64 and arrays.index["has_tumour"].dtype == bool
    np.testing.assert_array_equal(arrays.index["area"], arrays.masks.sum(axis=(1, 2)))
    assert arrays.meta["channels"] == ["image"]


def test_samples_are_float32_in_unit_range_with_a_channel_axis(cache):
    ds = SliceDataset(cache, split="train")
    arrays = SliceCache.open(cache)
    image, mask = ds[3]
    assert image.shape == (1, 16, 16) and mask.shape == (1, 16, 16)
    assert image.dtype == torch.float32 and mask.dtype == torch.float32
    row = ds.rows[3]
    np.testing.assert_array_equal(image.numpy(), arrays.images[row] / np.float32(255))
    np.testing.assert_array_equal(mask[0].numpy(), arrays.masks[row])
    assert set(np.unique(mask.numpy())) <= {0.0, 1.0}


def test_float16_and_multichannel_caches(tmp_path):
    path = make_cache(tmp_path / "f16", channels=("flair", "t2"), image_dtype="float16")
    ds = SliceDataset(path, split=None)
    image, _ = ds[5]
    assert image.shape == (2, 16, 16) and image.dtype == torch.float32
    np.testing.assert_array_equal(image.numpy(), np.load(path / "images.npy")[5].astype(np.float32))
    assert ds.channels == ("flair", "t2")


def test_split_selection_and_metadata(cache):
    arrays = SliceCache.open(cache)
    parts = {name: SliceDataset(cache, split=name) for name in ("train", "val", "test")}
    for name, ds in parts.items():
        assert set(arrays.index["split"][ds.rows]) == {name}
        assert np.all(np.diff(ds.rows) > 0)
    assert sum(len(ds) for ds in parts.values()) == 96
    assert len(SliceDataset(cache, split=None)) == 96
    both = SliceDataset(cache, split=("train", "val"))
    assert len(both) == len(parts["train"]) + len(parts["val"])
    ds = parts["train"]
    np.testing.assert_array_equal(ds.areas, arrays.index["area"][ds.rows])
    np.testing.assert_array_equal(ds.case_ids, arrays.index["case_id"][ds.rows])
    assert ds.spacing.shape == (len(ds), 2) and np.all(ds.spacing == 0.9375)
    np.testing.assert_array_equal(ds.has_tumour, ds.areas > 0)


def test_filters_are_applied_to_the_split(cache):
    ds = SliceDataset(cache, split="train", filters=[DropEmpty(), MinArea(10)])
    assert np.all(ds.areas >= 10) and len(ds) > 0
    for i in range(len(ds)):
        assert ds[i][1].sum() >= 10


def test_unknown_or_empty_splits_list_what_the_cache_has(cache, tmp_path):
    with pytest.raises(ValueError, match=r"split 'tets' has no rows .* train \(\d+ slices\)"):
        SliceDataset(cache, split="tets")
    with pytest.raises(ValueError, match="left none of the"):
        SliceDataset(cache, split="val", filters=[MinArea(10_000), DropEmpty()])
    no_val = make_cache(tmp_path / "noval", n_cases=2, slices_per_case=3)  # 2 cases: no val
    with pytest.raises(ValueError, match="split 'val' has no rows"):
        SliceDataset(no_val, split="val")


def test_broken_caches_are_refused(tmp_path):
    with pytest.raises(CacheError, match=r"no meta\.json"):
        SliceDataset(tmp_path)
    incomplete = make_cache(tmp_path / "inc", complete=False)
    with pytest.raises(CacheError, match="not marked complete"):
        SliceDataset(incomplete)
    foreign = make_cache(tmp_path / "foreign", meta_overrides={"format": "other/2"})
    with pytest.raises(ValueError, match="format 'other/2'"):
        SliceDataset(foreign)
    short = make_cache(tmp_path / "short", meta_overrides={"n_slices": 59})
    with pytest.raises(ValueError, match=r"meta\.json says"):
        SliceDataset(short)
    bad_index = make_cache(tmp_path / "badindex")
    text = (bad_index / "index.csv").read_text().replace(",0.9375,", ",wide,", 1)
    (bad_index / "index.csv").write_text(text)
    with pytest.raises(ValueError, match="column 'spacing_x'"):
        SliceDataset(bad_index)


def test_augmentation_is_deterministic_and_shared_by_image_and_mask(mirror_cache):
    ds = SliceDataset(mirror_cache, split=None, augment=True, seed=5)
    plain = SliceDataset(mirror_cache, split=None)
    changed = 0
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            image, mask = ds[i]
            np.testing.assert_array_equal(image.numpy(), mask.numpy())  # same transform
            again = ds[i]
            assert torch.equal(again[0], image)  # deterministic
            changed += not torch.equal(mask, plain[i][1])
            # the mask is the original under one of the 8 flips/rotations
            code = int(dihedral_codes(5, epoch, ds.rows[i : i + 1])[0])
            expected = _dihedral(plain[i][1].numpy()[0], code)
            np.testing.assert_array_equal(mask[0].numpy(), expected)
    assert changed > 0


def test_augmentation_draws_all_eight_transforms_and_depends_on_the_epoch():
    rows = np.arange(2000)
    codes = dihedral_codes(0, 0, rows)
    assert set(codes.tolist()) == set(range(8))
    assert np.mean(codes == dihedral_codes(0, 1, rows)) < 0.3
    assert np.mean(codes == dihedral_codes(1, 0, rows)) < 0.3


def test_non_square_slices_only_flip_and_half_turn():
    a = np.arange(6).reshape(2, 3)
    for code in range(8):
        assert _dihedral(a, code).shape == (2, 3)


def test_read_batch_equals_the_stacked_samples(mirror_cache):
    ds = SliceDataset(mirror_cache, split="train", augment=True, seed=1)
    ds.set_epoch(4)
    positions = np.array([0, 3, 4, 17, 30])
    images, masks = ds.read_batch(positions)
    assert images.shape == (5, 1, 16, 16) and masks.shape == (5, 1, 16, 16)
    for j, i in enumerate(positions):
        image, mask = ds[int(i)]
        assert torch.equal(images[j], image) and torch.equal(masks[j], mask)


def test_batch_loader_covers_each_slice_once_per_epoch_in_a_seeded_order(cache):
    ds = SliceDataset(cache, split=None)
    loader = ds.batch_loader(batch_size=10, shuffle=True, seed=3)
    assert len(loader) == 10  # 96 slices, last batch of 6

    def epoch_batches(epoch):
        loader.set_epoch(epoch)
        return list(loader)

    first = epoch_batches(0)
    assert [b[0].shape[0] for b in first] == [10] * 9 + [6]
    every = torch.cat([b[0] for b in first])
    reference = torch.stack([ds[i][0] for i in range(len(ds))])
    # the same multiset of slices: compare sorted per-slice sums and exact sorted contents
    assert torch.equal(
        every.sum(dim=(1, 2, 3)).sort().values, reference.sum(dim=(1, 2, 3)).sort().values
    )
    again = epoch_batches(0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    other = epoch_batches(1)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other, strict=True))
    unshuffled = list(ds.batch_loader(batch_size=32, shuffle=False, drop_last=True))
    assert len(unshuffled) == 3
    assert torch.equal(torch.cat([b[0] for b in unshuffled]), reference[:96])


def test_batch_loader_refuses_a_per_sample_transform(cache):
    ds = SliceDataset(cache, transform=lambda image, mask: (image, mask))
    with pytest.raises(ValueError, match="per-sample transform"):
        ds.batch_loader()


def test_pickles_without_its_memory_maps(cache):
    ds = SliceDataset(cache, split="train", filters=[DropEmpty()])
    ds[0]  # opens the memory maps
    assert ds._arrays is not None
    blob = pickle.dumps(ds)
    assert len(blob) < 4_000
    copy = pickle.loads(blob)
    assert copy._arrays is None and copy._index is None
    assert torch.equal(copy[2][0], ds[2][0]) and np.array_equal(copy.rows, ds.rows)
    for name, column in ds.index.items():  # re-read on demand
        np.testing.assert_array_equal(copy.index[name], column)


def _all_batches(loader) -> tuple[torch.Tensor, torch.Tensor]:
    images, masks = zip(*list(loader), strict=True)
    return torch.cat(images), torch.cat(masks)


@pytest.mark.parametrize("context", ["fork", "spawn"])
@pytest.mark.slow
def test_dataloader_workers_yield_the_same_data_as_the_main_process(cache, context):
    ds = SliceDataset(cache, split=None, augment=True, seed=2)
    ds.set_epoch(1)
    main = _all_batches(DataLoader(ds, batch_size=8))
    workers = _all_batches(
        DataLoader(ds, batch_size=8, num_workers=2, multiprocessing_context=context)
    )
    assert torch.equal(main[0], workers[0]) and torch.equal(main[1], workers[1])


def test_batch_loader_workers_yield_the_same_batches(cache):
    ds = SliceDataset(cache, split="train", augment=True)
    zero = ds.batch_loader(batch_size=7, shuffle=True, num_workers=0)
    two = ds.batch_loader(batch_size=7, shuffle=True, num_workers=2, persistent_workers=True)
    for epoch in (0, 1):
        zero.set_epoch(epoch)
        two.set_epoch(epoch)
        a, b = _all_batches(zero), _all_batches(two)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_a_replaced_cache_is_detected_by_a_lazy_reopen(tmp_path):
    path = make_cache(tmp_path / "c", n_cases=4, slices_per_case=5)
    ds = SliceDataset(path, split=None)
    meta = json.loads((path / "meta.json").read_text())
    make_cache(path, n_cases=5, slices_per_case=5, meta_overrides=meta | {"n_slices": 25})
    with pytest.raises(ValueError, match="changed since"):
        ds[0]
