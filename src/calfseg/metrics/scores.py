"""Scores from confusion counts, and the three ways of reducing them over a set of images.

Per image, from its counts (``P = tp + fn`` true foreground, ``Q = tp + fp`` predicted
foreground, ``N = fp + tn`` true background, ``T = tp + fp + fn + tn`` pixels):

============  ==========================  ===========  ==================================
metric        formula                     undefined    empty-mask cases (defined ones)
============  ==========================  ===========  ==================================
dice          2 tp / (2 tp + fp + fn)     P = Q = 0    pred on empty truth 0; missed 0
iou           tp / (tp + fp + fn)         P = Q = 0    pred on empty truth 0; missed 0
sensitivity   tp / (tp + fn)              P = 0        missed lesion 0
specificity   tn / (tn + fp)              N = 0        both empty 1; missed lesion 1
precision     tp / (tp + fp)              Q = 0        pred on empty truth 0
accuracy      (tp + tn) / T               never        both empty 1
mae           (fp + fn) / T               never        both empty 0
============  ==========================  ===========  ==================================

"Missed lesion" = empty prediction on non-empty truth; "pred on empty truth" = non-empty
prediction on empty truth. An undefined score (denominator 0) follows the empty-mask policy
(:mod:`calfseg.metrics.policy`): ``"one"`` gives it the perfect value (1; 0 for MAE) and
``"exclude"`` leaves it out of the mean. So, per image:

- both empty: dice, iou, sensitivity, precision -> policy; specificity, accuracy 1; mae 0.
- prediction only (false alarm): dice, iou, precision 0; sensitivity -> policy.
- truth only (missed lesion): dice, iou, sensitivity 0; precision -> policy (1 under
  ``"one"``, the paper's rule, so a missed lesion does not lower mean precision).

For binary predictions the mean absolute error ``mean |pred - true|`` is ``(fp + fn) / T``.

Reductions (every reported number names its reduction):

- :func:`per_image`: the mean over images of the per-image score.
- :func:`pooled`: the score of the counts summed over **all** images (one big image).
- :func:`pooled_by_batch`: the score of the counts summed over each consecutive batch of
  ``batch_size`` images, then the plain mean over batches, the last, smaller batch weighing
  as much as the others, **in the order given**. Our :func:`pooled` is the limit of one
  batch holding the whole set.
- :func:`paper_batch_pooled`: the paper's number (docs/method.md section 5): the authors' test
  loader was SHUFFLED, so :func:`pooled_by_batch` over batches of 32 of a seeded random
  order; the mean over several such orders (10 by default), with their spread. In cache
  order, runs of tumour-free slices fill whole batches that score 1 when nothing is
  predicted, and the number says more about the order than about the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from calfseg.errors import OptionError, check_choice
from calfseg.metrics.confusion import ConfusionCounts
from calfseg.metrics.policy import EmptyPolicy, ImageScores, Score, check_policy, ratio

Counts = dict[str, np.ndarray]


def _dice(c: Counts) -> ImageScores:
    return ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"])


def _iou(c: Counts) -> ImageScores:
    return ratio(c["tp"], c["tp"] + c["fp"] + c["fn"])


def _sensitivity(c: Counts) -> ImageScores:
    return ratio(c["tp"], c["tp"] + c["fn"])


def _specificity(c: Counts) -> ImageScores:
    return ratio(c["tn"], c["tn"] + c["fp"])


def _precision(c: Counts) -> ImageScores:
    return ratio(c["tp"], c["tp"] + c["fp"])


def _accuracy(c: Counts) -> ImageScores:
    return ratio(c["tp"] + c["tn"], c["tp"] + c["fp"] + c["fn"] + c["tn"])


def _mae(c: Counts) -> ImageScores:
    return ratio(c["fp"] + c["fn"], c["tp"] + c["fp"] + c["fn"] + c["tn"], perfect=0.0)


_FORMULAS: dict[str, Callable[[Counts], ImageScores]] = {
    "dice": _dice,
    "iou": _iou,
    "sensitivity": _sensitivity,
    "specificity": _specificity,
    "precision": _precision,
    "accuracy": _accuracy,
    "mae": _mae,
}
METRICS: tuple[str, ...] = tuple(_FORMULAS)
"""Names of the count metrics, in report order."""

ALWAYS_DEFINED: frozenset[str] = frozenset({"accuracy", "mae"})
"""Metrics whose denominator is the pixel count, never 0 for a real image."""


def image_scores(counts: ConfusionCounts, metric: str) -> ImageScores:
    """The per-image scores of ``metric`` (one of :data:`METRICS`), undefined ones marked."""
    check_choice("metric", metric, METRICS)
    return _FORMULAS[metric](counts.numpy())


def dice(counts: ConfusionCounts) -> ImageScores:
    """Per-image Dice, ``2 tp / (2 tp + fp + fn)`` (Dice, 1945; Sørensen, 1948)."""
    return image_scores(counts, "dice")


def iou(counts: ConfusionCounts) -> ImageScores:
    """Per-image intersection over union (Jaccard index), ``tp / (tp + fp + fn)``."""
    return image_scores(counts, "iou")


def sensitivity(counts: ConfusionCounts) -> ImageScores:
    """Per-image sensitivity (recall, true positive rate), ``tp / (tp + fn)``."""
    return image_scores(counts, "sensitivity")


def specificity(counts: ConfusionCounts) -> ImageScores:
    """Per-image specificity (true negative rate), ``tn / (tn + fp)``."""
    return image_scores(counts, "specificity")


def precision(counts: ConfusionCounts) -> ImageScores:
    """Per-image precision (positive predictive value), ``tp / (tp + fp)``."""
    return image_scores(counts, "precision")


def accuracy(counts: ConfusionCounts) -> ImageScores:
    """Per-image pixel accuracy, ``(tp + tn) / (tp + fp + fn + tn)``."""
    return image_scores(counts, "accuracy")


def mae(counts: ConfusionCounts) -> ImageScores:
    """Per-image mean absolute error of the binary prediction, ``(fp + fn) / pixels``."""
    return image_scores(counts, "mae")


def per_image(counts: ConfusionCounts, metric: str, policy: EmptyPolicy = "one") -> Score:
    """Mean over images of the per-image ``metric`` under the empty-mask ``policy``."""
    return image_scores(counts, metric).mean(policy, name=f"{metric}/per_image")


def pooled(counts: ConfusionCounts, metric: str, policy: EmptyPolicy = "one") -> Score:
    """``metric`` of the counts summed over all images.

    With no foreground anywhere (e.g. pooled Dice of a tumour-free set) the pooled score is
    undefined and follows ``policy`` like a single image. ``n`` of the returned
    :class:`Score` is 1 (one pooled unit); zero images give NaN with ``n_used = 0``.
    """
    check_policy(policy)
    if len(counts) == 0:
        return ImageScores(np.zeros(0), np.zeros(0, dtype=bool)).mean(policy, f"{metric}/pooled")
    return image_scores(counts.total(), metric).mean(policy, name=f"{metric}/pooled")


def pooled_by_batch(
    counts: ConfusionCounts, metric: str, batch_size: int = 32, policy: EmptyPolicy = "one"
) -> Score:
    """The paper's reduction: ``metric`` pooled within each consecutive batch, then the mean
    over batches (unweighted; the last batch may be smaller). ``n`` counts batches."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    check_policy(policy)
    c = counts.numpy()
    starts = np.arange(0, len(counts), batch_size)
    per_batch = {k: np.add.reduceat(v, starts) if starts.size else v for k, v in c.items()}
    check_choice("metric", metric, METRICS)
    return _FORMULAS[metric](per_batch).mean(policy, name=f"{metric}/pooled_by_batch")


PAPER_BATCH_SIZE = 32
"""The authors' test batch size, the unit the paper's Dice is pooled over."""
PAPER_SHUFFLES = 10
"""Shuffled test orders averaged in :func:`paper_batch_pooled` by default."""
PAPER_SHUFFLE_SEED = 12345
"""Seed of the shuffled orders (the paper's seed): order ``i`` is
``numpy.random.default_rng([seed, i]).permutation(n)``."""


@dataclass(frozen=True)
class ShuffledScore:
    """The paper's batch-pooled score over several shuffled orders.

    Attributes:
        value: mean over the orders (NaN only if no order had a batch to average).
        sd: sample standard deviation over the orders (ddof 1; 0 for a single order).
        min, max: the smallest and largest of the orders' scores.
        values: the score of each order, in order of ``i``.
        seed: the seed of the orders.
    """

    value: float
    sd: float
    min: float
    max: float
    values: tuple[float, ...]
    seed: int

    def json_value(self) -> float | None:
        return None if math.isnan(self.value) else self.value


def shuffled_order(n: int, seed: int, i: int) -> np.ndarray:
    """The ``i``-th shuffled order of ``n`` images: ``default_rng([seed, i]).permutation(n)``."""
    return np.random.default_rng([int(seed), int(i)]).permutation(n)


def paper_batch_pooled(
    counts: ConfusionCounts,
    metric: str,
    batch_size: int = PAPER_BATCH_SIZE,
    *,
    shuffles: int = PAPER_SHUFFLES,
    seed: int = PAPER_SHUFFLE_SEED,
    policy: EmptyPolicy = "one",
) -> ShuffledScore:
    """The paper's reduction (docs/method.md section 5) over seeded shuffled orders: runs of
    similar slices in ``counts`` (a cache's order) no longer form batches of their own.

    For each ``i < shuffles``: reorder the images by :func:`shuffled_order` ``(n, seed, i)``,
    pool the counts over each batch of ``batch_size`` (1 when a batch's denominator is 0
    under the ``"one"`` policy), take the unweighted mean over batches
    (:func:`pooled_by_batch`). Report the mean of the ``shuffles`` values and their spread.
    """
    if isinstance(shuffles, bool) or not isinstance(shuffles, int) or shuffles < 1:
        raise OptionError(f"shuffles must be an integer >= 1, got {shuffles!r}")
    check_choice("metric", metric, METRICS)
    n = len(counts)
    values = [
        pooled_by_batch(counts[shuffled_order(n, seed, i)], metric, batch_size, policy).value
        for i in range(shuffles)
    ]
    array = np.asarray(values, dtype=np.float64)
    if np.isnan(array).any():  # no order had a batch to average (n = 0, or all excluded)
        nan = float("nan")
        return ShuffledScore(nan, nan, nan, nan, tuple(values), int(seed))
    sd = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return ShuffledScore(
        float(array.mean()), sd, float(array.min()), float(array.max()), tuple(values), int(seed)
    )
