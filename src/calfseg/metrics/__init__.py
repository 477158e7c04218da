"""Segmentation metrics on binarised predictions, with explicit reductions and empty-mask policy.

One idea per module, each importing only those above it::

    confusion   per-image tp, fp, fn, tn of ``prediction > threshold`` (logit > 0)
    policy      the empty-mask policy ("one" | "exclude") and the mean that applies it
    scores      dice, iou, sensitivity, specificity, precision, accuracy, mae;
                reductions per_image, pooled, pooled_by_batch (the paper's)
    surface     HD95 and ASSD in mm per slice (MONAI's surface distances; the diagonal rule)
    volume      HD95 and ASSD in mm per case, over its 3D volume (volume_distances)
    groups      per-case (volume) scores, lesion-size tertiles and the empty group
    results     evaluate_counts: one flat, JSON-safe dict of named results
    accumulator MetricAccumulator: update / merge / all_gather / compute

The count metrics need torch and numpy only; HD95 and ASSD import MONAI (and scipy) when
first used. docs/metrics.md has the formulas and the policy table.
"""

from calfseg.metrics.accumulator import MetricAccumulator
from calfseg.metrics.confusion import ConfusionCounts, binarise, confusion_counts
from calfseg.metrics.groups import (
    EMPTY_GROUP,
    GROUPS,
    SIZE_GROUPS,
    SizeGroups,
    false_alarms,
    per_case,
    per_case_counts,
    size_groups,
)
from calfseg.metrics.policy import (
    EMPTY_POLICIES,
    EmptyPolicy,
    ImageScores,
    Score,
    UndefinedMetricWarning,
)
from calfseg.metrics.results import Results, evaluate_counts
from calfseg.metrics.scores import (
    METRICS,
    accuracy,
    dice,
    image_scores,
    iou,
    mae,
    per_image,
    pooled,
    pooled_by_batch,
    precision,
    sensitivity,
    specificity,
)
from calfseg.metrics.surface import (
    SURFACE_METRICS,
    SurfaceDistances,
    image_diagonal_mm,
    surface_distances,
)
from calfseg.metrics.volume import case_volume, per_case_distances, volume_distances

__all__ = [
    "EMPTY_GROUP",
    "EMPTY_POLICIES",
    "GROUPS",
    "METRICS",
    "SIZE_GROUPS",
    "SURFACE_METRICS",
    "ConfusionCounts",
    "EmptyPolicy",
    "ImageScores",
    "MetricAccumulator",
    "Results",
    "Score",
    "SizeGroups",
    "SurfaceDistances",
    "UndefinedMetricWarning",
    "accuracy",
    "binarise",
    "case_volume",
    "confusion_counts",
    "dice",
    "evaluate_counts",
    "false_alarms",
    "image_diagonal_mm",
    "image_scores",
    "iou",
    "mae",
    "per_case",
    "per_case_counts",
    "per_case_distances",
    "per_image",
    "pooled",
    "pooled_by_batch",
    "precision",
    "sensitivity",
    "size_groups",
    "specificity",
    "surface_distances",
    "volume_distances",
]
