"""Count metrics: hand-computed values, every empty-mask case under both policies, and the
three reductions (per image, pooled, the paper's batch-pooled mean)."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch

from calfseg.metrics import (
    METRICS,
    ConfusionCounts,
    UndefinedMetricWarning,
    confusion_counts,
    image_scores,
    per_image,
    pooled,
    pooled_by_batch,
)
from calfseg.metrics import scores as S

U = None  # undefined: the denominator is 0

# 16-pixel images as (tp, fp, fn, tn), and every metric worked out by hand.
NORMAL = (3, 1, 2, 10)
CASES = {
    # dice = 6/9, iou = 3/6, sens = 3/5, spec = 10/11, prec = 3/4, acc = 13/16, mae = 3/16
    "normal": (
        NORMAL,
        [
            Fraction(6, 9),
            Fraction(3, 6),
            Fraction(3, 5),
            Fraction(10, 11),
            Fraction(3, 4),
            Fraction(13, 16),
            Fraction(3, 16),
        ],
    ),
    "both_empty": ((0, 0, 0, 16), [U, U, U, 1, U, 1, 0]),
    "prediction_only": (
        (0, 4, 0, 12),
        [0, 0, U, Fraction(12, 16), 0, Fraction(12, 16), Fraction(4, 16)],
    ),
    "truth_only": ((0, 0, 4, 12), [0, 0, 0, 1, U, Fraction(12, 16), Fraction(4, 16)]),
    "truth_full": ((16, 0, 0, 0), [1, 1, 1, U, 1, 1, 0]),
}
PERFECT = dict.fromkeys(METRICS, 1.0) | {"mae": 0.0}


def counts_of(*rows: tuple[int, int, int, int]) -> ConfusionCounts:
    return ConfusionCounts.from_arrays(*zip(*rows, strict=True))


def test_metric_order_is_the_documented_one() -> None:
    assert METRICS == ("dice", "iou", "sensitivity", "specificity", "precision", "accuracy", "mae")


@pytest.mark.parametrize("case", list(CASES))
def test_per_image_scores_match_hand_values(case) -> None:
    row, expected = CASES[case]
    for metric, want in zip(METRICS, expected, strict=True):
        got = image_scores(counts_of(row), metric)
        assert bool(got.undefined[0]) is (want is U), metric
        if want is U:
            assert got.values[0] == PERFECT[metric]  # stored as the perfect value, never NaN
        else:
            assert got.values[0] == pytest.approx(float(want), abs=1e-15), metric


@pytest.mark.parametrize("case", ["both_empty", "prediction_only", "truth_only", "truth_full"])
@pytest.mark.parametrize("policy", ["one", "exclude"])
def test_empty_cases_in_a_mean_follow_the_policy(case, policy) -> None:
    row, expected = CASES[case]
    normal = CASES["normal"][1]
    counts = counts_of(NORMAL, row)
    for metric, want, base in zip(METRICS, expected, normal, strict=True):
        score = per_image(counts, metric, policy)
        if want is U and policy == "exclude":
            assert (score.value, score.n_used, score.n_excluded) == (float(base), 1, 1), metric
        else:
            value = PERFECT[metric] if want is U else float(want)
            assert score.value == pytest.approx((float(base) + value) / 2), metric
            assert score.n_used == 2 and score.n_excluded == 0
        assert score.n_undefined == (1 if want is U else 0)


def test_an_all_excluded_mean_is_nan_with_zero_used_and_a_warning() -> None:
    counts = counts_of(CASES["both_empty"][0])
    with pytest.warns(UndefinedMetricWarning, match="dice/per_image: no unit to average"):
        score = per_image(counts, "dice", "exclude")
    assert math.isnan(score.value) and score.n_used == 0 and score.n_undefined == 1
    assert score.json_value() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert per_image(counts, "dice", "one").value == 1.0  # the paper's choice


def test_paper_rules_dice_one_when_both_empty_precision_one_on_zero_denominator() -> None:
    # docs/method.md section 5: Dice 1 when both masks are empty; precision 1 when tp + fp = 0
    assert per_image(counts_of(CASES["both_empty"][0]), "dice").value == 1.0
    assert per_image(counts_of(CASES["truth_only"][0]), "precision").value == 1.0


def test_named_functions_equal_image_scores() -> None:
    counts = counts_of(*(row for row, _ in CASES.values()))
    for metric in METRICS:
        named = getattr(S, metric)(counts)
        np.testing.assert_array_equal(named.values, image_scores(counts, metric).values)


def test_pooled_and_per_image_differ_as_expected() -> None:
    # a tiny lesion found perfectly and a big one missed entirely
    counts = counts_of((1, 0, 0, 99), (0, 0, 99, 1))
    assert per_image(counts, "dice").value == pytest.approx((1.0 + 0.0) / 2)
    assert pooled(counts, "dice").value == pytest.approx(2 * 1 / (2 * 1 + 0 + 99))
    assert pooled(counts, "sensitivity").value == pytest.approx(1 / 100)
    assert pooled(counts, "accuracy").value == per_image(counts, "accuracy").value  # same T


def test_pooled_of_a_set_without_foreground_follows_the_policy() -> None:
    counts = counts_of((0, 0, 0, 16), (0, 0, 0, 9))
    assert pooled(counts, "dice", "one").value == 1.0
    assert pooled(counts, "specificity", "exclude").value == 1.0
    with pytest.warns(UndefinedMetricWarning):
        score = pooled(counts, "dice", "exclude")
    assert math.isnan(score.value) and score.n == 1 and score.n_used == 0


def test_pooled_of_no_images_is_nan_with_a_warning() -> None:
    with pytest.warns(UndefinedMetricWarning):
        score = pooled(ConfusionCounts.empty(), "dice")
    assert math.isnan(score.value) and score.n == 0


def test_pooled_by_batch_hand_example() -> None:
    # batch 2: [A, B], [C, D], [E]; the last, smaller batch weighs as much as the others
    counts = counts_of((1, 1, 0, 2), (1, 0, 1, 2), (0, 0, 0, 4), (0, 0, 0, 4), (0, 2, 2, 0))
    # dice per batch: 2*2/(4+1+1) = 2/3; both empty -> 1; 0 -> mean (2/3 + 1 + 0) / 3
    score = pooled_by_batch(counts, "dice", batch_size=2)
    assert score.value == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert (score.n, score.n_undefined) == (3, 1)
    excluded = pooled_by_batch(counts, "dice", batch_size=2, policy="exclude")
    assert excluded.value == pytest.approx((2 / 3 + 0) / 2)


def paper_batch_mean(pred: torch.Tensor, truth: torch.Tensor, metric: str, b: int) -> float:
    """The paper's evaluation loop, written from docs/method.md: on each batch of b binarised
    predictions, the pooled score, 1 when its denominator is 0; then the mean of batches."""
    values = []
    for start in range(0, pred.shape[0], b):
        p, y = pred[start : start + b].float(), truth[start : start + b].float()
        inter = float((p * y).sum())
        if metric == "dice":
            den = float(p.sum() + y.sum())
            values.append(1.0 if den == 0 else 2 * inter / den)
        else:  # precision
            den = float(p.sum())
            values.append(1.0 if den == 0 else inter / den)
    return sum(values) / len(values)


@pytest.mark.parametrize("metric", ["dice", "precision"])
def test_pooled_by_batch_reproduces_the_papers_batch_mean(metric) -> None:
    gen = torch.Generator().manual_seed(3)
    n = 70  # batches of 32, 32 and 6
    logits = torch.randn(n, 1, 12, 12, generator=gen) - 1.0
    truth = (torch.rand(n, 1, 12, 12, generator=gen) > 0.8).float()
    truth[32:64] = 0  # a tumour-free batch ...
    logits[32:64] = -5  # ... predicted tumour-free: pooled Dice 1 there
    counts = confusion_counts(logits, truth)
    want = paper_batch_mean(logits > 0, truth, metric, 32)
    assert pooled_by_batch(counts, metric, 32).value == pytest.approx(want, rel=1e-12)
    assert pooled_by_batch(counts, metric, n).value == pytest.approx(pooled(counts, metric).value)


def _cache_ordered_set() -> tuple[torch.Tensor, torch.Tensor]:
    """128 slices in a cache's order: patient A's 64 tumour slices (found imperfectly), then
    64 tumour-free slices of patient B predicted tumour-free: whole batches of 32 score 1."""
    gen = torch.Generator().manual_seed(11)
    truth = torch.zeros(128, 1, 12, 12)
    truth[:64, :, 3:9, 3:9] = 1
    logits = torch.where(truth > 0, 1.0, -1.0) + 2.5 * torch.randn(128, 1, 12, 12, generator=gen)
    logits[64:] = -5.0
    return logits, truth


def test_the_papers_batch_pooled_dice_is_over_shuffled_orders_not_the_cache_order() -> None:
    logits, truth = _cache_ordered_set()
    counts = confusion_counts(logits, truth)
    in_order = pooled_by_batch(counts, "dice", 32).value
    shuffled = S.paper_batch_pooled(counts, "dice", 32, shuffles=10, seed=7)
    # independent computation: the same permutations, the paper's loop written out in torch
    pred = logits > 0
    per_order = []
    for i in range(10):
        order = torch.from_numpy(np.random.default_rng([7, i]).permutation(128))
        per_order.append(paper_batch_mean(pred[order], truth[order], "dice", 32))
    assert shuffled.values == pytest.approx(per_order, rel=1e-12)
    assert shuffled.value == pytest.approx(float(np.mean(per_order)), rel=1e-12)
    assert shuffled.sd == pytest.approx(float(np.std(per_order, ddof=1)), rel=1e-9)
    assert (shuffled.min, shuffled.max) == (min(per_order), max(per_order))
    # in cache order two of the four batches are tumour-free and score 1
    assert in_order == pytest.approx(paper_batch_mean(pred, truth, "dice", 32), rel=1e-12)
    assert in_order > shuffled.max + 0.1


def test_paper_batch_pooled_checks_its_arguments_and_handles_no_images() -> None:
    with pytest.raises(ValueError, match="shuffles"):
        S.paper_batch_pooled(counts_of(NORMAL), "dice", shuffles=0)
    with pytest.raises(ValueError, match="unknown metric "):
        S.paper_batch_pooled(counts_of(NORMAL), "f1")
    with pytest.warns(UndefinedMetricWarning):
        score = S.paper_batch_pooled(ConfusionCounts.empty(), "dice")
    assert math.isnan(score.value) and score.json_value() is None
    one = S.paper_batch_pooled(counts_of(NORMAL), "dice", shuffles=1)
    assert (one.value, one.sd) == (pytest.approx(6 / 9), 0.0)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "32"])
def test_pooled_by_batch_rejects_bad_batch_sizes(bad) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        pooled_by_batch(counts_of(NORMAL), "dice", bad)


def test_unknown_metric_or_policy_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown metric "):
        per_image(counts_of(NORMAL), "f1")
    with pytest.raises(ValueError, match="unknown policy "):
        per_image(counts_of(NORMAL), "dice", "zero")  # type: ignore[arg-type]
