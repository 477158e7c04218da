"""One flat, JSON-safe dictionary of named results from the per-image counts of a test set.

Every key names the metric and the reduction, and the group when there is one::

    {metric}/{reduction}[/{group}]       e.g. "dice/per_image", "dice/pooled/small"
    n_undefined/{metric}/{reduction}[/{group}]
                                         units whose score was undefined (denominator 0):
                                         set to the perfect value under "one", left out of
                                         the mean under "exclude" (then n_excluded = this)
    n_diagonal/{hd95_mm|assd_mm}/per_image[/{group}]
                                         images with exactly one empty mask (diagonal rule)

Reductions: ``per_image`` (mean over images), ``pooled`` (summed counts of the whole set),
``paper_batch_pooled`` (the paper's, when ``pooled_batch_size`` is set: pooled over each
batch of a seeded shuffled order, mean over batches, mean over 10 orders; with ``_sd``,
``_min`` and ``_max`` of the orders), ``per_case`` (mean over cases of the case's volume
score). Groups: ``small``, ``medium``, ``large`` (tertiles of true area) and ``empty``
(tumour-free slices). Values are float, int, str or None: None where there was nothing to
average (an empty group, or every image excluded; its ``n_*`` key says so).
``json.dumps(result, allow_nan=False)`` always works. See docs/metrics.md for the full list.
"""

from __future__ import annotations

import numpy as np

from calfseg.errors import OptionError
from calfseg.metrics.confusion import ConfusionCounts
from calfseg.metrics.groups import (
    EMPTY_GROUP,
    SIZE_GROUPS,
    false_alarms,
    per_case_counts,
    size_groups,
)
from calfseg.metrics.policy import EmptyPolicy, ImageScores, Score, check_policy
from calfseg.metrics.scores import (
    ALWAYS_DEFINED,
    METRICS,
    PAPER_SHUFFLE_SEED,
    PAPER_SHUFFLES,
    image_scores,
    paper_batch_pooled,
    pooled,
)
from calfseg.metrics.surface import SURFACE_METRICS, SurfaceDistances

Results = dict[str, float | int | str | None]

EMPTY_GROUP_METRICS: tuple[str, ...] = ("specificity", "accuracy", "mae")
"""Count metrics reported for the tumour-free slices (the others are undefined or 0 there)."""


def evaluate_counts(
    counts: ConfusionCounts,
    *,
    areas: np.ndarray | None = None,
    case_ids: np.ndarray | None = None,
    surface: SurfaceDistances | None = None,
    policy: EmptyPolicy = "one",
    pooled_batch_size: int | None = None,
) -> Results:
    """Every metric, reduction and group of a test set, as one flat dict.

    Args:
        counts: per-image confusion counts (:func:`~calfseg.metrics.confusion_counts`).
        areas: true area per image for the size tertiles; defaults to ``tp + fn`` (the pixel
            count, as ``SliceDataset.areas``). Tumour-free images are those with
            ``tp + fn == 0`` whatever ``areas`` says.
        case_ids: case (volume) of each image; adds ``dice/per_case``.
        surface: per-image distances (:func:`~calfseg.metrics.surface_distances`) of the
            same images; adds ``hd95_mm`` and ``assd_mm``.
        policy: the empty-mask policy, ``"one"`` (the paper's) or ``"exclude"``.
        pooled_batch_size: also report the paper's batch-pooled mean with this batch size
            (32 in the paper) over :data:`PAPER_SHUFFLES` seeded shuffled orders
            (:func:`~calfseg.metrics.scores.paper_batch_pooled`): ``{m}/paper_batch_pooled``
            and its spread ``{m}/paper_batch_pooled_sd``, ``_min``, ``_max``.
    """
    check_policy(policy)
    counts = counts.to("cpu")
    n = len(counts)
    true_area = counts.true_area.numpy()
    empty_truth = true_area == 0
    missed = ~empty_truth & (counts.predicted_area.numpy() == 0)
    out: Results = {
        "empty_policy": policy,
        "n_images": n,
        "n_empty_truth": int(empty_truth.sum()),
        "n_missed": int(missed.sum()),
    }
    if surface is not None:
        _check_surface(surface, counts)
    scores = {m: image_scores(counts, m) for m in METRICS}

    for m in METRICS:
        _put_mean(out, m, "per_image", scores[m], policy, with_undefined=m not in ALWAYS_DEFINED)
        _put(out, f"{m}/pooled", pooled(counts, m, policy) if n else None)
        if pooled_batch_size is not None:
            _put_shuffled(out, m, counts, pooled_batch_size, policy)
    if pooled_batch_size is not None:
        out["pooled_batch_size"] = int(pooled_batch_size)
        out["paper_batch_pooled_shuffles"] = PAPER_SHUFFLES
        out["paper_batch_pooled_seed"] = PAPER_SHUFFLE_SEED
    if surface is not None:
        for s in SURFACE_METRICS:
            _put_surface(out, s, "per_image", surface, policy)

    if case_ids is not None:
        ids, cases = per_case_counts(counts, case_ids)
        out["n_cases"] = int(ids.shape[0])
        _put_mean(out, "dice", "per_case", image_scores(cases, "dice"), policy, True)

    if areas is not None and np.asarray(areas).size != n:
        raise OptionError(f"areas has {np.asarray(areas).size} entries for {n} images")
    groups = size_groups(true_area if areas is None else areas, empty=empty_truth)
    out["area_tertile/1"], out["area_tertile/2"] = (_finite_or_none(c) for c in groups.cuts)
    for g in SIZE_GROUPS:
        sel = groups.masks[g]
        out[f"n_images/{g}"] = int(sel.sum())
        out[f"n_missed/{g}"] = int((missed & sel).sum())
        for m in METRICS:
            defined = m not in ALWAYS_DEFINED
            _put_mean(out, m, f"per_image/{g}", scores[m].select(sel), policy, defined)
            _put(out, f"{m}/pooled/{g}", pooled(counts[sel], m, policy) if sel.any() else None)
        if surface is not None:
            for s in SURFACE_METRICS:
                _put_surface(out, s, f"per_image/{g}", surface.select(sel), policy)

    sel = groups.masks[EMPTY_GROUP]
    out[f"n_images/{EMPTY_GROUP}"] = int(sel.sum())
    for m in EMPTY_GROUP_METRICS:
        _put_mean(out, m, f"per_image/{EMPTY_GROUP}", scores[m].select(sel), policy, False)
        _put(
            out, f"{m}/pooled/{EMPTY_GROUP}", pooled(counts[sel], m, policy) if sel.any() else None
        )
    alarms = false_alarms(counts).select(sel)
    _put_mean(out, "false_alarm_rate", f"per_image/{EMPTY_GROUP}", alarms, policy, False)
    return out


def _put(out: Results, key: str, score: Score | None) -> None:
    out[key] = None if score is None else score.json_value()


def _put_shuffled(
    out: Results, metric: str, counts: ConfusionCounts, batch_size: int, policy: EmptyPolicy
) -> None:
    """``{metric}/paper_batch_pooled`` and its ``_sd``, ``_min``, ``_max`` (None: no images)."""
    key = f"{metric}/paper_batch_pooled"
    if len(counts) == 0:
        for suffix in ("", "_sd", "_min", "_max"):
            out[key + suffix] = None
        return
    score = paper_batch_pooled(counts, metric, batch_size, policy=policy)
    out[key] = score.json_value()
    for suffix, value in (("_sd", score.sd), ("_min", score.min), ("_max", score.max)):
        out[key + suffix] = _finite_or_none(value)


def _put_mean(
    out: Results,
    metric: str,
    reduction: str,
    scores: ImageScores,
    policy: EmptyPolicy,
    with_undefined: bool,
) -> None:
    """``metric/reduction`` = the mean under ``policy`` (None for no units, no warning)."""
    key = f"{metric}/{reduction}"
    out[key] = scores.mean(policy, name=key).json_value() if len(scores) else None
    if with_undefined:
        out[f"n_undefined/{key}"] = int(scores.undefined.sum())


def _put_surface(
    out: Results, metric: str, reduction: str, surface: SurfaceDistances, policy: EmptyPolicy
) -> None:
    _put_mean(out, metric, reduction, surface.scores(metric), policy, True)
    out[f"n_diagonal/{metric}/{reduction}"] = int(surface.one_empty.sum())


def _check_surface(surface: SurfaceDistances, counts: ConfusionCounts) -> None:
    if len(surface) != len(counts):
        raise OptionError(f"surface has {len(surface)} images, counts have {len(counts)}")
    both_empty = (counts.true_area == 0).numpy() & (counts.predicted_area == 0).numpy()
    if not np.array_equal(both_empty, surface.both_empty):
        raise OptionError(
            "surface distances and counts disagree on which images are empty: were they "
            "computed from the same predictions, in the same order, at the same threshold?"
        )


def _finite_or_none(x: float) -> float | None:
    return x if np.isfinite(x) else None
