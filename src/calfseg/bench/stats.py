"""Statistics over the benchmark's runs: seed means with confidence intervals, paired tests
against a baseline loss with Holm's correction, and CALF's branch usage.

- Mean and 95 % CI per (model, loss, metric, reduction, group) over seeds: Student's t
  interval ``mean +- t(0.975, n-1) * sd / sqrt(n)`` with the sample sd (ddof 1). With one
  seed there is no spread to estimate: the mean is reported and the CI is None ("n/a").
- Paired Wilcoxon signed-rank test of each loss against ``bce`` on per-image Dice. A pair
  is one test slice (same cache ``row``) under the same model and seed; the pairs of all
  seeds are pooled by concatenation into one test per (model, loss). Only slices with a
  lesion (``area > 0``) are paired: there Dice is defined for every prediction, while on
  tumour-free slices it is undefined or 0 depending on the prediction (specificity and
  false alarms judge those). Slices with an empty Dice cell under either loss are dropped.
  Holm's step-down correction runs over the losses of one model. Effect size: the median
  paired difference (loss - bce).
- Branch usage: the ``branch/<name>`` columns of log.csv, averaged over epochs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from calfseg.bench.collect import ResultsTable

BASELINE = "bce"
ALPHA = 0.05
BRANCH_PREFIX = "branch/"


@dataclass(frozen=True)
class SeedSummary:
    """Mean over seeds of one result, with its 95 % t-interval (None with fewer than 2)."""

    model: str
    loss: str
    metric: str
    reduction: str
    group: str
    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None

    @property
    def half_width(self) -> float | None:
        if self.ci_low is None or self.ci_high is None or self.mean is None:
            return None
        return self.ci_high - self.mean


@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of ``loss`` against the baseline under one model."""

    model: str
    loss: str
    baseline: str
    n_pairs: int
    median_difference: float | None
    mean_difference: float | None
    p_value: float | None
    p_holm: float | None = None

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` (Holm-adjusted p < 0.05), ``no difference`` or
        ``not tested`` (no pairs)."""
        if self.p_holm is None or self.median_difference is None:
            return "not tested"
        if self.p_holm >= ALPHA:
            return "no difference"
        direction = self.median_difference or self.mean_difference or 0.0
        return "better" if direction > 0 else "worse"


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and the two ends of its t-interval; the ends are NaN with fewer than 2 values."""
    from scipy import stats

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(data.mean())
    if data.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, data.size - 1) * data.std(ddof=1))
    half /= math.sqrt(data.size)
    return mean, mean - half, mean + half


def seed_summaries(table: ResultsTable) -> list[SeedSummary]:
    """One :class:`SeedSummary` per (model, loss, metric, reduction, group) of the table."""
    groups: dict[tuple[str, str, str, str, str], list[float]] = {}
    for row in table.rows:
        key = (row.model, row.loss, row.metric, row.reduction, row.group)
        values = groups.setdefault(key, [])
        if row.value is not None:
            values.append(row.value)
    summaries = []
    for key, values in groups.items():
        if not values:
            summaries.append(SeedSummary(*key, n=0, mean=None, ci_low=None, ci_high=None))
            continue
        mean, low, high = mean_ci(values)
        summaries.append(
            SeedSummary(
                *key,
                n=len(values),
                mean=mean,
                ci_low=None if math.isnan(low) else low,
                ci_high=None if math.isnan(high) else high,
            )
        )
    return summaries


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    Sorted ascending, the i-th smallest (0-based) of m becomes ``(m - i) * p``, made
    non-decreasing by a running maximum and capped at 1.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def wilcoxon_pairs(differences: Sequence[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of paired differences; 1.0 when every
    difference is zero (scipy raises there), None when there are none."""
    from scipy import stats

    diffs = np.asarray(differences, dtype=float)
    if diffs.size == 0:
        return None
    if not np.any(diffs != 0):
        return 1.0
    try:
        return float(stats.wilcoxon(diffs).pvalue)
    except ValueError:  # too few non-zero differences for scipy
        return 1.0


def paired_differences(
    table: ResultsTable, model: str, loss: str, baseline: str = BASELINE, metric: str = "dice"
) -> list[float]:
    """``metric(loss) - metric(baseline)`` per test slice with a lesion, paired by cache row
    within each seed, concatenated over the seeds both losses have."""
    diffs: list[float] = []
    for seed in table.seeds:
        run, base = table.run(model, loss, seed), table.run(model, baseline, seed)
        if run is None or base is None:
            continue
        ours = _by_row(table.per_image.get(run.name, []), metric)
        theirs = _by_row(table.per_image.get(base.name, []), metric)
        diffs.extend(ours[row] - theirs[row] for row in sorted(ours.keys() & theirs.keys()))
    return diffs


def paired_tests(
    table: ResultsTable, baseline: str = BASELINE, metric: str = "dice"
) -> list[PairedTest]:
    """Each loss against ``baseline`` per model, Holm-corrected over the model's losses."""
    tests: list[PairedTest] = []
    for model in table.models:
        raw = []
        for loss in table.losses:
            if loss == baseline:
                continue
            diffs = paired_differences(table, model, loss, baseline, metric)
            raw.append(
                PairedTest(
                    model,
                    loss,
                    baseline,
                    n_pairs=len(diffs),
                    median_difference=float(np.median(diffs)) if diffs else None,
                    mean_difference=float(np.mean(diffs)) if diffs else None,
                    p_value=wilcoxon_pairs(diffs),
                )
            )
        tested = [t for t in raw if t.p_value is not None]
        adjusted = holm([t.p_value for t in tested if t.p_value is not None])
        holm_of = {t.loss: p for t, p in zip(tested, adjusted)}
        tests.extend(PairedTest(**{**t.__dict__, "p_holm": holm_of.get(t.loss)}) for t in raw)
    return tests


def branch_usage(table: ResultsTable) -> dict[str, dict[str, float]]:
    """Per run name, the share of steps of each CALF branch, averaged over the epochs of
    log.csv; runs without ``branch/*`` columns are left out."""
    usage: dict[str, dict[str, float]] = {}
    for info in table.runs:
        log = table.logs.get(info.name, [])
        names = sorted({k[len(BRANCH_PREFIX) :] for row in log for k in row if _is_branch(k)})
        if not names:
            continue
        shares = {}
        for name in names:
            values = [row.get(BRANCH_PREFIX + name) for row in log]
            numbers = [float(v) for v in values if isinstance(v, (int, float))]
            shares[name] = float(np.mean(numbers)) if numbers else 0.0
        usage[info.name] = shares
    return usage


def _is_branch(key: str) -> bool:
    return key.startswith(BRANCH_PREFIX)


def _by_row(rows: list[dict[str, object]], metric: str) -> dict[int, float]:
    paired = {}
    for row in rows:
        value, index, area = row.get(metric), row.get("row"), row.get("area", 1)
        if isinstance(area, (int, float)) and area <= 0:
            continue  # tumour-free slice
        if isinstance(value, (int, float)) and isinstance(index, int):
            paired[index] = float(value)
    return paired
