"""Case-level statistics of the benchmark: the verdict of each loss against ``bce``.

The unit is the case (patient), never the slice: slices of one patient are not independent
samples, and the same slice under two seeds is the same sample twice.

- **Per-case Dice** of a run: ``2 TP / (2 TP + FP + FN)`` with the counts summed over all
  the case's test slices (``per_case_test.csv``, the BraTS/nnU-Net convention); a case whose
  truth and prediction are both empty scores 1, an empty truth with a prediction 0.
- **Seeds are averaged within a case**: for a model, a loss and a case, the mean per-case
  Dice over the seeds. Under cross-validation each case is tested by the one fold that held
  it out, so a case has one value per seed whatever the number of folds.
- **Paired difference per case**: ``d_c = mean_s Dice(loss, c, s) - mean_s Dice(bce, c, s)``
  over the seeds ``s`` both losses ran for that case.
- **95 % CI of the mean difference** ``mean_c d_c``: percentile bootstrap,
  :data:`N_RESAMPLES` resamples drawn by ``numpy.random.default_rng(BOOTSTRAP_SEED)``; the
  interval is the 2.5 and 97.5 percentiles of the resampled means (Efron & Tibshirani 1993,
  ch. 13). With one seed, each resample is the n cases drawn with replacement. With several
  seeds, each resample also draws the seeds with replacement, independently of the cases
  (Owen's "pigeonhole" bootstrap for a crossed cases x seeds table, Ann. Appl. Stat. 2007):
  the per-seed differences ``D[c, s]`` of the drawn cases and seeds are averaged over the
  drawn seeds, then over the drawn cases. The case bootstrap alone sees the variation
  between cases and not between training runs; on the default data three seeds gave
  CALF - BCE of -0.043, +0.067 and +0.081 and a case-only interval of +0.019 to +0.051,
  all above 0. Resampling the seeds too is conservative (it counts the case x seed
  interaction twice), as a verdict should be. Percentile rather than BCa: BCa's jackknife
  acceleration is undefined when every difference is equal (two losses with identical
  predictions), which happens on easy data.
- **Verdict**, in this order: ``better`` if ``ci_low > 0``; ``worse`` if ``ci_high < 0``;
  ``equivalent`` if ``-margin <= ci_low`` and ``ci_high <= margin``; else ``inconclusive``.
  With fewer than :data:`MIN_UNITS` cases there is no interval and the verdict is
  ``inconclusive``.
- **Cases needed** (inconclusive rows): with the observed mean ``d`` and standard deviation
  ``s`` (ddof 1) of the differences, the normal-approximation half-width ``z s / sqrt(n)``
  (z = 1.96) must drop below ``|d|`` (to show a difference) or below ``margin - |d|`` (to
  show equivalence, when ``|d| < margin``); the smaller n of the two is
  ``n = ceil((z s / max(|d|, margin - |d|))^2)``.
- **Secondary**: a two-sided Wilcoxon signed-rank test on the case differences, Holm-
  corrected over the losses of a model. It never decides a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from calfseg.bench.collect import ResultsTable

BASELINE = "bce"
METRIC = "dice"  # per-case Dice: verdicts.csv's metric with unit "case"
UNIT = "case"
CONFIDENCE = 0.95
DEFAULT_MARGIN = 0.01  # Dice; docs/benchmark.md says why
N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 2504  # fixed, so the same runs always give the same interval
MIN_UNITS = 2
Z_95 = 1.959963984540054  # standard normal 97.5 % quantile
FAILED_TO_LEARN = 0.1  # a run whose mean per-case test Dice is below this learned nothing
BRANCH_PREFIX = "branch/"
VERDICTS = ("better", "worse", "equivalent", "inconclusive")

# (model, loss) -> case id -> seed -> per-case Dice
CaseScores = dict[tuple[str, str], dict[str, dict[int, float]]]


@dataclass(frozen=True)
class Verdict:
    """One row of verdicts.csv (the first eleven fields, :data:`VERDICT_COLUMNS`) and the
    report's extra columns: the SD of the differences, the cases needed when inconclusive,
    and the secondary Wilcoxon p-values."""

    model: str
    loss: str
    baseline: str
    metric: str
    unit: str
    n_units: int
    mean_diff: float | None
    ci_low: float | None
    ci_high: float | None
    margin: float
    verdict: str
    sd_diff: float | None = None
    cases_needed: int | None = None
    p_wilcoxon: float | None = None
    p_holm: float | None = None

    def csv_cells(self) -> list[str]:
        """The cells of :data:`VERDICT_COLUMNS`, numbers in full precision, None empty."""
        values = [getattr(self, name) for name in VERDICT_COLUMNS]
        return ["" if v is None else repr(v) if isinstance(v, float) else str(v) for v in values]


VERDICT_COLUMNS = (
    "model", "loss", "baseline", "metric", "unit", "n_units", "mean_diff", "ci_low",
    "ci_high", "margin", "verdict",
)  # fmt: skip


def decide(ci_low: float | None, ci_high: float | None, margin: float) -> str:
    """The verdict rule, in this order: better (``ci_low > 0``), worse (``ci_high < 0``),
    equivalent (the CI inside ``[-margin, margin]``), inconclusive (otherwise, or no CI)."""
    if ci_low is None or ci_high is None:
        return "inconclusive"
    if ci_low > 0:
        return "better"
    if ci_high < 0:
        return "worse"
    if -margin <= ci_low and ci_high <= margin:
        return "equivalent"
    return "inconclusive"


def bootstrap_ci(
    values: Sequence[float],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``: ``n_resamples`` resamples
    of ``len(values)`` indices drawn at once by ``default_rng(seed).integers(0, n, (B, n))``,
    then the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (numpy's
    linear interpolation) of the resampled means."""
    data = np.asarray(values, dtype=np.float64)
    if data.size < MIN_UNITS:
        raise ValueError(f"bootstrap_ci needs at least {MIN_UNITS} values, got {data.size}")
    if not np.all(np.isfinite(data)):
        raise ValueError("bootstrap_ci: the values must be finite")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_resamples, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def cases_needed(mean: float, sd: float, margin: float, z: float = Z_95) -> int | None:
    """Cases for a decisive CI if the mean and SD of the differences stayed as observed:
    ``ceil((z sd / max(|mean|, margin - |mean|))^2)``, at least :data:`MIN_UNITS`; None
    when no n suffices (a zero mean with no margin)."""
    target = max(abs(mean), margin - abs(mean))
    if target <= 0:
        return None
    return max(MIN_UNITS, math.ceil((z * sd / target) ** 2))


def case_scores(table: ResultsTable) -> CaseScores:
    """Per-case test Dice of every run, by (model, loss), case and seed.

    Raises:
        ValueError: a case is tested twice for one model, loss and seed (two runs, e.g.
            with and without cross-validation, in one results folder); names both runs.
    """
    scores: CaseScores = {}
    seen: dict[tuple[str, str, str, int], str] = {}
    for info in table.runs:
        for row in table.per_case.get(info.name, []):
            case = str(row.get("case_id"))
            key = (info.model, info.loss, case, info.seed)
            if key in seen:
                raise ValueError(
                    f"case {case} is tested by two runs of {info.model}/{info.loss} seed "
                    f"{info.seed}: {seen[key]} and {info.name}; report them from separate "
                    "folders (calf report reads every run under DIR/runs)"
                )
            seen[key] = info.name
            by_case = scores.setdefault((info.model, info.loss), {})
            by_case.setdefault(case, {})[info.seed] = case_dice_of(row)
    return scores


def case_dice_of(row: Mapping[str, object]) -> float:
    """The Dice of a per_case row from its counts (``2 TP / (2 TP + FP + FN)``, 1 when
    both are empty); the ``dice`` cell when the counts are missing."""
    counts = [row.get(name) for name in ("tp", "fp", "fn")]
    if all(isinstance(c, (int, float)) for c in counts):
        tp, fp, fn = (float(c) for c in counts)  # type: ignore[arg-type]
        denominator = 2 * tp + fp + fn
        return 1.0 if denominator == 0 else 2 * tp / denominator
    dice = row.get("dice")
    if not isinstance(dice, (int, float)):
        raise ValueError(f"per-case row of case {row.get('case_id')} has no counts and no dice")
    return float(dice)


def case_means(scores: CaseScores, model: str, loss: str) -> dict[str, float]:
    """Per case, the mean per-case Dice over the seeds of (model, loss)."""
    return {c: float(np.mean(list(s.values()))) for c, s in scores.get((model, loss), {}).items()}


def paired_seed_differences(
    scores: CaseScores, model: str, loss: str, baseline: str = BASELINE
) -> tuple[np.ndarray, list[str], list[int]]:
    """The cases x seeds table ``D[c, s] = Dice(loss, c, s) - Dice(baseline, c, s)``, NaN
    where either loss lacks that case and seed; rows are the cases both losses tested with
    at least one shared seed (sorted), columns the seeds (sorted)."""
    ours, theirs = scores.get((model, loss), {}), scores.get((model, baseline), {})
    shared = {
        case: sorted(ours[case].keys() & theirs[case].keys())
        for case in sorted(ours.keys() & theirs.keys())
    }
    cases = [case for case, seeds in shared.items() if seeds]
    seeds = sorted({s for case in cases for s in shared[case]})
    table = np.full((len(cases), len(seeds)), np.nan)
    for i, case in enumerate(cases):
        for s in shared[case]:
            table[i, seeds.index(s)] = ours[case][s] - theirs[case][s]
    return table, cases, seeds


def case_differences(table: np.ndarray) -> list[float]:
    """Per row of a cases x seeds table, ``d_c``: the mean over the seeds it has."""
    return [float(np.nanmean(row)) for row in table]


def paired_case_differences(
    scores: CaseScores, model: str, loss: str, baseline: str = BASELINE
) -> dict[str, float]:
    """Per case both losses tested, ``mean_s Dice(loss) - mean_s Dice(baseline)`` over the
    seeds they share for that case (cases with no shared seed are left out)."""
    table, cases, _ = paired_seed_differences(scores, model, loss, baseline)
    return dict(zip(cases, case_differences(table), strict=True))


def cases_by_seeds_bootstrap_ci(
    table: np.ndarray,
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
    chunk: int = 500,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean difference of a cases x seeds ``table``
    (NaN: no value), resampling cases and seeds independently (module docstring).

    Draws, in this order, from ``default_rng(seed)``: case indices ``(B, n)``, then seed
    indices ``(B, k)``. Each resample's statistic: per drawn case the mean of its values in
    the drawn seeds (NaN left out), then the mean over the drawn cases that have one. One
    seed column, or every column equal, gives :func:`bootstrap_ci` of the case means (the
    same case draws), up to rounding.
    """
    data = np.asarray(table, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < MIN_UNITS:
        raise ValueError(f"the table needs at least {MIN_UNITS} cases (rows), got {data.shape}")
    if np.isinf(data).any():
        raise ValueError("the differences must be finite (NaN marks a missing value)")
    n, k = data.shape
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, size=(n_resamples, n))
    if k == 1:
        column = data[:, 0]
        if np.isnan(column).any():
            raise ValueError("a one-seed table must have a value for every case")
        means = column[rows].mean(axis=1)
    else:
        cols = rng.integers(0, k, size=(n_resamples, k))
        means = np.empty(n_resamples)
        for start in range(0, n_resamples, chunk):  # (chunk, n, k) at a time: bounded memory
            r, c = rows[start : start + chunk], cols[start : start + chunk]
            block = data[r[:, :, None], c[:, None, :]]
            valid = ~np.isnan(block)
            counts = valid.sum(axis=2)
            sums = np.where(valid, block, 0.0).sum(axis=2)
            has = counts > 0
            case_means = np.divide(sums, counts, out=np.zeros_like(sums), where=has)
            used = has.sum(axis=1)
            total = case_means.sum(axis=1)
            means[start : start + chunk] = np.divide(
                total, used, out=np.full_like(total, np.nan), where=used > 0
            )
        means = means[~np.isnan(means)]  # a resample of seeds no drawn case has: no mean
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def verdicts(
    table: ResultsTable, margin: float = DEFAULT_MARGIN, baseline: str = BASELINE
) -> list[Verdict]:
    """One :class:`Verdict` per model and loss other than ``baseline``, for the models
    with baseline runs; Wilcoxon p-values Holm-corrected over the losses of each model."""
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")
    scores = case_scores(table)
    rows: list[Verdict] = []
    for model in table.models:
        if (model, baseline) not in scores:
            continue
        raw = [
            _verdict(model, loss, baseline,
                     paired_seed_differences(scores, model, loss, baseline)[0], margin)
            for loss in table.losses
            if loss != baseline and (model, loss) in scores
        ]  # fmt: skip
        tested = [v for v in raw if v.p_wilcoxon is not None]
        adjusted = dict(
            zip(
                (v.loss for v in tested),
                holm([v.p_wilcoxon for v in tested if v.p_wilcoxon is not None]),
                strict=True,
            )
        )
        rows += [_with_holm(v, adjusted.get(v.loss)) for v in raw]
    return rows


def _verdict(model: str, loss: str, baseline: str, table: np.ndarray, margin: float) -> Verdict:
    """The verdict of one loss from its cases x seeds table of differences."""
    values = case_differences(table)
    n = len(values)
    mean = float(np.mean(values)) if values else None
    sd = float(np.std(values, ddof=1)) if n >= 2 else None
    low, high = cases_by_seeds_bootstrap_ci(table) if n >= MIN_UNITS else (None, None)
    decision = decide(low, high, margin)
    needed = None
    if decision == "inconclusive" and mean is not None and sd is not None:
        needed = cases_needed(mean, sd, margin)
    return Verdict(
        model, loss, baseline, METRIC, UNIT, n, mean, low, high, margin, decision,
        sd_diff=sd, cases_needed=needed, p_wilcoxon=wilcoxon_pairs(values),
    )  # fmt: skip


def _with_holm(v: Verdict, p_holm: float | None) -> Verdict:
    return replace(v, p_holm=p_holm)


def mean_case_dice(table: ResultsTable) -> dict[str, float]:
    """Per run name, the mean per-case Dice over the run's test cases (runs without
    per_case_test.csv are left out); below :data:`FAILED_TO_LEARN` a run learned nothing."""
    means = {}
    for info in table.runs:
        rows = table.per_case.get(info.name, [])
        if rows:
            means[info.name] = float(np.mean([case_dice_of(r) for r in rows]))
    return means


def run_means(table: ResultsTable) -> dict[tuple[str, str, str, str, str], tuple[float, int]]:
    """Per (model, loss, metric, reduction, group) of eval_test.json, the mean over the
    runs (seeds and folds) that have a value, and their number."""
    groups: dict[tuple[str, str, str, str, str], list[float]] = {}
    for row in table.rows:
        if row.value is not None:
            key = (row.model, row.loss, row.metric, row.reduction, row.group)
            groups.setdefault(key, []).append(row.value)
    return {key: (float(np.mean(values)), len(values)) for key, values in groups.items()}


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
