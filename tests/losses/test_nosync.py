"""Per-batch CALF without a host read: areas from the loader, or the pick made on the device.

Both paths must pick exactly the branch of docs/method.md's rule applied to scipy's biased skewness
and excess kurtosis of the batch's areas, and compute the same loss as the host path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from calfseg.data import SliceDataset
from calfseg.losses import CALFLoss
from calfseg.stats import foreground_areas
from calfseg.train import distributed as D

from ..method_rule import method_branch_of_areas

SIDE = 16  # masks of 16 x 16: areas 0..256


def random_area_batches(count: int, seed: int = 0) -> list[np.ndarray]:
    """Batches of integer areas in 0..SIDE^2: skewed either way, symmetric, and degenerate
    (all empty, one nonzero, all equal, a batch of one, two values)."""
    rng = np.random.default_rng(seed)
    top = SIDE * SIDE
    batches = [
        np.zeros(8),
        np.zeros(1),
        np.array([0.0] * 7 + [40.0]),
        np.array([40.0] + [0.0] * 7),
        np.full(6, 33.0),
        np.full(5, top),
        np.array([top]),
        np.array([0.0, top]),
        np.array([0.0, 128.0, 256.0]),  # symmetric: S = 0 exactly
    ]
    while len(batches) < count:
        n = int(rng.integers(1, 40))
        kind = len(batches) % 6
        if kind == 0:  # right-skewed: mostly small
            areas = np.floor(top * rng.random(n) ** rng.uniform(1, 6))
        elif kind == 1:  # left-skewed: mostly large
            areas = np.floor(top * (1 - rng.random(n) ** rng.uniform(1, 6)))
        elif kind == 2:  # symmetric around the middle of the range: S = 0 exactly
            half = rng.integers(0, top // 2, size=n // 2)
            middle = [top // 2] * (n % 2)
            areas = np.concatenate([top // 2 - half, middle, top // 2 + half])
        elif kind == 3:  # many empty slices and a few lesions
            areas = np.where(rng.random(n) < 0.7, 0, rng.integers(1, top + 1, size=n))
        elif kind == 4:  # two values
            areas = rng.choice([0, int(rng.integers(1, top + 1))], size=n)
        else:  # uniform
            areas = rng.integers(0, top + 1, size=n)
        batches.append(np.asarray(areas, dtype=np.float64))
    return batches


def masks_of(areas: np.ndarray, seed: int) -> torch.Tensor:
    """(B, 1, SIDE, SIDE) float masks with exactly these foreground pixel counts."""
    g = torch.Generator().manual_seed(seed)
    flat = torch.zeros(len(areas), SIDE * SIDE)
    for i, a in enumerate(areas.astype(int)):
        flat[i, torch.randperm(SIDE * SIDE, generator=g)[:a]] = 1.0
    return flat.reshape(len(areas), 1, SIDE, SIDE)


BATCHES = random_area_batches(300)


def test_the_batches_cover_every_branch_and_the_degenerate_cases():
    picks = {method_branch_of_areas(a) for a in BATCHES}
    assert picks == {"fisher", "logit", "arcsine", "log10", "ln", "bce_dice"}


@pytest.mark.parametrize("chunk", range(6))
def test_loader_areas_and_device_pick_select_the_rule_and_compute_the_host_loss(chunk):
    for i, areas in enumerate(BATCHES[chunk::6]):
        masks = masks_of(areas, seed=i)
        logits = torch.randn(masks.shape, generator=torch.Generator().manual_seed(i)) * 3
        expected = method_branch_of_areas(areas)
        results = {}
        for name, loss_fn, kwargs in (
            ("host", CALFLoss(pick_on="host"), {}),
            ("loader", CALFLoss(pick_on="host"), {"areas": areas}),
            ("device", CALFLoss(pick_on="device"), {}),
        ):
            z = logits.clone().requires_grad_(True)
            loss = loss_fn(z, masks, **kwargs)
            loss.backward()
            assert loss_fn.last_selection.branch == expected, (name, areas.tolist())
            assert loss_fn.last_selection.count == len(areas)
            results[name] = (loss.detach(), z.grad)
        for name in ("loader", "device"):
            assert torch.equal(results[name][0], results["host"][0]), name
            assert torch.equal(results[name][1], results["host"][1]), name


# The meta device holds shapes and no values: every host read of a meta tensor raises
# (``.item()``, ``bool()``, ``.cpu()``, ``.tolist()``, ``nonzero``, boolean indexing). A loss
# that runs forward and backward on meta tensors therefore reads no device value: on CUDA it
# does not synchronise. tests/gpu/test_nosync_cuda.py checks the same under
# ``torch.cuda.set_sync_debug_mode("error")`` where a GPU is lent.
NO_READ_CASES = [
    pytest.param("binary", "mean", {"pick_on": "host"}, True, id="loader-areas"),
    pytest.param("binary", "mean", {"pick_on": "device"}, False, id="device-pick"),
    pytest.param("binary", "none", {"pick_on": "device"}, False, id="device-pick-map"),
    pytest.param("multilabel", "mean", {"pick_on": "host"}, True, id="loader-areas-2ch"),
    pytest.param("multilabel", "mean", {"pick_on": "device"}, False, id="device-pick-2ch"),
    pytest.param("binary", "mean", {"statistics": "dataset"}, False, id="dataset"),
]


@pytest.mark.parametrize(("mode", "reduction", "options", "with_areas"), NO_READ_CASES)
def test_batch_mode_reads_no_device_value(mode, reduction, options, with_areas):
    channels = 2 if mode == "multilabel" else 1
    for i, areas in enumerate(BATCHES[30:60:5]):
        masks = torch.cat([masks_of(areas, seed=i + c) for c in range(channels)], dim=1)
        loss_fn = CALFLoss(mode=mode, reduction=reduction, **options)
        if options.get("statistics") == "dataset":
            loss_fn.fit(masks)
        logits = torch.empty(masks.shape, device="meta", requires_grad=True)
        kwargs = {"areas": np.stack([areas] * channels, axis=1)} if with_areas else {}
        loss = loss_fn(logits, masks.to("meta"), **kwargs)
        loss.sum().backward()
        assert loss.device.type == "meta" and logits.grad.shape == logits.shape
        if with_areas:  # the pick itself is known on the host, without the device
            picks = [
                s.branch
                for s in (loss_fn.last_selection if channels > 1 else [loss_fn.last_selection])
            ]
            assert picks == [method_branch_of_areas(areas)] * channels


def test_the_meta_check_catches_a_host_read():
    # The host pick reads the batch's areas from the target: on meta that must raise, or the
    # test above could not fail.
    masks = masks_of(BATCHES[30], seed=0).to("meta")
    logits = torch.empty(masks.shape, device="meta")
    with pytest.raises((RuntimeError, NotImplementedError)):
        CALFLoss(pick_on="host")(logits, masks)


def test_device_pick_reports_the_host_statistics():
    areas = BATCHES[20]
    masks = masks_of(areas, seed=0)
    logits = torch.zeros(masks.shape)
    host, device = CALFLoss(pick_on="host"), CALFLoss(pick_on="device")
    host(logits, masks)
    device(logits, masks)
    assert device.last_selection.condition == host.last_selection.condition
    assert device.last_selection.skewness == pytest.approx(scipy.stats.skew(areas), rel=1e-9)
    assert device.last_selection.kurtosis == pytest.approx(scipy.stats.kurtosis(areas), rel=1e-9)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_multilabel_channels_pick_on_their_own_in_every_path(reduction):
    right, left = BATCHES[9], np.floor(SIDE * SIDE - BATCHES[9])  # mirrored: opposite skew
    masks = torch.cat([masks_of(right, 1), masks_of(left, 2)], dim=1)
    logits = torch.randn(masks.shape, generator=torch.Generator().manual_seed(3))
    areas = np.stack([right, left], axis=1)
    make = lambda pick_on: CALFLoss(mode="multilabel", reduction=reduction, pick_on=pick_on)  # noqa: E731
    host, loader, device = make("host"), make("host"), make("device")
    reference = host(logits, masks)
    assert torch.equal(loader(logits, masks, areas=areas), reference)
    assert torch.equal(device(logits, masks), reference)
    expected = (method_branch_of_areas(right), method_branch_of_areas(left))
    for fn in (host, loader, device):
        assert tuple(s.branch for s in fn.last_selection) == expected


def test_running_mode_accumulates_the_loader_areas_like_the_targets():
    by_target, by_areas = CALFLoss("running"), CALFLoss("running")
    for i, areas in enumerate(BATCHES[10:20]):
        masks = masks_of(areas, seed=i)
        logits = torch.randn(masks.shape)
        by_target(logits, masks)
        by_areas(logits, masks, areas=areas)
        assert by_areas.last_selection == by_target.last_selection
    pooled = np.concatenate(BATCHES[10:20])
    assert by_areas.last_selection.branch == method_branch_of_areas(pooled)


def test_dataset_mode_ignores_areas():
    areas = BATCHES[12]
    masks = masks_of(areas, seed=0)
    loss_fn = CALFLoss("dataset").fit(masks)
    logits = torch.randn(masks.shape)
    assert torch.equal(loss_fn(logits, masks, areas=areas[::-1][:1]), loss_fn(logits, masks))


class TestBadAreas:
    masks = masks_of(np.array([0.0, 10.0, 50.0]), seed=0)
    logits = torch.zeros(3, 1, SIDE, SIDE)

    def test_wrong_length_names_the_argument(self):
        with pytest.raises(ValueError, match="areas holds 2 areas for a batch of 3"):
            CALFLoss()(self.logits, self.masks, areas=np.array([0.0, 10.0]))

    def test_wrong_shape_is_an_error(self):
        with pytest.raises(ValueError, match=r"areas must have shape \(B,\) or \(B, 1\)"):
            CALFLoss()(self.logits, self.masks, areas=np.zeros((3, 2)))

    def test_a_device_tensor_is_refused(self):
        with pytest.raises(ValueError, match="must be on the host"):
            CALFLoss()(self.logits, self.masks, areas=torch.zeros(3, device="meta"))

    def test_nested_lists_are_one_batch_of_channels(self):
        loss_fn = CALFLoss(mode="multilabel")
        masks = torch.cat([self.masks, self.masks.flip(0)], dim=1)
        loss_fn(torch.zeros(masks.shape), masks, areas=[[0, 50], [10, 10], [50, 0]])
        expected = method_branch_of_areas(np.array([0.0, 10, 50]))  # either column: S = 0.60
        assert [s.branch for s in loss_fn.last_selection] == [expected, expected] == ["ln", "ln"]

    def test_per_rank_parts_without_a_process_group_are_refused(self):
        with pytest.raises(ValueError, match="2 per-rank parts"):
            CALFLoss()(self.logits, self.masks, areas=[np.zeros(3), np.zeros(3)])

    def test_contour_losses_refuse_pixel_areas(self):
        with pytest.raises(ValueError, match="area='contour'"):
            CALFLoss(area="contour")(self.logits, self.masks, areas=np.array([0.0, 10, 50]))

    def test_validate_compares_the_areas_with_the_target(self):
        loss_fn = CALFLoss(validate=True)
        loss_fn(self.logits, self.masks, areas=np.array([0.0, 10, 50]))
        with pytest.raises(ValueError, match="do not match the target"):
            loss_fn(self.logits, self.masks, areas=np.array([0.0, 50, 10]))

    @pytest.mark.parametrize(
        "kwargs", [{"statistics": "running"}, {"area": "contour"}], ids=["running", "contour"]
    )
    def test_device_pick_needs_batch_statistics_of_pixels(self, kwargs):
        with pytest.raises(ValueError, match="pick_on='device' needs"):
            CALFLoss(pick_on="device", **kwargs)

    def test_unknown_pick_on_lists_the_choices(self):
        with pytest.raises(
            ValueError, match=r"unknown pick_on .*; valid names: auto, host, device"
        ):
            CALFLoss(pick_on="gpu")  # type: ignore[arg-type]


def test_auto_picks_on_the_host_on_a_cpu():
    loss_fn = CALFLoss()
    masks = masks_of(BATCHES[30], seed=0)
    loss_fn(torch.zeros(masks.shape), masks)
    assert loss_fn._pending is None  # the CPU pick is made on the host, where reading is free
    assert loss_fn.last_selection.branch == method_branch_of_areas(BATCHES[30])


# -- the training loop's areas ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(synthetic_cache: Path) -> Path:
    return synthetic_cache


def test_cache_areas_are_the_pixel_counts_of_the_masks_read_with_augmentation(cache):
    dataset = SliceDataset(cache, "train", augment=True, seed=3)
    for epoch in (0, 1):
        for positions in D.epoch_batches(len(dataset), 8, seed=3, epoch=epoch):
            _, masks = dataset.read_batch(positions, epoch=epoch)
            measured = foreground_areas(masks).numpy()
            assert np.array_equal(np.asarray(dataset.areas[positions], np.float64), measured)


def test_loss_areas_hand_each_step_its_batch_areas(cache):
    dataset = SliceDataset(cache, "train")
    loss_fn = CALFLoss()
    areas_of = D.loss_areas(loss_fn, dataset.areas, 8, seed=1, epoch=2)
    batches = D.epoch_batches(len(dataset), 8, seed=1, epoch=2)
    for step, positions in enumerate(batches):
        assert np.array_equal(areas_of(step, positions)["areas"], dataset.areas[positions])
    for other in (CALFLoss("dataset"), CALFLoss(area="contour"), torch.nn.BCEWithLogitsLoss()):
        assert D.loss_areas(other, dataset.areas, 8, seed=1, epoch=2)(0, batches[0]) == {}


def test_global_batches_split_into_the_ranks_batches():
    n, batch, world = 101, 4, 3
    parts = D.epoch_global_batches(n, batch, seed=5, epoch=1, world_size=world)
    for rank in range(world):
        mine = D.epoch_batches(n, batch, seed=5, epoch=1, rank=rank, world_size=world)
        assert len(mine) == len(parts)
        for own, step in zip(mine, parts, strict=True):
            assert np.array_equal(own, step[rank])
    every = np.sort(np.concatenate([p for step in parts for p in step]))
    assert len(every) == len(np.unique(every)) and set(every) <= set(range(n))
