"""Results over groups of slices: per case (volume) and by lesion size.

**Per case.** The slices of a case (one MRI volume, ``SliceDataset.case_ids``) are stacked
by summing their confusion counts, ``tp_case = sum over the case's slices of tp``, etc.,
and the case gets one score, e.g. volume Dice ``2 tp_case / (2 tp_case + fp_case +
fn_case)``; the per-case result is the mean over cases. A case without tumour and without
any predicted foreground has an undefined Dice and follows the empty-mask policy. Every
row of the case counts (in the one-modality-per-sample layout, each modality's copy of a
slice adds its counts). The test set must hold whole cases for this to be a volume score.

**By lesion size.** The paper claims CALF helps small regions of interest most. Slices
with an empty truth form the group ``"empty"``. The others are split by the tertiles of
their true foreground areas, ``q1, q2 = np.quantile(areas, [1/3, 2/3])`` (numpy's default
linear interpolation), over the non-empty slices of the set being evaluated:

- ``"small"``: ``area <= q1``; ``"medium"``: ``q1 < area <= q2``; ``"large"``: ``area > q2``.

A slice whose area equals a cut point goes to the lower group, so ties can make the groups
unequal (all areas equal: every slice is "small", "medium" and "large" are empty). In the
empty group only specificity, accuracy, MAE and the false-alarm rate (the fraction of
tumour-free slices with any predicted foreground) carry information; overlap scores there
are undefined or 0 by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from calfseg.errors import DataValueError, OptionError
from calfseg.metrics.confusion import ConfusionCounts
from calfseg.metrics.policy import EmptyPolicy, ImageScores, Score
from calfseg.metrics.scores import image_scores

SIZE_GROUPS: tuple[str, ...] = ("small", "medium", "large")
EMPTY_GROUP = "empty"
GROUPS: tuple[str, ...] = (*SIZE_GROUPS, EMPTY_GROUP)


@dataclass(frozen=True)
class SizeGroups:
    """Which slices fall in each group, and the two cut points (in the areas' unit).

    ``masks[name]`` is a bool array over the slices for every name of :data:`GROUPS`;
    ``cuts`` is ``(q1, q2)``, NaN when no slice has foreground.
    """

    masks: dict[str, np.ndarray]
    cuts: tuple[float, float]

    def sizes(self) -> dict[str, int]:
        return {name: int(mask.sum()) for name, mask in self.masks.items()}


def size_groups(areas: Any, *, empty: Any = None) -> SizeGroups:
    """Split slices into ``small`` / ``medium`` / ``large`` tertiles of area, and ``empty``.

    Args:
        areas: true foreground area of each slice (pixels by default; any non-negative
            measure, e.g. the contour areas of :mod:`calfseg.stats.areas`).
        empty: bool per slice, True where the truth is empty. Defaults to ``areas == 0``;
            pass ``counts.true_area == 0`` when ``areas`` is a measure that can be 0 for a
            non-empty mask (the contour area of a single pixel).
    """
    a = np.asarray(areas, dtype=np.float64).reshape(-1)
    if not np.isfinite(a).all() or (a < 0).any():
        raise DataValueError("areas must be finite and non-negative")
    is_empty = a == 0 if empty is None else np.asarray(empty, dtype=bool).reshape(-1)
    if is_empty.shape != a.shape:
        raise OptionError(f"empty has {is_empty.size} entries for {a.size} areas")
    filled = ~is_empty
    if filled.any():
        q1, q2 = (float(q) for q in np.quantile(a[filled], [1 / 3, 2 / 3]))
    else:
        q1 = q2 = float("nan")
    masks = {
        "small": filled & (a <= q1),
        "medium": filled & (a > q1) & (a <= q2),
        "large": filled & (a > q2),
        EMPTY_GROUP: is_empty,
    }
    return SizeGroups(masks, (q1, q2))


def per_case_counts(counts: ConfusionCounts, case_ids: Any) -> tuple[np.ndarray, ConfusionCounts]:
    """Sum the slices' counts per case.

    Returns the sorted unique case ids and a :class:`ConfusionCounts` with one entry per
    case, in that order (on the CPU).
    """
    ids = np.asarray(case_ids).reshape(-1)
    if ids.shape[0] != len(counts):
        raise OptionError(f"case_ids has {ids.shape[0]} entries for {len(counts)} images")
    unique, inverse = np.unique(ids, return_inverse=True)
    summed = {}
    for name, values in counts.numpy().items():
        total = np.zeros(unique.shape[0], dtype=np.int64)
        np.add.at(total, inverse.reshape(-1), values)
        summed[name] = torch.from_numpy(total)
    return unique, ConfusionCounts(**summed)


def per_case(
    counts: ConfusionCounts, case_ids: Any, metric: str = "dice", policy: EmptyPolicy = "one"
) -> Score:
    """Mean over cases of ``metric`` of each case's summed counts (volume Dice by default)."""
    _, cases = per_case_counts(counts, case_ids)
    return image_scores(cases, metric).mean(policy, name=f"{metric}/per_case")


def false_alarms(counts: ConfusionCounts) -> ImageScores:
    """1 for each image with any predicted foreground, else 0; its mean over tumour-free
    slices is the image-level false-alarm rate (always defined)."""
    hit = (counts.predicted_area > 0).cpu().numpy().astype(np.float64)
    return ImageScores(hit, np.zeros(hit.shape, dtype=bool), perfect=0.0)


def select(counts: ConfusionCounts, mask: np.ndarray | Sequence[bool]) -> ConfusionCounts:
    """The images of ``counts`` where ``mask`` is True."""
    return counts[np.asarray(mask, dtype=bool)]
