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
- **The interval of the mean difference**, :func:`paired_interval` (its own module,
  :mod:`calfseg.bench.interval`): a generalized confidence interval for the crossed cases x
  training-runs design, which sees the spread between cases and between training runs,
  with the few degrees of freedom a handful of seeds has. One seed cannot see the second:
  such a verdict says so (:attr:`Verdict.n_seeds`).
- **Verdict**, in this order: ``equivalent`` if the interval lies within ``[-margin,
  margin]`` (a difference smaller than the margin does not matter, whatever its sign);
  ``better`` if ``ci_low > 0``; ``worse`` if ``ci_high < 0``; else ``inconclusive``. With
  fewer than :data:`MIN_UNITS` cases there is no interval and the verdict is
  ``inconclusive``.
- **What would decide it** (inconclusive rows): from the variance components, the cases
  (at the same seeds) or the seeds (at the same cases) for which the normal half-width
  ``z sqrt(var_case / n + var_run / (k F) + var_within / (n k))`` (``F`` folds) drops below
  ``|d|`` (to show a difference) or ``margin - |d|`` (equivalence); None when more of
  that one alone cannot get there.
- **The A/A control** (:data:`calfseg.bench.grid.CONTROL_LOSS`): BCE trained under other
  seeds, paired with ``bce`` seed by seed like any loss. Its true difference is 0, so its
  interval must contain 0; its half-width is the benchmark's resolution on this data.
- **Strata** (:func:`stratified_verdicts`): the same analysis within groups of cases, by
  the true lesion volume of the case (``TP + FN`` summed over its test slices, in voxels):
  ``empty`` (no lesion: every case difference there is a difference in false alarms, a
  case scoring 1 without any predicted voxel and 0 with one), then ``small``, ``medium``
  and ``large``, the tertiles of the non-empty cases' volumes
  (:func:`calfseg.metrics.size_groups`: ``q1, q2 = quantile(volumes, [1/3, 2/3])``, a case
  on a cut point goes to the lower group). A stratum with fewer than
  :data:`MIN_STRATUM_CASES` cases gets no interval and the verdict ``too-few-cases``.
- **Secondary**: a two-sided Wilcoxon signed-rank test on the case differences, Holm-
  corrected over the losses of a model. It never decides a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from calfseg.bench.collect import ResultsTable
from calfseg.bench.grid import CONTROL_LOSS, baseline_seed
from calfseg.bench.interval import (
    MIN_CASES,
    PairedEstimate,
    paired_estimate,
)
from calfseg.bench.interval import paired_interval as paired_interval  # the public path
from calfseg.errors import DataValueError, OptionError
from calfseg.metrics.groups import EMPTY_GROUP, SIZE_GROUPS, size_groups

BASELINE = "bce"
METRIC = "dice"  # per-case Dice: verdicts.csv's metric with unit "case"
UNIT = "case"
CONFIDENCE = 0.95
DEFAULT_MARGIN = 0.01  # Dice; docs/benchmark.md says why
MIN_UNITS = MIN_CASES
Z_95 = 1.959963984540054  # standard normal 97.5 % quantile
FAILED_TO_LEARN = 0.1  # a run whose mean per-case test Dice is below this learned nothing
BRANCH_PREFIX = "branch/"
VERDICTS = ("better", "worse", "equivalent", "inconclusive")
OVERALL = "all"  # the stratum of the verdict over every case
STRATA = (EMPTY_GROUP, *SIZE_GROUPS)  # the lesion-volume strata, in report order
TOO_FEW = "too-few-cases"  # a stratum's verdict below MIN_STRATUM_CASES
# The smallest number of cases the interval's coverage was simulated at (docs/benchmark.md,
# Statistics: 6 to 500 cases); below it a stratum's interval would be uncalibrated.
MIN_STRATUM_CASES = 6

# (model, loss) -> case id -> seed -> per-case Dice
CaseScores = dict[tuple[str, str], dict[str, dict[int, float]]]


@dataclass(frozen=True)
class Verdict:
    """One row of verdicts.csv (:data:`VERDICT_COLUMNS`) and the report's extra columns:
    the SD of the case differences, the interval's estimate, the cases or seeds that would
    decide an inconclusive row, and the secondary Wilcoxon p-values. ``stratum`` is
    :data:`OVERALL` for the verdict over every case, else one of :data:`STRATA`."""

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
    n_seeds: int = 0
    sd_diff: float | None = None
    cases_needed: int | None = None
    seeds_needed: int | None = None
    estimate: PairedEstimate | None = None
    p_wilcoxon: float | None = None
    p_holm: float | None = None
    stratum: str = OVERALL

    def csv_cells(self) -> list[str]:
        """The cells of :data:`VERDICT_COLUMNS`, numbers in full precision, None empty."""
        values = [getattr(self, name) for name in VERDICT_COLUMNS]
        return ["" if v is None else repr(v) if isinstance(v, float) else str(v) for v in values]

    @property
    def half_width(self) -> float | None:
        """Half the interval's width: the smallest difference this row could call."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2


VERDICT_COLUMNS = (
    "model", "loss", "baseline", "metric", "unit", "n_units", "mean_diff", "ci_low",
    "ci_high", "margin", "verdict", "n_seeds", "stratum",
)  # fmt: skip


def decide(ci_low: float | None, ci_high: float | None, margin: float) -> str:
    """The verdict rule, in this order: equivalent (the interval inside ``[-margin,
    margin]``), better (``ci_low > 0``), worse (``ci_high < 0``), inconclusive (otherwise,
    or no interval)."""
    if ci_low is None or ci_high is None:
        return "inconclusive"
    if -margin <= ci_low and ci_high <= margin:
        return "equivalent"
    if ci_low > 0:
        return "better"
    if ci_high < 0:
        return "worse"
    return "inconclusive"


def what_decides(
    estimate: PairedEstimate, margin: float, folds: int = 1, multiplier: float | None = None
) -> tuple[int | None, int | None]:
    """(cases at the same seeds, seeds at the same cases) for which the half-width
    ``multiplier sqrt(var_case / n + var_run / (k F) + var_within / (n k))`` falls below
    ``max(|d|, margin - |d|)``; None where more of that alone cannot get there (or, for the
    seeds, with one seed, which cannot see ``var_run``). ``multiplier`` defaults to the
    estimate's own ``half_width / se``, the heavy tail of its few degrees of freedom: more
    seeds would lower it, so the answer errs on the side of more."""
    target = max(abs(estimate.mean), margin - abs(estimate.mean))
    if multiplier is None:
        multiplier = estimate.half_width / estimate.se if estimate.se > 0 else Z_95
    if target <= 0:
        return None, None
    room = (target / multiplier) ** 2
    n, k, f = estimate.n_cases, max(1, estimate.n_seeds), max(1, folds)
    case_part = estimate.var_case + estimate.var_within / k
    cases = _at_least(case_part, room - estimate.var_run / (k * f))
    seeds = None
    if estimate.sees_runs:
        seeds = _at_least(
            estimate.var_run / f + estimate.var_within / n, room - estimate.var_case / n
        )
    return cases, seeds


def _at_least(numerator: float, denominator: float) -> int | None:
    if denominator <= 0:
        return None
    return max(MIN_UNITS, math.ceil(numerator / denominator))


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
                raise DataValueError(
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
        raise DataValueError(f"per-case row of case {row.get('case_id')} has no counts and no dice")
    return float(dice)


def case_means(scores: CaseScores, model: str, loss: str) -> dict[str, float]:
    """Per case, the mean per-case Dice over the seeds of (model, loss)."""
    return {c: float(np.mean(list(s.values()))) for c, s in scores.get((model, loss), {}).items()}


def paired_seed_differences(
    scores: CaseScores, model: str, loss: str, baseline: str = BASELINE
) -> tuple[np.ndarray, list[str], list[int]]:
    """The cases x seeds table ``D[c, s] = Dice(loss, c, s) - Dice(baseline, c, s')``, NaN
    where either loss lacks that case and seed; rows are the cases both losses tested with
    at least one shared seed (sorted), columns the baseline's seeds (sorted). ``s'`` is
    ``s`` (the same seed: common random numbers), or for the A/A control the ``bce`` seed
    its seed pairs with (:func:`calfseg.bench.grid.baseline_seed`)."""
    ours, theirs = scores.get((model, loss), {}), scores.get((model, baseline), {})
    shared: dict[str, list[tuple[int, int]]] = {}
    for case in sorted(ours.keys() & theirs.keys()):
        pairs = [(baseline_seed(loss, s), s) for s in ours[case]]
        shared[case] = sorted((b, s) for b, s in pairs if b in theirs[case])
    cases = [case for case, pairs in shared.items() if pairs]
    seeds = sorted({b for case in cases for b, _ in shared[case]})
    table = np.full((len(cases), len(seeds)), np.nan)
    for i, case in enumerate(cases):
        for b, s in shared[case]:
            table[i, seeds.index(b)] = ours[case][s] - theirs[case][b]
    return table, cases, seeds


def case_folds(table: ResultsTable, model: str, loss: str) -> dict[str, int | None]:
    """The cross-validation fold that tested each case of (model, loss) (None without
    cross-validation): the unit of the training runs' effect in :func:`paired_interval`."""
    folds: dict[str, int | None] = {}
    for info in table.runs:
        if (info.model, info.loss) == (model, loss):
            for row in table.per_case.get(info.name, []):
                folds.setdefault(str(row.get("case_id")), info.fold)
    return folds


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


def verdicts(
    table: ResultsTable, margin: float = DEFAULT_MARGIN, baseline: str = BASELINE
) -> list[Verdict]:
    """One :class:`Verdict` per model and loss other than ``baseline``, over every case, for
    the models with baseline runs; Wilcoxon p-values Holm-corrected over the losses of each
    model."""
    rows: list[Verdict] = []
    for raw in _by_model(table, margin, baseline, None).values():
        # the control checks the benchmark; it is not one of the comparisons Holm adjusts for
        tested = [v for v in raw if v.p_wilcoxon is not None and v.loss != CONTROL_LOSS]
        adjusted = dict(
            zip(
                (v.loss for v in tested),
                holm([v.p_wilcoxon for v in tested if v.p_wilcoxon is not None]),
                strict=True,
            )
        )
        rows += [_with_holm(v, adjusted.get(v.loss)) for v in raw]
    return rows


def stratified_verdicts(
    table: ResultsTable, margin: float = DEFAULT_MARGIN, baseline: str = BASELINE
) -> list[Verdict]:
    """The verdicts of :func:`verdicts` within each lesion-volume stratum of the cases
    (:func:`case_strata`), in the order model, loss, :data:`STRATA`; a stratum with fewer than
    :data:`MIN_STRATUM_CASES` cases has no interval and the verdict :data:`TOO_FEW`. The
    strata's p-values are not Holm-corrected (they describe, the overall row decides)."""
    strata = case_strata(table)
    if not strata:
        return []
    rows: list[Verdict] = []
    for raw in _by_model(table, margin, baseline, strata).values():
        rows += raw
    return rows


def case_strata(table: ResultsTable) -> dict[str, str]:
    """Per case, its stratum of :data:`STRATA` by its true lesion volume ``TP + FN`` (summed
    over its test slices; the truth is the same in every run, read from the first run by
    name that tested the case).

    Empty when a per-case row has no ``tp``/``fn`` (only its Dice).

    Raises:
        DataValueError: two runs saw another truth for one case (different caches in one
            results folder); names the case and both runs.
    """
    volumes: dict[str, tuple[float, str]] = {}
    for info in sorted(table.runs, key=lambda r: r.name):
        for row in table.per_case.get(info.name, []):
            case = str(row.get("case_id"))
            tp, fn = row.get("tp"), row.get("fn")
            if not isinstance(tp, (int, float)) or not isinstance(fn, (int, float)):
                return {}  # Dice-only rows (an older table): no volumes, no strata
            volume = float(tp) + float(fn)
            seen = volumes.setdefault(case, (volume, info.name))
            if seen[0] != volume:
                raise DataValueError(
                    f"case {case} has a true lesion volume of {seen[0]:g} voxels in {seen[1]} "
                    f"and {volume:g} in {info.name}: these runs were tested on different masks"
                )
    cases = sorted(volumes)
    groups = size_groups([volumes[c][0] for c in cases])
    return {
        case: next(name for name in STRATA if groups.masks[name][i]) for i, case in enumerate(cases)
    }


def _by_model(
    table: ResultsTable, margin: float, baseline: str, strata: dict[str, str] | None
) -> dict[str, list[Verdict]]:
    """Per model with ``baseline`` runs, the verdict of each other loss: over every case
    (``strata`` None) or one per stratum of :data:`STRATA`."""
    if not math.isfinite(margin) or margin < 0:
        raise OptionError(f"margin must be a finite number >= 0, got {margin}")
    scores = case_scores(table)
    n_folds = max(1, len([f for f in table.folds if f is not None]))
    out: dict[str, list[Verdict]] = {}
    for model in table.models:
        if (model, baseline) not in scores:
            continue
        rows = out.setdefault(model, [])
        for loss in table.losses:
            if loss == baseline or (model, loss) not in scores:
                continue
            differences, cases, _ = paired_seed_differences(scores, model, loss, baseline)
            folds = case_folds(table, model, loss)
            if strata is None:
                rows.append(
                    _verdict(model, loss, baseline, differences, [folds.get(c) for c in cases],
                             margin, n_folds)
                )  # fmt: skip
                continue
            for stratum in STRATA:
                keep = [i for i, case in enumerate(cases) if strata.get(case) == stratum]
                verdict = _verdict(
                    model, loss, baseline, differences[keep],
                    [folds.get(cases[i]) for i in keep], margin, n_folds,
                    minimum=MIN_STRATUM_CASES, too_few=TOO_FEW,
                )  # fmt: skip
                rows.append(replace(verdict, stratum=stratum))
    return out


def _verdict(
    model: str,
    loss: str,
    baseline: str,
    table: np.ndarray,
    folds: list[int | None],
    margin: float,
    n_folds: int,
    *,
    minimum: int = MIN_UNITS,
    too_few: str | None = None,
) -> Verdict:
    """The verdict of one loss from its cases x seeds table of differences; below
    ``minimum`` cases no interval, and the verdict ``too_few`` (default: the rule's
    ``inconclusive``)."""
    values = case_differences(table)
    n = len(values)
    seeds = int((~np.all(np.isnan(table), axis=0)).sum()) if n else 0
    sd = float(np.std(values, ddof=1)) if n >= 2 else None
    if n < max(minimum, MIN_UNITS):
        mean = float(np.mean(values)) if values else None
        return Verdict(
            model, loss, baseline, METRIC, UNIT, n, mean, None, None, margin,
            too_few or decide(None, None, margin), n_seeds=seeds, sd_diff=sd,
            p_wilcoxon=wilcoxon_pairs(values),
        )  # fmt: skip
    estimate = paired_estimate(table, folds=folds)
    decision = decide(estimate.low, estimate.high, margin)
    cases, more_seeds = (None, None)
    if decision == "inconclusive":
        cases, more_seeds = what_decides(estimate, margin, n_folds)
    return Verdict(
        model, loss, baseline, METRIC, UNIT, n, estimate.mean, estimate.low, estimate.high,
        margin, decision, n_seeds=seeds, sd_diff=sd, cases_needed=cases,
        seeds_needed=more_seeds, estimate=estimate, p_wilcoxon=wilcoxon_pairs(values),
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
