"""calfseg.analyze and its layers: measuring masks and scanning folders
(calfseg.data.scan.masks), statistics, batches and bootstrap (calfseg.fingerprint)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from calfseg.analysis import EmptySplitError, NoReadableMasksError, analyze
from calfseg.data.cache import SliceCache
from calfseg.data.files.masks import MaskFileError
from calfseg.data.scan.masks import NoMaskFilesError, ScanResult, measure_mask, scan_masks
from calfseg.fingerprint import Fingerprint, NoAreasError, fingerprint_of_areas, load_fingerprint
from calfseg.rule import BRANCHES

from .data.cache_fixture import make_cache
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


def test_scan_masks_stops_on_negative_labels_naming_the_file(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", _volume())
    np.save(tmp_path / "neg.npy", -np.ones((3, 3), dtype=np.int16))
    with pytest.raises(MaskFileError, match=r"neg\.npy: label values below 0"):
        scan_masks(tmp_path)
    scan = scan_masks(tmp_path, labels=[-1])  # named, they are the foreground
    assert scan.areas[-1] == 9


def test_scan_masks_without_any_mask_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no masks here")
    with pytest.raises(NoMaskFilesError, match=re.escape(f"{tmp_path}: no mask files found")):
        scan_masks(tmp_path)


# -- statistics and the rule --------------------------------------------------------------


def test_analyze_areas_matches_scipy_and_counts_empties() -> None:
    areas = np.array([0, 0, 3, 5, 8, 13, 40, 0, 2, 100], dtype=float)
    result = fingerprint_of_areas(areas, bootstrap=0)
    assert result.summary is not None
    assert result.count == result.summary.n_measured == 10 and result.summary.n_empty == 3
    assert result.summary.empty_fraction == pytest.approx(0.3)
    assert result.skewness == pytest.approx(sps.skew(areas), rel=1e-12)
    assert result.kurtosis == pytest.approx(sps.kurtosis(areas), rel=1e-12)
    quantiles = result.summary.quantiles
    assert quantiles["min"] == 0 and quantiles["max"] == 100
    assert quantiles["p50"] == pytest.approx(np.median(areas))
    assert quantiles["p05"] == pytest.approx(np.percentile(areas, 5))


def test_exclude_empty_drops_zero_areas_but_reports_how_many() -> None:
    areas = np.array([0, 0, 3, 5, 8, 13, 40], dtype=float)
    result = fingerprint_of_areas(areas, exclude_empty=True, bootstrap=0)
    assert result.summary is not None
    assert result.count == 5 and result.summary.n_measured == 7 and result.summary.n_empty == 2
    assert result.skewness == pytest.approx(sps.skew(areas[areas > 0]), rel=1e-12)


def test_a_known_right_skewed_set_picks_log10_and_its_mirror_fisher() -> None:
    right = fingerprint_of_areas(RIGHT_SKEWED, bootstrap=0)
    assert right.skewness > 1 and (right.branch, right.condition) == ("log10", "S >= 1")
    left = fingerprint_of_areas([1000.0 - a for a in RIGHT_SKEWED], bootstrap=0)
    assert left.skewness < -1 and left.branch == "fisher"


def test_equal_areas_give_undefined_statistics_and_the_fallback() -> None:
    result = fingerprint_of_areas([5.0] * 10, batch_size=4, batches=20, bootstrap=10)
    assert math.isnan(result.skewness) and result.branch == "bce_dice"
    assert result.summary is not None and result.summary.batch is not None
    assert result.summary.batch.undefined_fraction == 1.0
    text = json.dumps(result.to_dict(), allow_nan=False)  # NaN became null
    assert json.loads(text)["skewness"] is None


# -- batches and bootstrap ----------------------------------------------------------------


def test_batch_frequencies_sum_to_one_and_are_deterministic_under_a_seed() -> None:
    areas = np.random.default_rng(1).lognormal(5, 1, size=500)
    one = fingerprint_of_areas(areas, batch_size=32, batches=300, bootstrap=50, seed=7)
    two = fingerprint_of_areas(areas, batch_size=32, batches=300, bootstrap=50, seed=7)
    assert one.summary is not None and one.summary.batch is not None
    batch = one.summary.batch
    assert list(batch.branch_frequencies) == list(BRANCHES)
    assert sum(batch.branch_frequencies.values()) == pytest.approx(1.0)
    assert sum(batch.condition_frequencies.values()) == pytest.approx(1.0)
    assert one.to_dict() == two.to_dict()
    other = fingerprint_of_areas(areas, batch_size=32, batches=300, bootstrap=50, seed=8)
    assert other.summary is not None and other.summary.batch is not None
    assert other.summary.batch.skewness_median != batch.skewness_median


def test_batch_size_larger_than_the_data_is_an_error() -> None:
    with pytest.raises(ValueError, match="larger than the number of areas"):
        fingerprint_of_areas([1.0, 2.0, 3.0], batch_size=4)


def test_bootstrap_of_a_clearly_skewed_set_agrees_with_the_pick() -> None:
    areas = np.random.default_rng(3).lognormal(5, 1, size=2000)
    result = fingerprint_of_areas(areas, bootstrap=100)
    assert result.summary is not None and result.summary.bootstrap is not None
    assert result.summary.bootstrap.agreement == 1.0
    lo, hi = result.summary.bootstrap.skewness_ci95
    assert lo < result.skewness < hi


# -- the real data ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def brats_scan() -> ScanResult:
    if not BRATS.is_dir():
        pytest.skip(f"{BRATS} is not available")
    return scan_masks(BRATS, mask_glob="OTMultiClass*")


@pytest.mark.slow
def test_brats_subset_all_slices_pick_log10(brats_scan: ScanResult) -> None:
    result = fingerprint_of_areas(brats_scan.areas, empty=brats_scan.empty, bootstrap=0)
    assert len(brats_scan.files) == 6 and result.count == 930
    assert result.skewness == pytest.approx(1.48, abs=0.01)
    assert result.kurtosis == pytest.approx(1.49, abs=0.01)
    assert result.branch == "log10"


def test_brats_subset_tumour_slices_pick_ln(brats_scan: ScanResult) -> None:
    result = fingerprint_of_areas(
        brats_scan.areas, empty=brats_scan.empty, exclude_empty=True, bootstrap=0
    )
    assert result.count == 450
    assert result.skewness == pytest.approx(0.72, abs=0.01)
    assert result.kurtosis == pytest.approx(0.08, abs=0.01)
    assert result.branch == "ln"


def test_no_areas_is_an_error_not_a_pick() -> None:
    with pytest.raises(NoAreasError, match="0 masks"):
        fingerprint_of_areas([])
    with pytest.raises(NoAreasError, match="all 4 masks are empty"):
        fingerprint_of_areas([0.0, 0.0, 0.0, 0.0], exclude_empty=True)


def test_undefined_statistics_say_why() -> None:
    assert fingerprint_of_areas(RIGHT_SKEWED, bootstrap=0).undefined_reason is None
    empty = fingerprint_of_areas([0.0] * 6, bootstrap=0)
    assert empty.branch == "bce_dice" and "all 6 masks are empty" in str(empty.undefined_reason)
    equal = fingerprint_of_areas([5.0] * 3, bootstrap=0)
    assert "all 3 areas are equal" in str(equal.undefined_reason)
    one = fingerprint_of_areas([0.0, 0.0, 7.0], exclude_empty=True, bootstrap=0)
    assert "only 1 area" in str(one.undefined_reason)


# -- calfseg.analyze: the one call --------------------------------------------------------


def test_analyze_a_folder_measures_every_slice_against_scipy(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", _volume())
    np.save(tmp_path / "b.npy", np.ones((3, 3), dtype=np.uint8))
    fp = analyze(tmp_path, batch_size=2, batches=10, bootstrap=5)
    areas = np.array([0, 6, 20, 9], dtype=float)  # hand count: slices of a, then b
    assert isinstance(fp, Fingerprint) and fp.count == 4
    assert fp.skewness == pytest.approx(sps.skew(areas), rel=1e-12)
    assert fp.kurtosis == pytest.approx(sps.kurtosis(areas), rel=1e-12)
    np.testing.assert_array_equal(fp.areas, areas)
    assert fp.measured["source"] == "masks" and fp.measured["unit"] == "masks and slices"
    assert fp.measured["files"]["read"] == 2 and fp.measured["options"]["batch_size"] == 2


def test_analyze_a_fingerprint_file_reads_it_back(tmp_path: Path) -> None:
    saved = fingerprint_of_areas(RIGHT_SKEWED, bootstrap=0).save(tmp_path / "fp.json")
    again = analyze(saved)
    assert again == load_fingerprint(saved) and again.branch == "log10"
    with pytest.raises(ValueError, match="--label cannot apply to"):
        analyze(saved, labels=[1])


def test_analyze_without_a_readable_mask_lists_the_skipped_files(tmp_path: Path) -> None:
    np.save(tmp_path / "b.npy", np.full((2, 2), 0.5))
    with pytest.raises(NoReadableMasksError, match="none of the 1 mask files") as info:
        analyze(tmp_path, on_error="skip")
    assert [s.path.name for s in info.value.skipped] == ["b.npy"]
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        analyze(tmp_path / "missing")
    with pytest.raises(ValueError, match="split applies to a cache folder"):
        analyze(tmp_path, split="train")


def test_analyze_a_cache_split_and_refuse_an_empty_one(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "cache")
    index = SliceCache.open(cache).index
    train = index["area"][index["split"] == "train"].astype(float)
    fp = analyze(cache, split="train", bootstrap=0)
    assert fp.count == train.size and fp.measured["source"] == "cache"
    assert fp.skewness == pytest.approx(sps.skew(train), rel=1e-9)
    with pytest.raises(ValueError, match="--mask-glob cannot apply to a cache"):
        analyze(cache, mask_glob="*")
    assert issubclass(EmptySplitError, NoAreasError)
