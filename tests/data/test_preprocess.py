"""Preprocessing of one case: normalisations, masks, resizing, slice selection, rows."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from calfseg.data.preprocess import (
    PreprocessOptions,
    binary_mask,
    choose_modalities,
    normalise,
    outside_brain,
    pad_to_square,
    resize_images,
    resize_masks,
    slice_case,
    to_image_dtype,
)
from calfseg.data.sources.base import CaseError, CaseVolumes


def _volumes(
    shape: tuple[int, int, int] = (8, 6, 5),
    modalities: tuple[str, ...] = ("flair", "t1c"),
    dataset: str = "brats2015",
    seed: int = 0,
) -> CaseVolumes:
    rng = np.random.default_rng(seed)
    images = {m: rng.uniform(1, 100, shape).astype(np.float32) for m in modalities}
    for image in images.values():
        image[..., 0] = 0  # a background slice
    label = np.zeros(shape, dtype=np.int16)
    label[2:5, 1:4, 1:4] = 2
    label[5, 1, 2] = 4
    return CaseVolumes("case1", dataset, images, label, (1.0, 2.0, 3.0))


# -- normalisation ----------------------------------------------------------------------------


def test_minmax_slice_scales_each_slice_to_0_1():
    volume = np.stack([np.full((2, 2), 7.0), np.array([[1.0, 2.0], [3.0, 5.0]])], axis=-1)
    out = normalise(volume, "minmax-slice")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[..., 0], np.zeros((2, 2)))  # constant: zeros, no NaN
    np.testing.assert_allclose(out[..., 1], [[0.0, 0.25], [0.5, 1.0]])


def test_minmax_volume_uses_the_whole_volume():
    volume = np.stack([np.full((2, 2), 1.0), np.array([[1.0, 2.0], [3.0, 5.0]])], axis=-1)
    out = normalise(volume, "minmax-volume")
    np.testing.assert_allclose(out[..., 0], np.zeros((2, 2)))
    np.testing.assert_allclose(out[..., 1], [[0.0, 0.25], [0.5, 1.0]])
    assert not np.isnan(normalise(np.full((3, 3, 2), 4.0), "minmax-volume")).any()


def test_zscore_brain_maps_the_brain_mean_to_half_and_keeps_background_zero():
    rng = np.random.default_rng(1)
    volume = np.zeros((10, 10, 4), dtype=np.float32)
    volume[2:8, 2:8] = rng.normal(50, 10, (6, 6, 4))
    volume[2, 2, 0] = 1e6  # far beyond 5 sd: clipped to 1
    out = normalise(volume, "zscore-brain")
    brain = volume != 0
    assert (out[~brain] == 0).all()
    assert out[2, 2, 0] == 1.0
    assert 0.0 <= out.min() and out.max() <= 1.0
    z = (volume[brain] - volume[brain].mean()) / volume[brain].std()
    expected = (np.clip(z, -5, 5) + 5) / 10
    np.testing.assert_allclose(out[brain], expected, atol=1e-6)


def test_zscore_brain_of_a_constant_or_empty_volume_has_no_nan():
    constant = np.zeros((4, 4, 2), dtype=np.float32)
    constant[1:3, 1:3] = 9.0
    out = normalise(constant, "zscore-brain")
    assert set(np.unique(out).tolist()) == {0.0, 0.5}
    np.testing.assert_array_equal(normalise(np.zeros((3, 3, 2)), "zscore-brain"), 0)


def test_paper_normalisation_is_per_slice_for_upenn_flair_too():
    # docs/method.md section 5, correction: the authors' UPENN slices were rescaled per slice when
    # saved, so `paper` is minmax-slice for every dataset. Reference: numpy, per slice.
    volumes = _volumes(dataset="upenn-gbm", modalities=("flair", "t2"))
    flair = volumes.images["flair"].astype(np.float64)
    low, high = flair.min(axis=(0, 1)), flair.max(axis=(0, 1))
    span = np.where(high > low, high - low, 1.0)
    want = np.where(high > low, (flair - low) / span, 0.0)
    options = PreprocessOptions(size=8, normalise="paper", image_dtype="float16")
    paper = slice_case(volumes, options)
    per_slice = slice_case(volumes, replace(options, normalise="minmax-slice"))
    np.testing.assert_array_equal(paper.images, per_slice.images)
    np.testing.assert_allclose(normalise(flair, "paper"), want, atol=1e-6)


def test_normalise_refuses_non_finite_and_unknown_methods():
    bad = np.ones((2, 2, 2), dtype=np.float32)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        normalise(bad, "minmax-slice")
    with pytest.raises(ValueError, match="unknown normalise "):
        normalise(np.ones((2, 2, 2)), "minmax")


# -- masks and slices ---------------------------------------------------------------------


def test_binary_mask_whole_tumour_and_label_subsets():
    label = np.array([[0, 1, 2], [3, 4, 0]])
    np.testing.assert_array_equal(binary_mask(label), label > 0)
    np.testing.assert_array_equal(binary_mask(label, [1, 4]), [[0, 1, 0], [0, 1, 0]])


def test_a_case_whose_labels_are_below_0_is_refused_unless_they_are_named():
    volumes = _volumes()
    coded = replace(volumes, label=-volumes.label)  # tumour coded -2 and -4
    with pytest.raises(CaseError, match=r"case case1: label values below 0 \(lowest -4\)"):
        slice_case(coded, PreprocessOptions(size=16))
    named = slice_case(coded, PreprocessOptions(size=16, labels=(-2, -4)))
    plain = slice_case(volumes, PreprocessOptions(size=16))
    np.testing.assert_array_equal(named.masks, plain.masks)


def test_outside_brain_needs_every_modality_constant():
    a = np.ones((3, 3, 3))
    b = np.ones((3, 3, 3))
    a[0, 0, 1] = 2  # slice 1 varies in a only
    b[0, 0, 2] = 5
    np.testing.assert_array_equal(outside_brain([a, b]), [True, False, False])


# -- resizing -------------------------------------------------------------------------------


def test_resize_images_is_bilinear_with_half_pixel_centres():
    ramp = np.array([[0.0, 1.0]] * 2, dtype=np.float32)[None, None]
    out = resize_images(ramp, 4)
    np.testing.assert_allclose(out[0, 0, 0], [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_array_equal(resize_images(ramp, 2), ramp)  # same size: no interpolation


def test_resize_images_matches_opencv_when_enlarging():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (24, 24)).astype(np.float32)
    ours = resize_images(image[None, None], 32)[0, 0]
    theirs = cv2.resize(image, (32, 32), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_shrinking_is_antialiased_and_stays_in_range():
    checker = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)[None, None]
    out = resize_images(checker, 16)
    assert out.shape == (1, 1, 16, 16)
    np.testing.assert_allclose(out, 0.5, atol=0.05)  # aliasing would give 0s and 1s
    assert 0.0 <= out.min() and out.max() <= 1.0


@pytest.mark.parametrize("size", [32, 12])
def test_paper_mask_resize_is_opencv_bilinear_then_positive(size: int):
    rng = np.random.default_rng(3)
    masks = rng.uniform(size=(3, 24, 24)) > 0.9
    ours = resize_masks(masks, size, "paper")
    theirs = np.stack(
        [
            cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR) > 0
            for m in masks
        ]
    )
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(("n_in", "size"), [(240, 256), (240, 64), (30, 10), (7, 7)])
def test_paper_mask_resize_equals_torch_bilinear_then_positive(n_in: int, size: int):
    rng = np.random.default_rng(n_in + size)
    masks = rng.uniform(size=(4, n_in, n_in + 3)) > 0.97
    reference = (
        F.interpolate(
            torch.from_numpy(masks.astype(np.float32))[:, None],
            size=(size, size),
            mode="bilinear",
            align_corners=False,
        )[:, 0]
        > 0
    )
    np.testing.assert_array_equal(resize_masks(masks, size, "paper"), reference.numpy())


def test_paper_mask_resize_is_exact_where_a_sample_falls_on_a_pixel_centre():
    # 10 -> 30: outputs 1, 4, 7, ... sample source pixels 0, 1, 2, ... exactly, so only that
    # pixel counts (float arithmetic, as in torch, may give its neighbour a weight of 1e-8).
    mask = np.zeros((1, 10, 10), dtype=bool)
    mask[0, 5, 5] = True
    out = resize_masks(mask, 30, "paper")
    rows = np.flatnonzero(out[0].any(axis=1))
    np.testing.assert_array_equal(rows, [14, 15, 16, 17, 18])  # 16 is exact: no 19 or 13


def test_nearest_mask_resize_matches_opencv_nearest_exact():
    rng = np.random.default_rng(4)
    masks = rng.uniform(size=(2, 20, 20)) > 0.7
    # 20 -> 28: no output pixel centre maps exactly onto a source pixel border, where
    # OpenCV's fixed-point arithmetic may round the other way.
    ours = resize_masks(masks, 28, "nearest")
    theirs = np.stack(
        [
            cv2.resize(m.astype(np.uint8), (28, 28), interpolation=cv2.INTER_NEAREST_EXACT)
            for m in masks
        ]
    )
    np.testing.assert_array_equal(ours, theirs.astype(bool))


def test_paper_mask_resize_keeps_more_pixels_than_nearest():
    mask = np.zeros((1, 10, 10), dtype=bool)
    mask[0, 4, 4] = True
    paper = resize_masks(mask, 25, "paper")
    nearest = resize_masks(mask, 25, "nearest")
    assert nearest.sum() < paper.sum()
    assert (paper | nearest).sum() == paper.sum()


def test_pad_to_square_centres_and_to_image_dtype_quantises():
    stack = np.ones((2, 3, 5), dtype=np.float32)
    padded = pad_to_square(stack)
    assert padded.shape == (2, 5, 5)
    np.testing.assert_array_equal(padded[0, :, 0], [0, 1, 1, 1, 0])
    values = np.array([0.0, 0.5, 1.0, 1.0000001], dtype=np.float32)
    np.testing.assert_array_equal(to_image_dtype(values, "uint8"), [0, 128, 255, 255])
    assert to_image_dtype(values, "float16").dtype == np.float16


# -- modalities -----------------------------------------------------------------------------


def test_paper_modalities_take_t1c_for_brats_and_t1_elsewhere():
    have = ("flair", "t1", "t1c", "t2")
    assert choose_modalities(have, "paper", "brats2021") == ("flair", "t1c", "t2")
    assert choose_modalities(have, "paper", "ucsf-pdgm") == ("flair", "t1", "t2")
    assert choose_modalities(("flair", "t1c"), "paper", "brats2015") == ("flair", "t1c")
    assert choose_modalities(("t1c", "t2"), "paper", "upenn-gbm") == ("t1c", "t2")
    assert choose_modalities(("t2",), "paper", "lgg-kaggle") == ("t2",)
    # none of the paper's sequences (a CT, an nnU-Net channel "MRI"): every channel
    assert choose_modalities(("mri", "ct"), "paper", "nnunet") == ("ct", "mri")
    assert choose_modalities(have, "all") == have
    assert choose_modalities(have, ("t2", "flair")) == ("t2", "flair")
    with pytest.raises(ValueError, match="no t2 image"):
        choose_modalities(("flair", "t1c"), ("flair", "t2"))


def test_options_validate_and_round_trip():
    options = PreprocessOptions(size=64, modalities=("flair", "t1c"), stack=True, labels=(4, 1))
    assert options.labels == (1, 4)
    assert options.channels == ("flair", "t1c")
    assert PreprocessOptions.from_dict(options.to_dict()) == options
    with pytest.raises(ValueError, match="--stack needs the channels in order"):
        PreprocessOptions(stack=True)
    with pytest.raises(ValueError, match="normalise"):
        PreprocessOptions(normalise="minmax")  # type: ignore[arg-type]


# -- one case -------------------------------------------------------------------------------


def test_slice_case_gives_one_sample_per_modality_and_slice():
    volumes = _volumes()
    out = slice_case(volumes, PreprocessOptions(size=16))
    assert out.images.shape == (10, 1, 16, 16) and out.images.dtype == np.uint8
    assert out.masks.shape == (10, 16, 16) and out.masks.dtype == np.uint8
    assert out.modality == ["flair"] * 5 + ["t1c"] * 5
    np.testing.assert_array_equal(out.slice_index, [0, 1, 2, 3, 4] * 2)
    np.testing.assert_array_equal(out.masks[:5], out.masks[5:])  # one mask per slice
    np.testing.assert_array_equal(out.area, out.masks.reshape(10, -1).sum(axis=1))
    assert out.area[0] == 0 and out.area[2] > 0
    assert out.images[0].max() == 0  # the constant background slice
    assert out.images[1].min() < 30 and out.images[1].max() > 225  # min-max, then resized
    assert out.pixel_spacing == (1.0 * 8 / 16, 2.0 * 6 / 16)  # non-square: stretched


def test_slice_case_labels_keep_aspect_and_drop_outside_brain():
    volumes = _volumes()
    options = PreprocessOptions(
        size=16, labels=(4,), keep_aspect=True, drop_outside_brain=True, image_dtype="float16"
    )
    out = slice_case(volumes, options)
    assert len(out) == 8  # slice 0 dropped, in both modalities
    np.testing.assert_array_equal(out.slice_index, [1, 2, 3, 4] * 2)
    assert out.images.dtype == np.float16
    assert out.area[out.slice_index == 2].min() > 0  # the label-4 voxel
    assert out.area[out.slice_index == 1].max() == 0  # label 2 is not counted
    assert out.pixel_spacing == (8 / 16, 2.0 * 8 / 16)
    # padding: the first and last columns (6 -> 8 wide before resizing) are background
    assert out.images[:, 0, :, 0].max() == 0


def test_slice_case_stacks_modalities_as_channels():
    volumes = _volumes(modalities=("flair", "t1c", "t2"))
    options = PreprocessOptions(size=8, modalities=("t2", "flair"), stack=True)
    out = slice_case(volumes, options)
    assert out.images.shape == (5, 2, 8, 8)
    assert out.modality == ["t2+flair"] * 5
    single = slice_case(volumes, PreprocessOptions(size=8, modalities=("t2",)))
    np.testing.assert_array_equal(out.images[:, 0], single.images[:, 0])


def test_slice_case_raises_case_errors():
    volumes = _volumes(modalities=("flair",))
    with pytest.raises(CaseError, match="no t1c image"):
        slice_case(volumes, PreprocessOptions(modalities=("flair", "t1c"), stack=True))
    volumes.images["flair"] = volumes.images["flair"][:, :, :3]
    with pytest.raises(CaseError, match="shape"):
        slice_case(volumes, PreprocessOptions(size=8))
