"""Per-case (volume) scores and lesion-size tertiles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calfseg.metrics import (
    ConfusionCounts,
    UndefinedMetricWarning,
    false_alarms,
    per_case,
    per_case_counts,
    size_groups,
)


def counts_of(*rows: tuple[int, int, int, int]) -> ConfusionCounts:
    return ConfusionCounts.from_arrays(*zip(*rows, strict=True))


# slices as (tp, fp, fn, tn) with their case
SLICES = counts_of(
    (4, 0, 2, 10),  # case "b"
    (0, 2, 0, 14),  # case "a"
    (6, 2, 0, 8),  # case "b"
    (0, 0, 0, 16),  # case "c": no tumour and none predicted
    (2, 0, 2, 12),  # case "a"
)
CASE_IDS = ["b", "a", "b", "c", "a"]
# volume Dice: a: tp 2, fp 2, fn 2 -> 4/8; b: tp 10, fp 2, fn 2 -> 20/24; c: undefined


def test_per_case_counts_sum_each_cases_slices_in_sorted_id_order() -> None:
    ids, cases = per_case_counts(SLICES, CASE_IDS)
    assert ids.tolist() == ["a", "b", "c"]
    assert cases.tp.tolist() == [2, 10, 0]
    assert cases.fp.tolist() == [2, 2, 0]
    assert cases.fn.tolist() == [2, 2, 0]
    assert cases.tn.tolist() == [26, 18, 16]


def test_volume_dice_is_not_the_mean_of_slice_dice() -> None:
    one = per_case(SLICES, CASE_IDS, "dice", "one")
    assert one.value == pytest.approx((4 / 8 + 20 / 24 + 1.0) / 3)
    assert (one.n, one.n_undefined, one.n_used) == (3, 1, 3)
    excluded = per_case(SLICES, CASE_IDS, "dice", "exclude")
    assert excluded.value == pytest.approx((4 / 8 + 20 / 24) / 2)
    assert excluded.n_excluded == 1


def test_per_case_accepts_integer_ids_and_checks_the_length() -> None:
    assert per_case(SLICES, [2, 1, 2, 3, 1]).value == per_case(SLICES, CASE_IDS).value
    with pytest.raises(ValueError, match="4 entries for 5 images"):
        per_case(SLICES, CASE_IDS[:4])


def test_tertiles_with_ties_send_a_cut_value_to_the_lower_group() -> None:
    areas = np.array([0, 9, 1, 1, 5, 0, 1, 9])
    groups = size_groups(areas)
    # non-empty areas sorted: 1 1 1 5 9 9; quantile 1/3 at position 5/3 -> 1;
    # quantile 2/3 at position 10/3 -> 5 + (9 - 5)/3 = 6.333
    q1, q2 = groups.cuts
    assert q1 == pytest.approx(1.0) and q2 == pytest.approx(5 + 4 / 3)
    assert groups.masks["small"].tolist() == [False, False, True, True, False, False, True, False]
    assert np.flatnonzero(groups.masks["medium"]).tolist() == [4]
    assert np.flatnonzero(groups.masks["large"]).tolist() == [1, 7]
    assert np.flatnonzero(groups.masks["empty"]).tolist() == [0, 5]
    assert groups.sizes() == {"small": 3, "medium": 1, "large": 2, "empty": 2}


def test_distinct_areas_split_into_equal_thirds() -> None:
    groups = size_groups(np.arange(1, 10))  # 1..9: cuts 3.667 and 6.333
    assert groups.sizes() == {"small": 3, "medium": 3, "large": 3, "empty": 0}


def test_all_equal_areas_are_all_small() -> None:
    assert size_groups([4, 4, 4, 0]).sizes() == {"small": 3, "medium": 0, "large": 0, "empty": 1}


def test_without_foreground_every_slice_is_empty_and_cuts_are_nan() -> None:
    groups = size_groups([0, 0])
    assert groups.sizes()["empty"] == 2 and all(math.isnan(c) for c in groups.cuts)


def test_explicit_empty_flags_override_zero_areas() -> None:
    # a one-pixel blob has contour area 0 but is not tumour-free
    groups = size_groups([0.0, 0.0, 3.0, 8.0], empty=[True, False, False, False])
    assert groups.masks["empty"].tolist() == [True, False, False, False]
    assert groups.masks["small"].tolist() == [False, True, False, False]


@pytest.mark.parametrize(("areas", "message"), [([-1, 2], "non-negative"), ([np.nan], "finite")])
def test_bad_areas_are_an_error(areas, message) -> None:
    with pytest.raises(ValueError, match=message):
        size_groups(areas)


def test_false_alarms_flag_any_predicted_foreground() -> None:
    alarms = false_alarms(SLICES)
    assert alarms.values.tolist() == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert not alarms.undefined.any()


def test_a_group_with_no_images_warns_when_averaged() -> None:
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(false_alarms(ConfusionCounts.empty()).mean().value)
