"""Per-batch CALF selection without a device-to-host synchronisation (docs/method.md sections 2-3).

A batch's branch depends only on the foreground areas of its targets. Reading those areas
back from a GPU (``.cpu()``) stalls the step until the device has caught up, so two paths
avoid it, both giving exactly the selections of the host computation:

- **areas from the loader** (:func:`moments_from_host_areas`): the areas are known on the host
  before the forward pass (``SliceDataset.areas[positions]``), so the moments and the rule run
  on the host, from host data. Under ``torch.distributed`` the loader passes every rank's part
  of the global batch and each rank merges them in rank order, exactly as
  :func:`calfseg.stats.sync.all_reduce_moments` would after its all-gather: the same numbers,
  with no communication.
- **on the device** (:func:`device_rule_rows`): the areas, the moments (the corrected two-pass
  of :meth:`AreaMoments.update`, in float64) and the rule's row index are computed as device
  tensors; the caller evaluates the candidate branch losses and keeps the row's one with
  ``index_select``, never reading a value on the host. :class:`PendingSelection` turns the
  tensors into :class:`~calfseg.rule.Selection` objects only when someone asks (that read
  synchronises).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from calfseg.errors import OptionError
from calfseg.rule import FALLBACK_CONDITION, Selection, Thresholds, decision_table
from calfseg.stats.moments import ZERO_VARIANCE_EPS, AreaMoments

HostAreas = np.ndarray | torch.Tensor | Sequence[float]
"""One batch's areas on the host: ``(B,)`` or ``(B, C)`` (numpy, a CPU tensor or a list)."""


def _as_host_matrix(areas: object, channels: int, what: str) -> np.ndarray:
    """``(B, C)`` float64 numpy array of one batch's host areas, or a ValueError saying why."""
    if isinstance(areas, torch.Tensor):
        if areas.device.type != "cpu":
            raise OptionError(
                f"{what} must be on the host (numpy or a CPU tensor), got a tensor on "
                f"{areas.device}: reading it would synchronise; pass dataset.areas[positions]"
            )
        array = areas.detach().to(torch.float64).numpy()
    else:
        array = np.asarray(areas, dtype=np.float64)
    if array.ndim == 1 and channels == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != channels:
        raise OptionError(
            f"{what} must have shape (B,) or (B, {channels}) for {channels} channel(s), got "
            f"{array.shape}"
        )
    return array


def split_parts(areas: object) -> list[object]:
    """A list or tuple of arrays (numpy or tensors) as per-rank parts; anything else, nested
    Python lists of a ``(B, C)`` batch included, is one batch (``[areas]``)."""
    if isinstance(areas, (list, tuple)) and areas:
        if all(isinstance(a, (np.ndarray, torch.Tensor)) for a in areas):
            return list(areas)
    return [areas]


def moments_from_host_areas(
    parts: Sequence[object], channels: int, *, own: int, batch_size: int
) -> list[AreaMoments]:
    """One :class:`AreaMoments` per channel, pooling ``parts`` (one batch of areas per rank,
    in rank order) the way the all-gather of :func:`all_reduce_moments` pools the ranks'
    summaries: each part summarised on its own, then merged in order. ``parts[own]`` is this
    process's batch and must hold ``batch_size`` areas."""
    matrices = [
        _as_host_matrix(p, channels, "areas" if len(parts) == 1 else f"areas[{i}]")
        for i, p in enumerate(parts)
    ]
    if matrices[own].shape[0] != batch_size:
        where = "areas" if len(parts) == 1 else f"areas[{own}] (this rank's part)"
        raise OptionError(
            f"{where} holds {matrices[own].shape[0]} areas for a batch of {batch_size} "
            "targets: pass the areas of exactly the batch's slices, in the batch's order"
        )
    moments = []
    for c in range(channels):
        if len(matrices) == 1:
            moments.append(AreaMoments.from_areas(matrices[0][:, c]))
            continue
        merged = AreaMoments()
        for matrix in matrices:
            merged.merge(AreaMoments.from_areas(matrix[:, c]))
        moments.append(merged)
    return moments


# -- on the device ---------------------------------------------------------------------------


def device_moments(areas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Skewness g1 and excess kurtosis g2 of each column of ``areas`` ``(B, C)`` float64, as
    device tensors ``(C,)``, NaN where undefined.

    The same float64 operations as :meth:`AreaMoments.update` followed by
    :meth:`AreaMoments.skewness` / :meth:`AreaMoments.kurtosis`: mean, centred values,
    Björck's correction of the two-pass mean, central sums M2..M4, then
    ``g1 = (M3/n) / (M2/n)^1.5`` and ``g2 = (M4/n) / (M2/n)^2 - 3``, undefined when
    ``M2/n <= (eps * mean)^2`` (scipy's zero-variance test).
    """
    n = areas.shape[0]
    mean = areas.sum(dim=0) / n
    centred = areas - mean
    correction = centred.sum(dim=0) / n
    centred = centred - correction
    sq = centred * centred
    m2 = sq.sum(dim=0) / n
    m3 = (sq * centred).sum(dim=0) / n
    m4 = (sq * sq).sum(dim=0) / n
    degenerate = m2 <= (ZERO_VARIANCE_EPS * (mean + correction)) ** 2
    scale = m2.pow(1.5)
    square = m2 * m2
    skew = torch.where(degenerate | (scale == 0.0), math.nan, m3 / scale)
    kurt = torch.where(degenerate | (square == 0.0), math.nan, m4 / square - 3.0)
    return skew, kurt


def device_rule_rows(
    skew: torch.Tensor, kurt: torch.Tensor, thresholds: Thresholds
) -> torch.Tensor:
    """Index of the first row of the decision table that (S, K) satisfies, per element, as
    an int64 device tensor; ``len(decision_table())`` (6) is the fallback (``bce_dice``).

    Each row's test is :meth:`calfseg.rule.Row.matches` on tensors: an infinite bound is no
    bound, and NaN fails every comparison, so it reaches the fallback."""
    matches = []
    for row in decision_table(thresholds):
        ok = torch.ones_like(skew, dtype=torch.bool)
        if row.lo != -math.inf:
            ok = ok & (skew >= row.lo if row.lo_inclusive else skew > row.lo)
        if row.hi != math.inf:
            ok = ok & (skew <= row.hi if row.hi_inclusive else skew < row.hi)
        if row.k_below is not None:
            ok = ok & (kurt < row.k_below)
        matches.append(ok)
    matches.append(torch.ones_like(skew, dtype=torch.bool))  # the fallback always matches
    # argmax returns the first maximal index: the first row that matches.
    return torch.stack(matches).to(torch.int32).argmax(dim=0)


def row_branches(thresholds: Thresholds) -> tuple[str, ...]:
    """The branch of each row index of :func:`device_rule_rows` (the fallback last)."""
    return (*(row.branch for row in decision_table(thresholds)), "bce_dice")


@dataclass
class PendingSelection:
    """Device tensors of a pick made without a host read: row index, S and K per channel.

    :meth:`resolve` reads them (one synchronisation) and returns the :class:`Selection` s
    the host computation would have made."""

    rows: torch.Tensor
    skewness: torch.Tensor
    kurtosis: torch.Tensor
    count: int
    thresholds: Thresholds

    def resolve(self) -> tuple[Selection, ...]:
        table = decision_table(self.thresholds)
        rows = self.rows.tolist()
        skew = self.skewness.tolist()
        kurt = self.kurtosis.tolist()
        selections = []
        for r, s, k in zip(rows, skew, kurt, strict=True):
            if r < len(table):
                selections.append(Selection(table[r].branch, table[r].condition, s, k, self.count))
            else:
                selections.append(Selection("bce_dice", FALLBACK_CONDITION, s, k, self.count))
        return tuple(selections)
