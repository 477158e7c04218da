"""calfseg.analyze: measuring masks, scanning folders, statistics, batches, bootstrap."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from calfseg.analyze import (
    FingerprintError,
    NoMaskFilesError,
    ScanResult,
    analyze_areas,
    analyze_moments,
    build_report,
    load_fingerprint,
    measure_mask,
    scan_masks,
)
from calfseg.data.files.masks import MaskFileError
from calfseg.rule import BRANCHES

from .shared_data import BRATS2015_SUBSET as BRATS

RIGHT_SKEWED = [0.0] * 80 + [100.0] * 15 + [1000.0] * 5


def _volume() -> np.ndarray:
    """(H, W, D) = (4, 5, 3): slice areas 0, 6, 20 along the last axis."""
    v = np.zeros((4, 5, 3), dtype=np.uint8)
    v[:2, :3, 1] = 1
    v[:, :, 2] = 2
    return v


# -- measure_mask -------------------------------------------------------------------------


def test_measure_mask_gives_one_area_per_slice_along_the_last_axis() -> None:
    areas, empty = measure_mask(_volume())
    np.testing.assert_array_equal(areas, [0, 6, 20])
    np.testing.assert_array_equal(empty, [True, False, False])


def test_measure_mask_per_volume_labels_and_slice_axis() -> None:
    v = _volume()
    assert measure_mask(v, per_volume=True)[0].tolist() == [26]
    assert measure_mask(v, labels=[2])[0].tolist() == [0, 0, 20]
    assert measure_mask(v, slice_axis=0)[0].tolist() == [8, 8, 5, 5]
    assert measure_mask(v[..., 1])[0].tolist() == [6]  # a 2D mask is one area


def test_measure_mask_contour_area_keeps_one_pixel_masks_non_empty() -> None:
    v = np.zeros((6, 6, 3), dtype=np.uint8)
    v[2, 2, 1] = 1  # one pixel: contour area 0, yet not empty
    v[1:4, 1:4, 2] = 1  # 3x3 square: polygon area 2x2 = 4
    areas, empty = measure_mask(v, area="contour")
    np.testing.assert_array_equal(areas, [0, 0, 4])
    np.testing.assert_array_equal(empty, [True, False, False])


# -- scan_masks ---------------------------------------------------------------------------


def test_scan_masks_keeps_file_order_and_bookkeeping(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", _volume())
    np.save(tmp_path / "b.npy", np.ones((3, 3), dtype=np.uint8))
    scan = scan_masks(tmp_path)
    np.testing.assert_array_equal(scan.areas, [0, 6, 20, 9])
    assert scan.found == 2 and [f.path.name for f in scan.files] == ["a.npy", "b.npy"]
    assert scan.files[0].shape == (4, 5, 3) and scan.files[0].empty == 1
    assert scan.unit == "masks and slices"
    assert scan.to_dict()["read"] == 2


def test_scan_masks_stops_or_skips_on_a_bad_file(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", _volume())
    np.save(tmp_path / "b.npy", np.full((2, 2), 0.5))
    with pytest.raises(MaskFileError, match=r"b\.npy: has non-integer values"):
        scan_masks(tmp_path)
    scan = scan_masks(tmp_path, on_error="skip")
    assert scan.areas.size == 3
    assert [(s.path.name, s.reason[:22]) for s in scan.skipped] == [
        ("b.npy", "has non-integer values")
    ]


def test_scan_masks_without_any_mask_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no masks here")
    with pytest.raises(NoMaskFilesError, match=re.escape(f"{tmp_path}: no mask files found")):
        scan_masks(tmp_path)


# -- statistics and the rule --------------------------------------------------------------


def test_analyze_areas_matches_scipy_and_counts_empties() -> None:
    areas = np.array([0, 0, 3, 5, 8, 13, 40, 0, 2, 100], dtype=float)
    result = analyze_areas(areas, bootstrap=0)
    assert result.n == result.n_measured == 10 and result.n_empty == 3
    assert result.empty_fraction == pytest.approx(0.3)
    assert result.skewness == pytest.approx(sps.skew(areas), rel=1e-12)
    assert result.kurtosis == pytest.approx(sps.kurtosis(areas), rel=1e-12)
    assert result.quantiles is not None
    assert result.quantiles["min"] == 0 and result.quantiles["max"] == 100
    assert result.quantiles["p50"] == pytest.approx(np.median(areas))


def test_exclude_empty_drops_zero_areas_but_reports_how_many() -> None:
    areas = np.array([0, 0, 3, 5, 8, 13, 40], dtype=float)
    result = analyze_areas(areas, exclude_empty=True, bootstrap=0)
    assert result.n == 5 and result.n_measured == 7 and result.n_empty == 2
    assert result.skewness == pytest.approx(sps.skew(areas[areas > 0]), rel=1e-12)


def test_a_known_right_skewed_set_picks_log10_and_its_mirror_fisher() -> None:
    right = analyze_areas(RIGHT_SKEWED, bootstrap=0)
    assert right.skewness > 1 and (right.branch, right.condition) == ("log10", "S >= 1")
    left = analyze_areas([1000.0 - a for a in RIGHT_SKEWED], bootstrap=0)
    assert left.skewness < -1 and left.branch == "fisher"


def test_equal_areas_give_undefined_statistics_and_the_fallback() -> None:
    result = analyze_areas([5.0] * 10, batch_size=4, batches=20, bootstrap=10)
    assert math.isnan(result.skewness) and result.branch == "bce_dice"
    assert result.batch is not None and result.batch.undefined_fraction == 1.0
    text = json.dumps(result.to_dict(), allow_nan=False)  # NaN became null
    assert json.loads(text)["skewness"] is None


# -- batches and bootstrap ----------------------------------------------------------------


def test_batch_frequencies_sum_to_one_and_are_deterministic_under_a_seed() -> None:
    areas = np.random.default_rng(1).lognormal(5, 1, size=500)
    one = analyze_areas(areas, batch_size=32, batches=300, bootstrap=50, seed=7)
    two = analyze_areas(areas, batch_size=32, batches=300, bootstrap=50, seed=7)
    assert one.batch is not None and two.batch is not None
    assert list(one.batch.branch_frequencies) == list(BRANCHES)
    assert sum(one.batch.branch_frequencies.values()) == pytest.approx(1.0)
    assert sum(one.batch.condition_frequencies.values()) == pytest.approx(1.0)
    assert one.to_dict() == two.to_dict()
    other = analyze_areas(areas, batch_size=32, batches=300, bootstrap=50, seed=8)
    assert other.batch is not None
    assert other.batch.skewness_median != one.batch.skewness_median


def test_batch_size_larger_than_the_data_is_an_error() -> None:
    with pytest.raises(ValueError, match="larger than the number of areas"):
        analyze_areas([1.0, 2.0, 3.0], batch_size=4)


def test_bootstrap_of_a_clearly_skewed_set_agrees_with_the_pick() -> None:
    areas = np.random.default_rng(3).lognormal(5, 1, size=2000)
    result = analyze_areas(areas, bootstrap=100)
    assert result.bootstrap is not None and result.bootstrap.agreement == 1.0
    lo, hi = result.bootstrap.skewness_ci95
    assert lo < result.skewness < hi


# -- fingerprints and reports -------------------------------------------------------------


def test_fingerprint_from_save_and_from_a_report_give_the_same_pick(tmp_path: Path) -> None:
    result = analyze_areas(RIGHT_SKEWED, bootstrap=0)
    result.moments.save(tmp_path / "moments.json")
    report = build_report(result, path=tmp_path, scan=None)
    (tmp_path / "report.json").write_text(json.dumps(report))
    for name in ("moments.json", "report.json"):
        again = analyze_moments(load_fingerprint(tmp_path / name))
        assert again.branch == result.branch
        assert again.skewness == pytest.approx(result.skewness, rel=1e-12)
        assert again.quantiles is None and again.batch is None


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"count": 3}'])
def test_a_bad_fingerprint_names_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(FingerprintError, match=r"bad\.json"):
        load_fingerprint(path)


# -- the real data ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def brats_scan() -> ScanResult:
    if not BRATS.is_dir():
        pytest.skip(f"{BRATS} is not available")
    return scan_masks(BRATS, mask_glob="OTMultiClass*")


def test_brats_subset_all_slices_pick_log10(brats_scan: ScanResult) -> None:
    result = analyze_areas(brats_scan.areas, empty=brats_scan.empty, bootstrap=0)
    assert len(brats_scan.files) == 6 and result.n == 930
    assert result.skewness == pytest.approx(1.48, abs=0.01)
    assert result.kurtosis == pytest.approx(1.49, abs=0.01)
    assert result.branch == "log10"


def test_brats_subset_tumour_slices_pick_ln(brats_scan: ScanResult) -> None:
    result = analyze_areas(
        brats_scan.areas, empty=brats_scan.empty, exclude_empty=True, bootstrap=0
    )
    assert result.n == 450
    assert result.skewness == pytest.approx(0.72, abs=0.01)
    assert result.kurtosis == pytest.approx(0.08, abs=0.01)
    assert result.branch == "ln"


def test_no_areas_is_an_error_not_a_pick() -> None:
    from calfseg.analyze import NoAreasError

    with pytest.raises(NoAreasError, match="0 masks"):
        analyze_areas([])
    with pytest.raises(NoAreasError, match="all 4 masks are empty"):
        analyze_areas([0.0, 0.0, 0.0, 0.0], exclude_empty=True)


def test_undefined_statistics_say_why() -> None:
    assert analyze_areas(RIGHT_SKEWED, bootstrap=0).undefined_reason is None
    empty = analyze_areas([0.0] * 6, bootstrap=0)
    assert empty.branch == "bce_dice" and "all 6 masks are empty" in str(empty.undefined_reason)
    equal = analyze_areas([5.0] * 3, bootstrap=0)
    assert "all 3 areas are equal" in str(equal.undefined_reason)
    one = analyze_areas([0.0, 0.0, 7.0], exclude_empty=True, bootstrap=0)
    assert "only 1 area" in str(one.undefined_reason)
