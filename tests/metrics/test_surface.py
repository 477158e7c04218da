"""HD95 and ASSD in mm: hand-computed geometry with anisotropic spacing, the empty-mask
rules, and equality with MONAI's own functions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from calfseg.metrics import SurfaceDistances, image_diagonal_mm, surface_distances

monai_metrics = pytest.importorskip("monai.metrics")


def masks(h: int, w: int, *pixel_sets: list[tuple[int, int]]) -> torch.Tensor:
    """A (B, 1, H, W) bool batch, image b having the listed pixels set."""
    out = torch.zeros(len(pixel_sets), 1, h, w, dtype=torch.bool)
    for b, pixels in enumerate(pixel_sets):
        for r, c in pixels:
            out[b, 0, r, c] = True
    return out


def square(r0: int, c0: int, side: int = 3) -> list[tuple[int, int]]:
    return [(r, c) for r in range(r0, r0 + side) for c in range(c0, c0 + side)]


@pytest.mark.parametrize(
    ("spacing", "distance"),
    [((1.0, 2.0), 5.0), ((2.0, 1.0), math.sqrt(40.0)), (1.0, math.sqrt(13.0))],
)
def test_two_single_pixels_at_a_known_distance(spacing, distance) -> None:
    # offsets: 3 rows and 2 columns; (s_rows, s_cols) = (1, 2) mm -> (3, 4) mm -> 5 mm
    pred, truth = masks(8, 8, [(1, 1)]), masks(8, 8, [(4, 3)])
    d = surface_distances(pred, truth, spacing)
    assert d.hd95[0] == pytest.approx(distance, rel=1e-6)
    assert d.assd[0] == pytest.approx(distance, rel=1e-6)
    assert not d.both_empty[0] and not d.one_empty[0]


@pytest.mark.parametrize(
    ("shift", "hd95", "assd"),
    [
        # 3x3 squares shifted by 2 pixels; edge pixels are the 8 around the centre. From
        # each square's edge to the other's: 3 pixels at 0, 2 at 1 step, 3 at 2 steps, so
        # q95 of [0,0,0,1,1,2,2,2] steps = 2 steps (linear interpolation at 6.65 of 7),
        # and the mean = 8/8 = 1 step. One step is s_cols = 0.5 mm or s_rows = 2 mm.
        ((0, 2), 2 * 0.5, 1 * 0.5),
        ((2, 0), 2 * 2.0, 1 * 2.0),
    ],
)
def test_square_versus_shifted_square_with_anisotropic_spacing(shift, hd95, assd) -> None:
    dr, dc = shift
    pred, truth = masks(10, 10, square(2, 2)), masks(10, 10, square(2 + dr, 2 + dc))
    d = surface_distances(pred, truth, (2.0, 0.5))
    assert d.hd95[0] == pytest.approx(hd95, rel=1e-6)
    assert d.assd[0] == pytest.approx(assd, rel=1e-6)


def test_identical_masks_and_full_image_masks_are_at_distance_zero() -> None:
    full = [(r, c) for r in range(4) for c in range(5)]
    pred = masks(4, 5, square(0, 0, 2), full)
    d = surface_distances(pred, pred.clone(), 0.7)
    np.testing.assert_array_equal(d.hd95, [0.0, 0.0])
    np.testing.assert_array_equal(d.assd, [0.0, 0.0])


def test_missed_lesion_and_false_alarm_cost_the_image_diagonal_both_empty_is_zero() -> None:
    # H = 3, W = 8, spacing (1.0, 0.5) mm: diagonal sqrt(3^2 + 4^2) = 5 mm
    lesion = [(1, 2), (1, 3)]
    pred = masks(3, 8, [], lesion, [])
    truth = masks(3, 8, lesion, [], [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no MONAI "all 0" warning, no NaN/inf arithmetic
        d = surface_distances(pred, truth, (1.0, 0.5))
    np.testing.assert_allclose(d.hd95, [5.0, 5.0, 0.0])
    np.testing.assert_allclose(d.assd, [5.0, 5.0, 0.0])
    np.testing.assert_array_equal(d.one_empty, [True, True, False])
    np.testing.assert_array_equal(d.both_empty, [False, False, True])
    assert np.isfinite(d.hd95).all() and np.isfinite(d.assd).all()


def test_image_diagonal_uses_each_images_spacing() -> None:
    got = image_diagonal_mm((3, 8), np.array([[1.0, 0.5], [2.0, 0.75]]))
    np.testing.assert_allclose(got, [5.0, math.hypot(6.0, 6.0)])


@pytest.mark.parametrize("policy", ["one", "exclude"])
def test_both_empty_images_follow_the_policy_in_the_mean(policy) -> None:
    pred = masks(3, 8, [(0, 0)], [], [])
    truth = masks(3, 8, [(0, 3)], [(1, 1)], [])  # 3 columns apart: 1.5 mm; missed: 5 mm
    d = surface_distances(pred, truth, (1.0, 0.5))
    score = d.scores("hd95_mm").mean(policy)
    if policy == "one":
        assert score.value == pytest.approx((1.5 + 5.0 + 0.0) / 3) and score.n_used == 3
    else:
        assert score.value == pytest.approx((1.5 + 5.0) / 2) and score.n_excluded == 1


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")
def test_results_equal_monais_functions_with_per_image_spacing() -> None:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:24, :20]
    blobs = []
    for _ in range(12):
        cy, cx, ry, rx = rng.uniform(4, 18), rng.uniform(4, 16), *rng.uniform(1.5, 6, 2)
        blobs.append(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1)
    stack = torch.from_numpy(np.stack(blobs))[:, None]
    pred, truth = stack[:6], stack[6:]
    spacing = rng.uniform(0.4, 2.5, size=(6, 2))
    d = surface_distances(pred, truth, spacing)
    kwargs = {"include_background": True, "spacing": spacing.tolist()}
    hd = monai_metrics.compute_hausdorff_distance(
        pred.float(), truth.float(), percentile=95, **kwargs
    )
    asd = monai_metrics.compute_average_surface_distance(
        pred.float(), truth.float(), symmetric=True, **kwargs
    )
    np.testing.assert_allclose(d.hd95, hd[:, 0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(d.assd, asd[:, 0].numpy(), rtol=1e-6)


def test_monai_itself_gives_nan_for_empty_masks() -> None:
    # the pitfall the diagonal rule replaces: MONAI's HD95 is NaN for both empty AND for a
    # missed lesion (the 95th percentile of [inf, ...] interpolates inf - inf), and its
    # mean reduction skips NaN: missed lesions silently drop out of the mean
    pred = masks(6, 6, [], [])
    truth = masks(6, 6, [], [(2, 2)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {"include_background": True}
        hd95 = monai_metrics.compute_hausdorff_distance(
            pred.float(), truth.float(), percentile=95, **kwargs
        )
        asd = monai_metrics.compute_average_surface_distance(
            pred.float(), truth.float(), symmetric=True, **kwargs
        )
    assert math.isnan(hd95[0, 0]) and math.isnan(hd95[1, 0])
    assert math.isnan(asd[0, 0]) and math.isinf(asd[1, 0])
    ours = surface_distances(pred, truth, 1.0)
    assert ours.hd95.tolist() == [0.0, math.hypot(6, 6)]
    assert ours.assd.tolist() == [0.0, math.hypot(6, 6)]


def test_logits_are_binarised_like_the_counts() -> None:
    truth = masks(6, 6, [(1, 1)])
    logits = torch.full((1, 1, 6, 6), -2.0)
    logits[0, 0, 1, 4] = 0.0  # logit 0 is background ...
    logits[0, 0, 4, 1] = 0.1  # ... 0.1 is foreground, 3 rows away
    d = surface_distances(logits, truth, (2.0, 1.0))
    assert d.hd95[0] == pytest.approx(6.0)


@pytest.mark.parametrize(
    "spacing", [0.5, (0.5, 0.5), [[0.5, 0.5]] * 2, np.full((2, 2), 0.5), torch.full((2, 2), 0.5)]
)
def test_spacing_forms_are_equivalent(spacing) -> None:
    pred, truth = masks(6, 6, [(0, 0)], [(5, 5)]), masks(6, 6, [(0, 4)], [(5, 1)])
    np.testing.assert_allclose(surface_distances(pred, truth, spacing).hd95, [2.0, 2.0])


@pytest.mark.parametrize(
    ("spacing", "message"),
    [
        ((1.0, 1.0, 1.0), "shape"),
        (np.ones((3, 2)), r"\(2, 2\)"),
        (0.0, "positive"),
        ((1.0, math.nan), "positive"),
    ],
)
def test_bad_spacing_is_an_error(spacing, message) -> None:
    pred = masks(4, 4, [(0, 0)], [(1, 1)])
    with pytest.raises(ValueError, match=message):
        surface_distances(pred, pred, spacing)


def test_cat_and_select_keep_images_in_order() -> None:
    a = surface_distances(masks(4, 4, [(0, 0)]), masks(4, 4, [(0, 3)]), 1.0)
    b = surface_distances(masks(4, 4, []), masks(4, 4, []), 1.0)
    joined = SurfaceDistances.cat([a, b])
    assert joined.hd95.tolist() == [3.0, 0.0] and joined.both_empty.tolist() == [False, True]
    assert joined.select(np.array([False, True])).both_empty.tolist() == [True]
    assert len(SurfaceDistances.cat([])) == 0
    with pytest.raises(ValueError, match="unknown metric "):
        joined.scores("hd100")
