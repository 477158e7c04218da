"""Areas -> :class:`~calfseg.fingerprint.Fingerprint` with its :class:`AreaSummary`.

S and K come from :class:`~calfseg.stats.AreaMoments` (scipy's biased g1 and excess g2);
the branch from :func:`~calfseg.rule.select_branch`. Beyond the dataset-level pick, two
resamplings say how much to trust it: random mini-batches without replacement (what the
authors' per-batch CALF sees at every step) and bootstrap resamples of the whole set with
replacement (how stable the dataset-level pick is).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from calfseg.errors import DataValueError, OptionError
from calfseg.fingerprint.format import Fingerprint
from calfseg.fingerprint.summary import AreaSummary, BatchSummary, BootstrapSummary
from calfseg.rule import BRANCHES, Thresholds, select_branch
from calfseg.stats import AreaMoments
from calfseg.stats.resampling import batch_indices, bootstrap_indices, resampled_skew_kurt

QUANTILES: tuple[tuple[str, float], ...] = (
    ("min", 0.0),
    ("p05", 5.0),
    ("p25", 25.0),
    ("p50", 50.0),
    ("p75", 75.0),
    ("p95", 95.0),
    ("max", 100.0),
)


class NoAreasError(DataValueError):
    """Nothing is left to analyse (no area, or only empty masks with ``exclude_empty``):
    S and K would be undefined and the rule's pick meaningless. The message gives counts."""


def fingerprint_of_areas(
    areas: np.ndarray | Sequence[float],
    *,
    empty: np.ndarray | Sequence[bool] | None = None,
    exclude_empty: bool = False,
    batch_size: int | None = None,
    batches: int = 1000,
    bootstrap: int = 200,
    seed: int = 0,
    thresholds: Thresholds | dict[str, float] | None = None,
    measured: dict[str, Any] | None = None,
) -> Fingerprint:
    """Summarise a set of areas and apply CALF's rule to it.

    Args:
        areas: one foreground area per mask (empty masks count, with area 0).
        empty: which masks have no foreground (default ``areas == 0``; pass it for contour
            areas, where a non-empty mask can have area 0).
        exclude_empty: drop empty masks before computing anything but the empty count.
        batch_size: if set, draw ``batches`` mini-batches of this size without replacement,
            compute S and K of each and apply the rule to each, as per-batch CALF does.
        bootstrap: number of resamples of the whole set with replacement (0: none).
        seed: seeds both the batches and the bootstrap (independent streams).
        thresholds: the rule's thresholds (default: the paper's).
        measured: what the areas are (path, unit, files...), kept in the fingerprint.

    Raises:
        NoAreasError: no area to analyse (none given, or all empty with ``exclude_empty``).
        ValueError: non-finite areas, ``batch_size`` larger than the number of areas, or a
            count below its minimum.

    S and K are undefined (NaN) when every area is equal, e.g. all masks empty: the rule
    then falls back to ``bce_dice``; :attr:`Fingerprint.undefined_reason` says why, for
    callers to warn (``calf analyze`` does, loudly).
    """
    values = np.asarray(areas, dtype=np.float64).ravel()
    if not np.isfinite(values).all():
        raise DataValueError("areas must be finite")
    is_empty = values == 0 if empty is None else np.asarray(empty, dtype=bool).ravel()
    if is_empty.shape != values.shape:
        raise OptionError(f"empty has {is_empty.size} entries for {values.size} areas")
    if batches < 1 or bootstrap < 0 or (batch_size is not None and batch_size < 1):
        raise OptionError("batches and batch_size must be >= 1 and bootstrap >= 0")
    n_measured, n_empty = int(values.size), int(is_empty.sum())
    if n_measured == 0:
        raise NoAreasError("no areas to analyse (0 masks measured)")
    if exclude_empty:
        values = values[~is_empty]
        if values.size == 0:
            raise NoAreasError(
                f"no areas to analyse: all {n_measured} masks are empty and --exclude-empty "
                "leaves none; S and K are undefined (check --label, or drop --exclude-empty)"
            )
    if batch_size is not None and batch_size > values.size:
        raise OptionError(  # the option to change: exit 2
            f"batch size {batch_size} is larger than the number of areas ({values.size})"
        )
    table = Thresholds.coerce(thresholds)
    moments = AreaMoments.from_areas(values)
    branch = select_branch(moments.skewness(), moments.kurtosis(), table).branch
    batch_rng, boot_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    summary = AreaSummary(
        n_measured=n_measured,
        n_empty=n_empty,
        excluded_empty=exclude_empty,
        quantiles=_quantiles(values),
        batch=None
        if batch_size is None
        else _batch_summary(values, batch_size, batches, batch_rng, table),
        bootstrap=_bootstrap_summary(values, bootstrap, boot_rng, branch, table)
        if bootstrap
        else None,
    )
    return Fingerprint(
        moments, thresholds=table, measured=dict(measured or {}), summary=summary, areas=values
    )


def _quantiles(values: np.ndarray) -> dict[str, float]:
    points = np.percentile(values, [q for _, q in QUANTILES])
    return {name: float(v) for (name, _), v in zip(QUANTILES, points, strict=True)}


def _batch_summary(
    values: np.ndarray, batch_size: int, batches: int, rng: np.random.Generator, table: Thresholds
) -> BatchSummary:
    skew, kurt = resampled_skew_kurt(values, batch_indices(rng, values.size, batch_size, batches))
    branches, conditions = _pick_frequencies(skew, kurt, table)
    return BatchSummary(
        batch_size=batch_size,
        batches=batches,
        branch_frequencies=branches,
        condition_frequencies=conditions,
        undefined_fraction=float(np.isnan(skew).mean()),
        skewness_median=_nan_percentiles(skew, 50.0)[0],
        skewness_range95=_interval(skew),
        kurtosis_median=_nan_percentiles(kurt, 50.0)[0],
        kurtosis_range95=_interval(kurt),
    )


def _bootstrap_summary(
    values: np.ndarray, resamples: int, rng: np.random.Generator, branch: str, table: Thresholds
) -> BootstrapSummary:
    skew, kurt = resampled_skew_kurt(values, bootstrap_indices(rng, values.size, resamples))
    branches, _ = _pick_frequencies(skew, kurt, table)
    return BootstrapSummary(
        resamples=resamples,
        branch_frequencies=branches,
        agreement=branches[branch],
        skewness_ci95=_interval(skew),
        kurtosis_ci95=_interval(kurt),
    )


def _pick_frequencies(
    skew: np.ndarray, kurt: np.ndarray, table: Thresholds
) -> tuple[dict[str, float], dict[str, float]]:
    """Share of rows picking each branch (all six listed) and firing each condition."""
    branch_counts: Counter[str] = Counter()
    condition_counts: Counter[str] = Counter()
    for s, k in zip(skew.tolist(), kurt.tolist(), strict=True):
        picked = select_branch(s, k, table)
        branch_counts[picked.branch] += 1
        condition_counts[f"{picked.branch}: {picked.condition}"] += 1
    total = max(len(skew), 1)
    branches = {b: branch_counts[b] / total for b in BRANCHES}
    conditions = {c: n / total for c, n in condition_counts.most_common()}
    return branches, conditions


def _nan_percentiles(x: np.ndarray, *q: float) -> tuple[float, ...]:
    finite = x[~np.isnan(x)]
    if finite.size == 0:
        return tuple(math.nan for _ in q)
    return tuple(float(v) for v in np.percentile(finite, q))


def _interval(x: np.ndarray) -> tuple[float, float]:
    lo, hi = _nan_percentiles(x, 2.5, 97.5)
    return lo, hi
