"""The interval behind every verdict: the mean of a cases x seeds table of paired
differences, with a confidence interval that sees both the cases and the training runs.

The model (a crossed random-effects design; Searle, Casella & McCulloch, *Variance
Components*, 1992, ch. 4) for the difference ``D[c, s] = Dice(loss, c, s) - Dice(bce, c, s)``
of case ``c`` under training seed ``s``::

    D[c, s] = mu + a[c] + r[s, f(c)] + e[c, s]

- ``a[c]``, variance ``var_case``: how much more (or less) this case gains from the loss;
- ``r[s, f]``, variance ``var_run``: the training run. A run is one seed trained on one
  fold's training cases; it moves every case that run tests (the cases of fold ``f``)
  together. Without cross-validation there is one fold and a run is a seed;
- ``e[c, s]``, variance ``var_within``: the case x run interaction (what is left).

The estimate is the mean over cases of each case's mean over its seeds, ``d = mean_c
mean_s D[c, s]``, whose variance is::

    Var(d) = var_case / n + sum_f (m_f / n)^2 var_run / k_f + var_within / (n k)

(``n`` cases, ``m_f`` of them in fold ``f``, ``k_f`` seeds there). It is estimated by the
method of moments:

- ``S2 / n``, with ``S2`` the sample variance of the ``n`` case means: its expectation is
  ``var_case / n + var_within / (n k)`` plus a small share of ``var_run`` (the part of the
  run effects that differs between folds);
- the rest of the run term, ``g var_run`` (``g`` = the fold weights above minus the share
  already in ``S2``, 0 under leave-one-out), with ``var_run`` estimated within folds from
  the two-way ANOVA of each fold's cases x seeds table: ``(MS_seeds - MS_within) / m``
  (``m``: the cases per fold), set to 0 when negative.

The interval is ``d +- h``, a generalized confidence interval (:func:`generalized_half_width`):
each mean square is replaced by its pivot ``MS df / chi2(df)`` and ``h`` is the 97.5 % point
of ``|Z| sqrt(V*)``. With seeds that agree it is the paired t-interval of the case means;
with seeds that disagree it widens as a t with the seeds' own degrees of freedom, ``F (k -
1)``, would: three seeds cannot pin a run-to-run spread down, and the interval says so.

Skewed case gains: the interval above takes the case gains as normal. With about ten cases
whose gains are strongly skewed it covered 87-90 % at nominal 95 %, because a small sample
usually misses the long tail and then shows a small spread exactly when its mean is off.
The reported interval is therefore the hull of ``d +- h`` and the studentized
bootstrap of the case means (:func:`studentized_bootstrap`), which learns the skew from the
cases and widens the side of the tail; with many cases, or normal gains, the two nearly
agree.

Missing cells (a failed run, a case a run did not test) are filled within their fold by
the additive fit ``row + column - grand`` (Yates's missing-value method, 1933), and each
filled cell takes one degree of freedom from ``MS_within``. With one seed the run term
cannot be estimated: the interval is the one over the cases alone (the hull of the paired
t-interval and the bootstrap-t), which does not see how another training run would move
the answer (:attr:`PairedEstimate.sees_runs`).

Why not the bootstrap over cases and seeds used before: with ``k`` seeds a resample draws
one seed ``k`` times with probability ``k^-k`` (3.7 % each for 3 seeds), so the 2.5 / 97.5 %
quantiles sit at the smallest and largest seed means, and the seed effect gets normal
tails where a t with ``k - 1`` degrees of freedom is needed; its coverage at nominal 95 %
was 67-87 % in simulation. ``benchmarks/coverage.py`` measures both on designs this
interval was not fitted to (docs/benchmark.md, *Statistics*).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from calfseg.errors import DataValueError, OptionError

CONFIDENCE = 0.95
MIN_CASES = 2
_IMPUTE_ITERATIONS = 200
_IMPUTE_TOLERANCE = 1e-12
PIVOT_DRAWS = 4000
_NO_SPREAD = 1e-12
PIVOT_SEED = 2504  # fixed: the same table always gives the same interval
BOOTSTRAP_DRAWS = 20_000  # the 97.5 % point of a skewed T* needs them (4,000: 10 % off)
_CHUNK = 2048


@dataclass(frozen=True)
class PairedEstimate:
    """The mean paired difference and its interval, with what they rest on.

    Attributes:
        mean: ``mean_c mean_s D[c, s]`` (missing cells filled by the additive fit).
        low, high: the interval's ends.
        se: the estimated standard error ``sqrt(V)``.
        n_cases: the cases (rows with at least one value).
        n_seeds: the seeds (columns with at least one value).
        n_runs: the (seed, fold) training runs behind the table.
        var_case, var_run, var_within: the variance components (``var_run`` 0 when it
            cannot be estimated, e.g. with one seed).
        sees_runs: False with one seed: the interval covers the spread of the cases only.
    """

    mean: float
    low: float
    high: float
    se: float
    n_cases: int
    n_seeds: int
    n_runs: int
    var_case: float
    var_run: float
    var_within: float
    sees_runs: bool

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def paired_interval(
    table: np.ndarray | Sequence[Sequence[float]],
    *,
    confidence: float = CONFIDENCE,
    folds: Sequence[object] | None = None,
) -> tuple[float, float]:
    """The ``confidence`` interval of the mean paired difference of a cases x seeds table.

    Args:
        table: ``D[c, s]``, one row per case, one column per training seed; NaN where the
            case has no value for that seed.
        confidence: the nominal coverage, in (0, 1).
        folds: per row, the cross-validation fold that tested the case (any hashable
            label); None when every run tested every case (no cross-validation).

    Returns:
        ``(low, high)``; see :func:`paired_estimate` for the model and the other numbers.
    """
    estimate = paired_estimate(table, confidence=confidence, folds=folds)
    return estimate.low, estimate.high


def paired_estimate(
    table: np.ndarray | Sequence[Sequence[float]],
    *,
    confidence: float = CONFIDENCE,
    folds: Sequence[object] | None = None,
) -> PairedEstimate:
    """The mean of a cases x seeds table of paired differences and its interval (module
    docstring: the model, the estimator, the interval).

    Raises:
        ValueError: not a 2-D table, an infinite value, fewer than :data:`MIN_CASES` cases
            with a value, ``folds`` not one label per row, ``confidence`` outside (0, 1).
    """
    squares = mean_squares(table, folds=folds)
    half = generalized_half_width(squares, confidence)
    skew_low, skew_high = studentized_bootstrap(squares.case_means, confidence)
    return PairedEstimate(
        mean=squares.mean, low=float(min(squares.mean - half, skew_low)),
        high=float(max(squares.mean + half, skew_high)),
        se=squares.variance**0.5, n_cases=squares.n_cases, n_seeds=squares.n_seeds,
        n_runs=squares.n_runs, var_case=squares.var_case, var_run=squares.var_run,
        var_within=squares.ms_within, sees_runs=squares.n_seeds >= 2,
    )  # fmt: skip


@dataclass(frozen=True)
class MeanSquares:
    """The sufficient statistics of the interval (module docstring).

    Attributes:
        mean: the estimate ``d``.
        n_cases, n_seeds, n_runs: the table's cases, seeds and (seed, fold) runs.
        ms_cases, df_cases: ``S2``, the sample variance of the case means, and ``n - 1``.
        ms_seeds, df_seeds: the seeds' mean square pooled within folds and its degrees of
            freedom ``sum_f (k_f - 1)`` (0 with one seed).
        ms_within, df_within: the residual mean square pooled within folds and its degrees of
            freedom ``sum_f (m_f - 1)(k_f - 1)`` less the filled cells (0 when none).
        run_weight: ``g``, the coefficient of ``var_run`` in ``Var(d)`` beyond ``S2 / n``.
        seeds_per_run: ``m``, the cases behind a seed's mean square: ``E[ms_seeds] =
            m var_run + var_within``.
        case_means: each case's mean over its seeds (missing cells filled), read-only.
    """

    mean: float
    n_cases: int
    n_seeds: int
    n_runs: int
    ms_cases: float
    df_cases: float
    ms_seeds: float
    df_seeds: float
    ms_within: float
    df_within: float
    run_weight: float
    seeds_per_run: float
    case_means: np.ndarray = dataclasses.field(compare=False, repr=False)

    @property
    def var_run(self) -> float:
        """The run-to-run variance of the difference, ``(ms_seeds - ms_within) / m`` (>= 0)."""
        if self.df_seeds == 0:
            return 0.0
        return max(0.0, (self.ms_seeds - self.ms_within) / self.seeds_per_run)

    @property
    def var_case(self) -> float:
        """The case-to-case variance of the difference (>= 0)."""
        per_case = self.ms_within / self.n_seeds if self.n_seeds else 0.0
        return max(0.0, self.ms_cases - per_case)

    @property
    def variance(self) -> float:
        """The estimate of ``Var(d)``: ``S2 / n + g var_run``."""
        return self.ms_cases / self.n_cases + self.run_weight * self.var_run


def mean_squares(
    table: np.ndarray | Sequence[Sequence[float]], *, folds: Sequence[object] | None = None
) -> MeanSquares:
    """The mean squares of a cases x seeds table (missing cells filled within their fold)."""
    data, labels = _checked(table, folds)
    n = data.shape[0]
    blocks: list[tuple[np.ndarray, int]] = []
    for label in sorted(set(labels.tolist())):
        block = data[labels == label]
        block = block[:, ~np.all(np.isnan(block), axis=0)]  # seeds this fold never ran
        blocks.append((_fill_additive(block), int(np.isnan(block).sum())))
    case_means = np.concatenate([block.mean(axis=1) for block, _ in blocks])
    case_means.setflags(write=False)
    ss_seeds = df_seeds = ss_within = df_within = weight = g = 0.0
    for block, holes in blocks:
        m, k = block.shape
        fold_mean = block.mean()
        seed_means, row_means = block.mean(axis=0), block.mean(axis=1)
        if k >= 2:
            ss_seeds += m * float(((seed_means - fold_mean) ** 2).sum())
            df_seeds += k - 1
            weight += (k - 1) * m
            residual = block - row_means[:, None] - seed_means[None, :] + fold_mean
            ss_within += float((residual**2).sum())
            df_within += max(0, (m - 1) * (k - 1) - holes)
        # Var(d) holds var_run (m/n)^2 / k from this fold; S2 / n holds the share of it that
        # differs between folds already (0 under leave-one-out).
        g += (m * m / (n * n) - (m - m * m / n) / (n * (n - 1))) / k
    seeds = int((~np.all(np.isnan(data), axis=0)).sum())
    return MeanSquares(
        mean=float(case_means.mean()), n_cases=n, n_seeds=seeds,
        n_runs=sum(block.shape[1] for block, _ in blocks),
        ms_cases=float(case_means.var(ddof=1)), df_cases=float(n - 1),
        ms_seeds=ss_seeds / df_seeds if df_seeds else 0.0, df_seeds=df_seeds,
        ms_within=ss_within / df_within if df_within else 0.0, df_within=df_within,
        run_weight=g if df_seeds else 0.0, seeds_per_run=weight / df_seeds if df_seeds else 1.0,
        case_means=case_means,
    )  # fmt: skip


def generalized_half_width(squares: MeanSquares, confidence: float = CONFIDENCE) -> float:
    """The half-width ``h`` of the generalized confidence interval ``d +- h``.

    Each mean square ``MS_i`` (``df_i`` degrees of freedom) gives the pivot ``MS_i df_i /
    U_i``, ``U_i ~ chi2(df_i)``; the pivot of ``Var(d)`` is ``V* = S2* / n + g max(0,
    (ms_seeds* - ms_within*) / m)`` and ``h`` solves ``E[2 Phi(h / sqrt(V*)) - 1] =
    confidence`` (Weerahandi, *J. Am. Stat. Assoc.* 88, 1993; for sums of variance
    components, Krishnamoorthy & Mathew, *Statistical Tolerance Regions*, 2009, ch. 6).
    Unlike a t with Satterthwaite's degrees of freedom, it keeps the heavy tail of a run
    term that rests on 1-2 degrees of freedom when the data happen to make that term small
    (Satterthwaite covered 89-92 % with 2-3 seeds and no cross-validation; this, 93-95 %:
    ``benchmarks/coverage.py``). The expectation is over :data:`PIVOT_DRAWS` Latin-hypercube
    draws of each ``U_i`` from a fixed generator: the same table always gives the same
    interval.
    """
    if not 0 < confidence < 1:
        raise OptionError(f"confidence must be in (0, 1), got {confidence!r}")
    from scipy import optimize, special

    rng = np.random.default_rng(PIVOT_SEED)

    def pivot(ms: float, dof: float) -> np.ndarray:
        """``ms dof / U``, ``U ~ chi2(dof)`` at the stratified quantiles, shuffled."""
        return ms * dof / rng.permutation(_chi2_strata(dof))

    variance = pivot(squares.ms_cases, squares.df_cases) / squares.n_cases
    if squares.run_weight > 0 and squares.ms_seeds > 0:
        run = pivot(squares.ms_seeds, squares.df_seeds)
        if squares.df_within > 0:
            run = run - pivot(squares.ms_within, squares.df_within)
        variance = variance + squares.run_weight * np.maximum(run, 0.0) / squares.seeds_per_run
    sd = np.sqrt(variance)
    # Spread at the level of rounding is none: equal differences give a zero-width interval.
    if not np.any(sd > _NO_SPREAD * max(1.0, abs(squares.mean))):
        return 0.0
    positive = sd > 0
    scale = np.where(positive, sd, 1.0)

    def shortfall(h: float) -> float:
        covered = np.where(positive, 2 * special.ndtr(h / scale) - 1, float(h > 0))
        return float(np.mean(covered)) - confidence

    upper = float(sd.max()) * 50
    return float(optimize.brentq(shortfall, 0.0, upper, xtol=1e-12 * max(upper, 1e-12)))


def studentized_bootstrap(
    case_means: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The studentized (bootstrap-t) interval of the mean of the case means (Efron &
    Tibshirani, *An Introduction to the Bootstrap*, 1993, sec. 12.5; Hall, *Ann. Stat.*
    16, 1988, for its second-order accuracy under skewness).

    Each of :data:`BOOTSTRAP_DRAWS` resamples of the ``n`` case means (with replacement,
    from a fixed generator) gives ``T* = (mean* - mean) / (sd* / sqrt(n))``; the interval
    is ``[mean - T*_hi se, mean - T*_lo se]`` with ``se = sd / sqrt(n)`` and ``T*_lo``,
    ``T*_hi`` the ``(1 -+ confidence) / 2`` quantiles. A resample that repeats one case has
    no spread and no ``T*``; it is left out (1 in 7,776 with 6 cases; with 2 cases every
    informative resample gives ``T* = 0`` and the interval is the mean).

    Why it is there: the generalized pivot takes the case gains as normal. With about ten
    cases whose gains are strongly skewed (a few cases gain or lose much more than the
    rest), the sample misses the long tail more often than not, its spread comes out small
    exactly when its mean is off, and the pivot covered 87-90 % at nominal 95 % in
    simulation. The bootstrap-t learns the skew from the cases and widens the interval on
    the side of the tail. :func:`paired_estimate` takes the hull of the two, so the
    interval keeps the pivot's run term and gains the skew correction; the cost, measured
    by ``benchmarks/coverage.py``, is width with 6-12 normal cases (docs/benchmark.md,
    *Statistics*).
    """
    values = np.asarray(case_means, dtype=np.float64)
    n = values.size
    mean = float(values.mean())
    spread = float(values.std(ddof=1)) if n >= 2 else 0.0
    if spread <= _NO_SPREAD * max(1.0, abs(mean)):
        return mean, mean
    counts = _resample_counts(n)
    centred = values - mean
    shift = _times(counts, centred) / n  # mean* - mean
    square = _times(counts, centred * centred) / n
    sd = np.sqrt(np.maximum(square - shift * shift, 0.0) * n / (n - 1))
    informative = sd > _NO_SPREAD * spread
    t = shift[informative] / (sd[informative] / np.sqrt(n))
    if t.size == 0:
        return mean, mean
    t_low, t_high = np.quantile(t, [(1 - confidence) / 2, (1 + confidence) / 2])
    se = spread / float(np.sqrt(n))
    return float(mean - t_high * se), float(mean - t_low * se)


@functools.lru_cache(maxsize=4)
def _resample_counts(n: int) -> np.ndarray:
    """How often each of ``n`` cases is drawn in each of :data:`BOOTSTRAP_DRAWS` resamples
    (a fixed generator per ``n``): a resample's mean is ``counts @ x / n``. Stored as the
    smallest unsigned integer that holds them (a case is drawn about once per resample)."""
    rng = np.random.default_rng([PIVOT_SEED, n])
    counts = np.zeros((BOOTSTRAP_DRAWS, n), dtype=np.int64)
    for start in range(0, BOOTSTRAP_DRAWS, _CHUNK):
        rows = min(_CHUNK, BOOTSTRAP_DRAWS - start)
        drawn = rng.integers(0, n, (rows, n)) + n * np.arange(rows)[:, None]
        counts[start : start + rows] = np.bincount(drawn.ravel(), minlength=rows * n).reshape(
            rows, n
        )
    small = counts.astype(np.uint8 if counts.max() <= np.iinfo(np.uint8).max else np.uint32)
    small.setflags(write=False)
    return small


def _times(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``counts @ values`` in float64, a chunk of resamples at a time (bounded memory)."""
    return np.concatenate(
        [counts[i : i + _CHUNK].astype(np.float64) @ values for i in range(0, len(counts), _CHUNK)]
    )


@functools.lru_cache(maxsize=256)
def _chi2_strata(dof: float) -> np.ndarray:
    """The ``PIVOT_DRAWS`` quantiles of chi2(dof) at ``(j + 0.5) / PIVOT_DRAWS``."""
    from scipy import stats

    strata = stats.chi2.ppf((np.arange(PIVOT_DRAWS) + 0.5) / PIVOT_DRAWS, dof)
    strata.setflags(write=False)
    return strata


def _checked(
    table: np.ndarray | Sequence[Sequence[float]], folds: Sequence[object] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The table without its all-NaN rows, and the fold label of each remaining row."""
    data = np.asarray(table, dtype=np.float64)
    if data.ndim != 2:
        raise OptionError(f"the table must be cases x seeds (2-D), got shape {data.shape}")
    if np.isinf(data).any():
        raise DataValueError("the differences must be finite (NaN marks a missing value)")
    labels = np.zeros(data.shape[0], dtype=np.int64)
    if folds is not None:
        if len(folds) != data.shape[0]:
            raise OptionError(f"folds has {len(folds)} labels for a table of {data.shape[0]} rows")
        _, labels = np.unique(np.asarray([str(f) for f in folds]), return_inverse=True)
    present = ~np.all(np.isnan(data), axis=1)
    if present.sum() < MIN_CASES:
        raise DataValueError(
            f"an interval needs at least {MIN_CASES} cases with a value, got {int(present.sum())}"
        )
    return data[present], labels[present]


def _fill_additive(block: np.ndarray) -> np.ndarray:
    """``block`` with each NaN replaced by the additive fit ``row + column - grand`` of the
    completed table, iterated to its fixed point (Yates 1933): the filled cells leave the
    two-way residuals of the observed ones unchanged."""
    holes = np.isnan(block)
    if not holes.any():
        return block
    filled = np.where(holes, np.nanmean(block), block)
    for _ in range(_IMPUTE_ITERATIONS):
        fit = filled.mean(axis=1)[:, None] + filled.mean(axis=0)[None, :] - filled.mean()
        change = float(np.abs(fit[holes] - filled[holes]).max())
        filled[holes] = fit[holes]
        if change < _IMPUTE_TOLERANCE:
            break
    return filled
