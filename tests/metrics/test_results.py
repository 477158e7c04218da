"""evaluate_counts: the flat dict of named results, checked on a hand-computed set."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from calfseg.metrics import (
    EMPTY_GROUP,
    METRICS,
    SIZE_GROUPS,
    SURFACE_METRICS,
    ConfusionCounts,
    SurfaceDistances,
    UndefinedMetricWarning,
    evaluate_counts,
)
from calfseg.metrics.results import EMPTY_GROUP_METRICS


def counts_of(*rows: tuple[int, int, int, int]) -> ConfusionCounts:
    return ConfusionCounts.from_arrays(*zip(*rows, strict=True))


# Six 16-pixel slices (tp, fp, fn, tn):
COUNTS = counts_of(
    (3, 1, 2, 10),  # 0: area 5, dice 6/9, precision 3/4
    (0, 0, 0, 16),  # 1: both empty
    (0, 4, 0, 12),  # 2: false alarm on a tumour-free slice
    (0, 0, 4, 12),  # 3: missed lesion, area 4
    (8, 0, 0, 8),  # 4: area 8, perfect
    (1, 1, 1, 13),  # 5: area 2, dice 1/2, precision 1/2
)
CASES = ["p", "p", "q", "q", "r", "r"]
# non-empty areas 5, 4, 8, 2 -> sorted 2 4 5 8: q1 = 4, q2 = 5
# small = {3, 5}, medium = {0}, large = {4}, empty = {1, 2}
SURFACE = SurfaceDistances(
    hd95=np.array([2.0, 0.0, 7.0, 7.0, 0.0, 1.0]),
    assd=np.array([1.0, 0.0, 7.0, 7.0, 0.0, 0.5]),
    both_empty=np.array([False, True, False, False, False, False]),
    one_empty=np.array([False, False, True, True, False, False]),
)


def run(policy: str = "one", **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing in this set is all-excluded
        return evaluate_counts(COUNTS, case_ids=CASES, surface=SURFACE, policy=policy, **kwargs)


def test_headline_values_under_the_papers_policy() -> None:
    r = run("one")
    assert (r["empty_policy"], r["n_images"], r["n_empty_truth"], r["n_missed"]) == ("one", 6, 2, 1)
    assert r["dice/per_image"] == pytest.approx((6 / 9 + 1 + 0 + 0 + 1 + 1 / 2) / 6)
    assert r["n_undefined/dice/per_image"] == 1
    assert r["dice/pooled"] == pytest.approx(2 * 12 / (2 * 12 + 6 + 7))
    assert r["precision/per_image"] == pytest.approx((3 / 4 + 1 + 0 + 1 + 1 + 1 / 2) / 6)
    assert r["n_undefined/precision/per_image"] == 2
    assert r["sensitivity/per_image"] == pytest.approx((3 / 5 + 1 + 1 + 0 + 1 + 1 / 2) / 6)
    assert r["mae/per_image"] == pytest.approx((3 + 0 + 4 + 4 + 0 + 2) / 96)
    assert r["hd95_mm/per_image"] == pytest.approx((2 + 0 + 7 + 7 + 0 + 1) / 6)
    assert r["n_diagonal/hd95_mm/per_image"] == 2
    assert r["n_undefined/assd_mm/per_image"] == 1


def test_headline_values_with_empty_images_excluded() -> None:
    r = run("exclude")
    assert r["dice/per_image"] == pytest.approx((6 / 9 + 0 + 0 + 1 + 1 / 2) / 5)
    assert r["precision/per_image"] == pytest.approx((3 / 4 + 0 + 1 + 1 / 2) / 4)
    assert r["sensitivity/per_image"] == pytest.approx((3 / 5 + 0 + 1 + 1 / 2) / 4)
    assert r["hd95_mm/per_image"] == pytest.approx((2 + 7 + 7 + 0 + 1) / 5)
    assert r["dice/pooled"] == run("one")["dice/pooled"]  # pooled counts have foreground


def test_per_case_dice() -> None:
    # p: tp 3 fp 1 fn 2 -> 6/9; q: tp 0 fp 4 fn 4 -> 0; r: tp 9 fp 1 fn 1 -> 18/20
    r = run()
    assert r["n_cases"] == 3
    assert r["dice/per_case"] == pytest.approx((6 / 9 + 0 + 18 / 20) / 3)
    assert r["n_undefined/dice/per_case"] == 0


def test_size_groups_and_their_values() -> None:
    r = run()
    assert (r["area_tertile/1"], r["area_tertile/2"]) == (4.0, 5.0)
    sizes = {g: r[f"n_images/{g}"] for g in (*SIZE_GROUPS, EMPTY_GROUP)}
    assert sizes == {"small": 2, "medium": 1, "large": 1, "empty": 2}
    assert r["n_missed/small"] == 1 and r["n_missed/large"] == 0
    assert r["dice/per_image/small"] == pytest.approx((0 + 1 / 2) / 2)
    assert r["dice/pooled/small"] == pytest.approx(2 / (2 + 1 + 5))
    assert r["precision/per_image/small"] == pytest.approx((1 + 1 / 2) / 2)
    assert r["n_undefined/precision/per_image/small"] == 1
    assert r["dice/per_image/medium"] == pytest.approx(6 / 9)
    assert r["dice/per_image/large"] == 1.0
    assert r["hd95_mm/per_image/small"] == pytest.approx((7 + 1) / 2)
    assert r["n_diagonal/hd95_mm/per_image/small"] == 1
    assert run("exclude")["precision/per_image/small"] == pytest.approx(1 / 2)


def test_the_empty_group_reports_false_alarms_and_specificity_only() -> None:
    r = run()
    assert r["specificity/per_image/empty"] == pytest.approx((1 + 12 / 16) / 2)
    assert r["specificity/pooled/empty"] == pytest.approx(28 / 32)
    assert r["false_alarm_rate/per_image/empty"] == 0.5
    assert r["mae/per_image/empty"] == pytest.approx((0 + 4 / 16) / 2)
    empty_keys = {k for k in r if k.endswith(f"/{EMPTY_GROUP}") and not k.startswith("n_")}
    want = {
        f"{m}/{red}/{EMPTY_GROUP}" for m in EMPTY_GROUP_METRICS for red in ("per_image", "pooled")
    }
    assert empty_keys == want | {f"false_alarm_rate/per_image/{EMPTY_GROUP}"}


def test_every_key_names_metric_and_reduction_and_the_dict_is_strict_json() -> None:
    r = run(pooled_batch_size=4)
    for m in METRICS:
        for red in ("per_image", "pooled", "paper_batch_pooled", "paper_batch_pooled_sd"):
            assert f"{m}/{red}" in r
    for s in SURFACE_METRICS:
        assert f"{s}/per_image" in r
    assert r["pooled_batch_size"] == 4
    assert (r["paper_batch_pooled_shuffles"], r["paper_batch_pooled_seed"]) == (10, 12345)
    json.dumps(r, allow_nan=False)
    assert all(isinstance(v, (int, float, str)) or v is None for v in r.values())


def _batch_dice_numpy(rows: np.ndarray, order: np.ndarray, b: int) -> float:
    """The paper's Dice written out: pooled over each batch of b of ``order``, 1 when both
    masks of the batch are empty, then the mean over batches."""
    values = []
    for start in range(0, order.size, b):
        tp, fp, fn, _ = rows[order[start : start + b]].sum(axis=0)
        values.append(1.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(values))


def test_the_papers_batch_pooled_dice_is_over_shuffled_orders_with_their_spread() -> None:
    r = run(pooled_batch_size=4)
    rows = np.array(
        [(3, 1, 2, 10), (0, 0, 0, 16), (0, 4, 0, 12), (0, 0, 4, 12), (8, 0, 0, 8), (1, 1, 1, 13)]
    )
    # the orders are numpy's default_rng([12345, i]).permutation(6), i = 0..9
    per_order = [
        _batch_dice_numpy(rows, np.random.default_rng([12345, i]).permutation(6), 4)
        for i in range(10)
    ]
    assert r["dice/paper_batch_pooled"] == pytest.approx(np.mean(per_order), rel=1e-12)
    assert r["dice/paper_batch_pooled_sd"] == pytest.approx(np.std(per_order, ddof=1), rel=1e-9)
    assert r["dice/paper_batch_pooled_min"] == pytest.approx(min(per_order))
    assert r["dice/paper_batch_pooled_max"] == pytest.approx(max(per_order))
    json.dumps(r, allow_nan=False)
    assert all(isinstance(v, (int, float, str)) or v is None for v in r.values())


def test_no_images_gives_none_values_and_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = evaluate_counts(ConfusionCounts.empty(), surface=SurfaceDistances.empty())
    assert r["n_images"] == 0 and r["dice/per_image"] is None and r["dice/pooled"] is None
    assert r["area_tertile/1"] is None
    json.dumps(r, allow_nan=False)


def test_an_all_excluded_mean_is_none_with_its_count_and_a_warning() -> None:
    counts = counts_of((0, 0, 0, 16), (0, 0, 0, 16))
    with pytest.warns(UndefinedMetricWarning) as record:
        r = evaluate_counts(counts, policy="exclude")
    assert any("dice/per_image: no unit to average" in str(w.message) for w in record)
    assert r["dice/per_image"] is None and r["n_undefined/dice/per_image"] == 2
    assert r["n_images/small"] == 0 and r["dice/per_image/small"] is None


def test_custom_areas_change_the_groups_not_the_empty_group() -> None:
    r = evaluate_counts(COUNTS, areas=[1, 50, 50, 3, 2, 9])
    assert r["n_images/empty"] == 2  # from the counts, whatever the areas say
    assert r["n_images/small"] + r["n_images/medium"] + r["n_images/large"] == 4
    with pytest.raises(ValueError, match="areas has 2 entries for 6 images"):
        evaluate_counts(COUNTS, areas=[1, 2])


def test_surface_from_other_predictions_is_rejected() -> None:
    shuffled = SURFACE.select(np.array([1, 0, 2, 3, 4, 5]))
    with pytest.raises(ValueError, match="disagree on which images are empty"):
        evaluate_counts(COUNTS, surface=shuffled)
    with pytest.raises(ValueError, match="surface has 5 images"):
        evaluate_counts(COUNTS, surface=SURFACE.select(np.arange(5)))
