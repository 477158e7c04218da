"""calfseg.stats.foreground_areas: pixel counts (fast word-counting path) and contour areas."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calfseg.stats import AREA_METHODS, foreground_areas


def reference_counts(masks: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The obvious count: nonzero elements of each sample, as float64."""
    m = torch.as_tensor(np.ascontiguousarray(masks) if isinstance(masks, np.ndarray) else masks)
    return (m != 0).flatten(1).sum(dim=1).to(torch.float64)


def random_mask(shape: tuple[int, ...], density: float, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).random(shape) < density)


def cv2_area(mask: np.ndarray) -> float:
    """The authors' measurement, written out directly (docs/method.md section 2)."""
    binary = (mask > 0).astype(np.uint8) * 255
    contours, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    return float(sum(cv2.contourArea(c) for c in contours))


# -- pixel counts: layouts -------------------------------------------------------------------


def test_pixels_counts_each_sample_of_b_h_w() -> None:
    masks = torch.zeros(3, 5, 6, dtype=torch.bool)
    masks[0, :2, :3] = True  # 6
    masks[2] = True  # 30
    assert foreground_areas(masks).tolist() == [6.0, 0.0, 30.0]


def test_pixels_accepts_singleton_channel_b_1_h_w() -> None:
    masks = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    masks[1, 0, 1:3, 1:3] = True
    out = foreground_areas(masks)
    assert out.shape == (2,)
    assert out.tolist() == [0.0, 4.0]


def test_pixels_counts_voxels_of_b_1_d_h_w() -> None:
    masks = torch.zeros(2, 1, 3, 4, 5, dtype=torch.bool)
    masks[0, 0, 1] = True  # one slice: 20 voxels
    masks[1, 0, :, 0, 0] = True  # a column: 3 voxels
    assert foreground_areas(masks).tolist() == [20.0, 3.0]


def test_per_channel_gives_b_by_c_counts() -> None:
    masks = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    masks[0, 0, 0, 0] = 1
    masks[0, 2] = 1
    masks[1, 1, :2] = 1
    out = foreground_areas(masks, per_channel=True)
    assert out.shape == (2, 3)
    assert out.tolist() == [[1.0, 0.0, 16.0], [0.0, 8.0, 0.0]]


def test_per_channel_measures_3d_channels() -> None:
    masks = random_mask((2, 3, 4, 8, 8), 0.4, seed=1)
    out = foreground_areas(masks, per_channel=True)
    assert out.shape == (2, 3)
    assert torch.equal(out, masks.flatten(2).sum(2).to(torch.float64))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda m: m, id="bool"),
        pytest.param(lambda m: m.to(torch.uint8), id="uint8-0-1"),
        pytest.param(lambda m: m.to(torch.uint8) * 255, id="uint8-0-255"),
        pytest.param(lambda m: m.to(torch.int64), id="int64"),
        pytest.param(lambda m: m.to(torch.float32) * 0.3, id="float32-fractional"),
        pytest.param(lambda m: m.to(torch.float32) * -1.0, id="float32-negative"),
    ],
)
def test_pixels_counts_any_nonzero_value_of_any_dtype(make) -> None:
    base = random_mask((4, 16, 24), 0.3, seed=2)
    assert torch.equal(foreground_areas(make(base)), reference_counts(base))


def test_result_is_float64_on_the_input_device() -> None:
    out = foreground_areas(torch.ones(2, 8, 8, dtype=torch.uint8))
    assert out.dtype == torch.float64
    assert out.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", AREA_METHODS)
def test_result_stays_on_the_cuda_device(method: str) -> None:
    masks = random_mask((3, 16, 16), 0.5, seed=3)
    out = foreground_areas(masks.cuda(), method)
    assert out.device.type == "cuda"
    assert out.dtype == torch.float64
    assert torch.equal(out.cpu(), foreground_areas(masks, method))


@pytest.mark.parametrize(
    ("shape", "per_channel", "expected_shape"),
    [
        ((0, 8, 8), False, (0,)),
        ((0, 1, 8, 8), False, (0,)),
        ((0, 1, 2, 8, 8), False, (0,)),
        ((0, 3, 8, 8), True, (0, 3)),
        ((2, 0, 8, 8), True, (2, 0)),
    ],
)
def test_empty_batch_gives_empty_float64_tensor(shape, per_channel, expected_shape) -> None:
    out = foreground_areas(torch.zeros(shape, dtype=torch.bool), per_channel=per_channel)
    assert out.shape == expected_shape
    assert out.dtype == torch.float64


def test_empty_batch_with_contour_gives_empty_tensor() -> None:
    out = foreground_areas(torch.zeros(0, 8, 8), "contour")
    assert out.shape == (0,)
    assert out.dtype == torch.float64


def test_zero_sized_masks_have_area_zero() -> None:
    assert foreground_areas(torch.zeros(2, 0, 8, dtype=torch.bool)).tolist() == [0.0, 0.0]


def test_numpy_input_is_accepted() -> None:
    masks = np.zeros((2, 1, 6, 6), dtype=np.uint8)
    masks[1, 0, :3, :3] = 255
    out = foreground_areas(masks)
    assert isinstance(out, torch.Tensor)
    assert out.tolist() == [0.0, 9.0]


def test_numpy_input_with_negative_strides_is_accepted() -> None:
    base = np.random.default_rng(4).random((3, 8, 16)) < 0.3
    flipped = np.flip(base, axis=(1, 2))
    assert torch.equal(foreground_areas(flipped), reference_counts(base))
    assert torch.equal(foreground_areas(flipped.astype(np.uint8)), reference_counts(base))


def test_bool_view_of_0_255_bytes_counts_elements_not_byte_values() -> None:
    # np.uint8 data reinterpreted as bool holds bytes of 255; every one is a single True.
    raw = np.zeros((2, 8, 8), dtype=np.uint8)
    raw[0, :4] = 255
    raw[1, 0, 0] = 2
    assert foreground_areas(raw.view(bool)).tolist() == [32.0, 1.0]
    # A torch bool tensor with such bytes breaks torch's own invariant (bytes 0/1) and is
    # not supported; the same data as uint8 is counted right.
    assert foreground_areas(torch.from_numpy(raw)).tolist() == [32.0, 1.0]


# -- pixel counts: the word-counting fast path against the plain reduction -------------------

AWKWARD_SHAPES = [
    pytest.param((3, 7, 9), id="7x9-not-multiple-of-8"),
    pytest.param((2, 1, 8), id="1x8-one-word"),
    pytest.param((2, 8, 257), id="8x257-prime-word-count"),
    pytest.param((2, 255, 8), id="255-words-one-chunk"),
    pytest.param((2, 8, 2041), id="8x2041-word-count-13x157"),
    pytest.param((2, 256, 256), id="256x256"),
    pytest.param((2, 1, 24, 24, 15), id="24x24x15-brats-like"),
    pytest.param((1, 1, 40, 48, 31), id="40x48x31"),
]


@pytest.mark.parametrize("shape", AWKWARD_SHAPES)
@pytest.mark.parametrize("density", [0.0, 0.07, 0.5, 1.0])
def test_fast_count_matches_reference_on_awkward_sizes(shape, density) -> None:
    masks = random_mask(shape, density, seed=5)
    assert torch.equal(foreground_areas(masks), reference_counts(masks))


def test_all_ones_256x256_counts_65536_without_counter_overflow() -> None:
    masks = torch.ones(3, 1, 256, 256, dtype=torch.bool)
    assert foreground_areas(masks).tolist() == [65536.0] * 3


def test_all_ones_3d_volume_counts_every_voxel() -> None:
    masks = torch.ones(2, 1, 64, 64, 40, dtype=torch.uint8)
    assert foreground_areas(masks).tolist() == [64 * 64 * 40.0] * 2


@st.composite
def masks_and_layout(draw) -> tuple[torch.Tensor, bool]:
    """Random masks: 2D or 3D, any size, density from empty to full, several dtypes."""
    b = draw(st.integers(0, 3))
    ndim = draw(st.sampled_from([2, 3]))
    max_side = 300 if ndim == 2 else 40
    spatial = tuple(draw(st.integers(1, max_side)) for _ in range(ndim))
    if ndim == 2 and draw(st.booleans()):
        spatial = draw(st.sampled_from([(256, 256), (8, 257), (240, 240), (7, 9)]))
    density = draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**32 - 1))
    fg = random_mask((b, *spatial), density, seed)
    dtype = draw(st.sampled_from([torch.bool, torch.uint8, torch.int64, torch.float32]))
    masks = fg.to(dtype) * (255 if dtype == torch.uint8 and draw(st.booleans()) else 1)
    per_channel = draw(st.booleans())
    if per_channel:
        masks = masks.unsqueeze(1).expand(-1, draw(st.integers(1, 2)), *spatial)
    elif ndim == 3 or draw(st.booleans()):
        masks = masks.unsqueeze(1)
    return masks, per_channel


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(masks_and_layout())
def test_fast_count_matches_reference_for_random_shapes_and_densities(case) -> None:
    masks, per_channel = case
    out = foreground_areas(masks, per_channel=per_channel)
    expected = reference_counts(masks.flatten(0, 1) if per_channel else masks)
    assert out.dtype == torch.float64
    assert torch.equal(out.reshape(-1), expected)


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(lambda m: m.transpose(1, 2), id="transposed"),
        pytest.param(lambda m: m[:, 1:, 3:], id="sliced"),
        pytest.param(lambda m: m[:, ::2, :], id="strided"),
        pytest.param(lambda m: m[1:], id="offset-not-word-aligned"),
        pytest.param(lambda m: m[:1].expand(3, -1, -1), id="expanded-stride-0"),
        pytest.param(
            lambda m: m.unsqueeze(1).contiguous(memory_format=torch.channels_last),
            id="channels-last",
        ),
    ],
)
def test_non_contiguous_views_are_counted_correctly(view) -> None:
    # 17 x 24: rows are 408 bytes (51 words), so m[1:] starts at a byte offset that is a
    # multiple of 8 but not of the int64 view's chunk, and m[:, 1:, 3:] is ragged.
    base = random_mask((4, 17, 24), 0.4, seed=6)
    masks = view(base)
    assert torch.equal(foreground_areas(masks), reference_counts(masks.contiguous()))


def test_bool_tensor_starting_at_an_odd_byte_offset_is_counted() -> None:
    storage = torch.ones(1 + 2 * 64, dtype=torch.bool)
    masks = storage[1:].view(2, 8, 8)  # contiguous, storage offset 1
    assert masks.storage_offset() == 1
    assert foreground_areas(masks).tolist() == [64.0, 64.0]


# -- errors ------------------------------------------------------------------------------------

ACCEPTED_SHAPES = r"\(B, H, W\), \(B, 1, H, W\) or \(B, 1, D, H, W\)"


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param((2, 2, 8, 8), id="two-channels-without-per_channel"),
        pytest.param((8,), id="1d"),
        pytest.param((8, 8), id="2d"),
        pytest.param((2, 3, 4, 8, 8), id="3d-three-channels"),
        pytest.param((1, 1, 1, 2, 8, 8), id="6d"),
    ],
)
def test_bad_shape_is_a_value_error_naming_the_accepted_shapes(shape) -> None:
    with pytest.raises(ValueError, match=ACCEPTED_SHAPES):
        foreground_areas(torch.zeros(shape))


def test_bad_shape_error_points_to_per_channel() -> None:
    with pytest.raises(ValueError, match="per_channel=True"):
        foreground_areas(torch.zeros(2, 2, 8, 8))


def test_per_channel_needs_a_channel_dimension() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, \*spatial\)"):
        foreground_areas(torch.zeros(2, 8), per_channel=True)


def test_unknown_method_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown method "):
        foreground_areas(torch.zeros(1, 8, 8), "area")


def test_complex_masks_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="complex"):
        foreground_areas(torch.zeros(1, 8, 8, dtype=torch.complex64))


# -- contour areas -----------------------------------------------------------------------------


@pytest.mark.parametrize("side", [2, 3, 5, 10, 64])
def test_contour_area_of_filled_square_is_side_minus_one_squared(side: int) -> None:
    masks = torch.zeros(1, 80, 80, dtype=torch.bool)
    masks[0, 5 : 5 + side, 7 : 7 + side] = True
    assert foreground_areas(masks, "contour").item() == (side - 1) ** 2


def test_contour_area_of_a_single_pixel_is_zero() -> None:
    masks = torch.zeros(2, 9, 9, dtype=torch.uint8)
    masks[0, 4, 4] = 1
    assert foreground_areas(masks, "contour").tolist() == [0.0, 0.0]


def test_contour_area_of_empty_mask_is_zero() -> None:
    assert foreground_areas(torch.zeros(1, 16, 16), "contour").item() == 0.0


@pytest.mark.parametrize("hole", [1, 3, 5])
def test_contour_area_adds_the_hole_instead_of_subtracting_it(hole: int) -> None:
    side = 12
    masks = torch.zeros(1, 20, 20, dtype=torch.bool)
    masks[0, 2 : 2 + side, 2 : 2 + side] = True
    masks[0, 6 : 6 + hole, 6 : 6 + hole] = False
    outer = (side - 1) ** 2
    # RETR_TREE also returns the hole's contour; it runs through the pixels around the hole
    # with its four corners cut (8-connectivity): a (hole+1)-square less four half units.
    hole_contour = (hole + 1) ** 2 - 2
    area = foreground_areas(masks, "contour").item()
    assert area == outer + hole_contour
    assert area > outer


def test_contour_areas_of_separate_blobs_add() -> None:
    masks = torch.zeros(1, 40, 40, dtype=torch.bool)
    masks[0, 2:7, 2:7] = True  # 16
    masks[0, 20:30, 10:13] = True  # 9 * 2 = 18
    assert foreground_areas(masks, "contour").item() == 16 + 18


def test_contour_area_of_b_1_h_w_and_per_channel_layouts() -> None:
    masks = torch.zeros(2, 2, 10, 10, dtype=torch.bool)
    masks[0, 1, :4, :4] = True  # 9
    masks[1, 0, :3, :6] = True  # 10
    per_channel = foreground_areas(masks, "contour", per_channel=True)
    assert per_channel.tolist() == [[0.0, 9.0], [10.0, 0.0]]
    single = foreground_areas(masks[:, 1:], "contour")
    assert single.tolist() == [9.0, 0.0]


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    density=st.floats(0.05, 0.95),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 64), st.integers(1, 64)),
)
def test_contour_area_matches_direct_cv2_on_random_blobs(seed, density, shape) -> None:
    rng = np.random.default_rng(seed)
    # Blobs, not salt and pepper: threshold a smoothed noise field.
    noise = rng.random(shape)
    smooth = np.stack([cv2.blur(n, (5, 5)) for n in noise])
    masks = smooth > np.quantile(smooth, 1.0 - density)
    expected = [cv2_area(m) for m in masks]
    out = foreground_areas(torch.from_numpy(masks), "contour")
    assert out.dtype == torch.float64
    assert out.tolist() == expected
    assert all(math.isfinite(a) and a >= 0 for a in expected)


def test_contour_on_3d_masks_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="2D"):
        foreground_areas(torch.zeros(1, 1, 4, 8, 8), "contour")
    with pytest.raises(ValueError, match="2D"):
        foreground_areas(torch.zeros(1, 2, 4, 8, 8), "contour", per_channel=True)
