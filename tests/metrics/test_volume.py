"""Per-case 3D HD95 and ASSD (calfseg.metrics.volume) against medpy 0.5.2, an independent
implementation (scipy's exact Euclidean distance transform with the voxel spacing):

- ``hd95_mm``: the larger of the two directed 95th percentiles, computed here from medpy's
  directed surface distances with ``np.percentile`` (medpy's own ``hd95`` takes the
  percentile of their union, another definition, checked to be never larger);
- ``assd_mm``: medpy's ``assd`` (the mean over the union of both directions).
"""

from __future__ import annotations

import numpy as np
import pytest
from medpy.metric import binary
from scipy import ndimage

from calfseg.errors import DataValueError, OptionError
from calfseg.metrics import case_volume, per_case_distances, volume_distances

# medpy's module-level helper: the distances from every surface voxel of the first mask to
# the nearest surface voxel of the second (no name mangling at module level)
_directed = getattr(binary, "__surface_distances")


def _medpy_reference(pred: np.ndarray, true: np.ndarray, spacing) -> dict[str, float]:
    d_pt = _directed(pred, true, spacing, 1)
    d_tp = _directed(true, pred, spacing, 1)
    hd95 = max(np.percentile(d_pt, 95), np.percentile(d_tp, 95))
    return {"hd95_mm": float(hd95), "assd_mm": float(binary.assd(pred, true, spacing))}


def _blob(shape, centre, radii) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
    return inside <= 1.0


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.9375, 1.3, 3.0), (2.5, 0.7, 5.0)])
@pytest.mark.parametrize("seed", range(4))
def test_equal_to_medpy_on_random_lesions_with_anisotropic_spacing(seed, spacing) -> None:
    rng = np.random.default_rng(seed)
    shape = (40, 36, 20)
    true = _blob(shape, rng.uniform(10, 25, 3), rng.uniform(3, 9, 3))
    pred = ndimage.binary_dilation(true, iterations=int(rng.integers(1, 3)))
    pred &= rng.random(shape) > 0.05  # holes: an irregular surface
    pred[rng.integers(0, 40), rng.integers(0, 36), rng.integers(0, 20)] = True  # a stray voxel
    ours = volume_distances(pred, true, spacing)
    theirs = _medpy_reference(pred, true, spacing)
    assert ours == pytest.approx(theirs, abs=1e-6)
    assert ours["hd95_mm"] >= binary.hd95(pred, true, spacing) - 1e-9  # medpy's union q95


def test_masks_at_the_volume_border_count_the_outside_as_background() -> None:
    shape = (20, 20, 8)
    true = np.zeros(shape, bool)
    true[:6, :5, :3] = True  # a corner block: its border faces lie on the volume's border
    pred = np.zeros(shape, bool)
    pred[:7, 2:9, :] = True  # through every slice
    spacing = (1.2, 0.8, 4.0)
    assert volume_distances(pred, true, spacing) == pytest.approx(
        _medpy_reference(pred, true, spacing), abs=1e-6
    )


def test_empty_masks_score_zero_or_the_volume_diagonal() -> None:
    shape, spacing = (10, 12, 5), (1.0, 2.0, 3.0)
    empty = np.zeros(shape, bool)
    lesion = empty.copy()
    lesion[3:5, 3:5, 2] = True
    assert volume_distances(empty, empty, spacing) == {"hd95_mm": 0.0, "assd_mm": 0.0}
    diagonal = np.sqrt((10 * 1.0) ** 2 + (12 * 2.0) ** 2 + (5 * 3.0) ** 2)  # by hand: 30.02
    assert volume_distances(lesion, empty, spacing)["hd95_mm"] == pytest.approx(diagonal)
    assert volume_distances(empty, lesion, spacing)["assd_mm"] == pytest.approx(diagonal)


def test_bad_inputs_are_refused() -> None:
    cube = np.ones((3, 3, 3), bool)
    with pytest.raises(OptionError, match="3D"):
        volume_distances(cube[0], cube[0], (1, 1, 1))
    with pytest.raises(OptionError, match="shape"):
        volume_distances(cube, cube[:2], (1, 1, 1))
    with pytest.raises(OptionError, match="spacing"):
        volume_distances(cube, cube, (1, 0, 1))


def test_a_case_volume_puts_each_row_at_its_slice_and_leaves_gaps_empty() -> None:
    rows = np.zeros((3, 4, 4), bool)
    rows[0, 0, 0] = rows[1, 1, 1] = rows[2, 2, 2] = True
    volume = case_volume(rows, np.array([7, 5, 9]))
    assert volume.shape == (4, 4, 5)  # slices 5..9
    assert volume[1, 1, 0] and volume[0, 0, 2] and volume[2, 2, 4]
    assert volume.sum() == 3 and not volume[..., [1, 3]].any()  # slices 6 and 8: dropped
    with pytest.raises(DataValueError, match="same slice_index"):
        case_volume(rows, np.array([5, 5, 6]))


def test_per_case_distances_stacks_each_case_and_averages_its_modalities() -> None:
    rng = np.random.default_rng(3)
    true_a = _blob((16, 16, 6), (8, 8, 3), (4, 5, 2))
    pred_a1 = ndimage.binary_dilation(true_a)
    pred_a2 = np.roll(true_a, 2, axis=0)
    true_b = _blob((16, 16, 4), (5, 9, 1.5), (3, 3, 2))
    pred_b = true_b & (rng.random(true_b.shape) > 0.1)
    spacing_a, spacing_b = (0.5, 0.5, 2.0), (1.0, 1.0, 1.5)

    def rows(volume):  # (H, W, Z) -> (Z, H, W) rows
        return np.moveaxis(volume, -1, 0)

    # case a: two modalities (one-modality-per-sample), slices 10..15; case b: slices 0..3
    pred = np.concatenate([rows(pred_a1), rows(pred_a2), rows(pred_b)])
    true = np.concatenate([rows(true_a), rows(true_a), rows(true_b)])
    ids = ["a"] * 12 + ["b"] * 4
    modality = ["t1"] * 6 + ["flair"] * 6 + ["t1"] * 4
    k = [*range(10, 16), *range(10, 16), *range(4)]
    spacing = np.array([spacing_a] * 12 + [spacing_b] * 4)
    got = per_case_distances(pred, true, ids, k, spacing, modality=modality)
    a1 = _medpy_reference(pred_a1, true_a, spacing_a)
    a2 = _medpy_reference(pred_a2, true_a, spacing_a)
    assert got["a"] == pytest.approx({m: (a1[m] + a2[m]) / 2 for m in a1}, abs=1e-6)
    assert got["b"] == pytest.approx(_medpy_reference(pred_b, true_b, spacing_b), abs=1e-6)
