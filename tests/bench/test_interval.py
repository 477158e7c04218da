"""The verdicts' interval (calfseg.bench.interval) against independent references: scipy's
t-interval where the design reduces to one, the two-way ANOVA mean squares written out with
loops, the generalized pivot drawn by plain Monte Carlo, Yates's fill on an additive table,
and its coverage in a small simulation of designs where the previous bootstrap failed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from calfseg.bench.interval import (
    mean_squares,
    paired_estimate,
    paired_interval,
    studentized_bootstrap,
)


def _t_interval(values: np.ndarray) -> tuple[float, float]:
    low, high = stats.t.interval(0.95, values.size - 1, loc=values.mean(), scale=stats.sem(values))
    return float(low), float(high)


def _hull(*intervals: tuple[float, float]) -> tuple[float, float]:
    return min(low for low, _ in intervals), max(high for _, high in intervals)


def _bootstrap_t(values: np.ndarray, draws: int = 200_000) -> tuple[float, float]:
    """The studentized bootstrap written out: resample, studentize, take the quantiles."""
    rng = np.random.default_rng(99)
    resampled = values[rng.integers(0, values.size, (draws, values.size))]
    sd = resampled.std(axis=1, ddof=1)
    keep = sd > 0
    t = (resampled.mean(axis=1)[keep] - values.mean()) / (sd[keep] / math.sqrt(values.size))
    t_low, t_high = np.quantile(t, [0.025, 0.975])
    se = stats.sem(values)
    return float(values.mean() - t_high * se), float(values.mean() - t_low * se)


def test_one_seed_is_the_hull_of_scipys_paired_t_interval_and_the_bootstrap_t() -> None:
    diffs = np.random.default_rng(1).normal(0.01, 0.05, 20)
    expected = _hull(_t_interval(diffs), studentized_bootstrap(diffs))
    assert paired_interval(diffs[:, None]) == pytest.approx(expected, rel=1e-4)  # pivot draws
    low, high = paired_interval(diffs[:, None])
    t_low, t_high = _t_interval(diffs)
    assert low <= t_low + 1e-6 and high >= t_high - 1e-6  # never narrower than the t
    assert high - low < 1.15 * (t_high - t_low)  # normal cases: the t-interval, nearly
    assert all(type(end) is float for end in (low, high))  # written to verdicts.csv as is
    estimate = paired_estimate(diffs[:, None])
    assert not estimate.sees_runs and estimate.n_seeds == 1


def test_the_bootstrap_t_is_the_written_out_one_and_widens_towards_a_skewed_tail() -> None:
    gains = np.random.default_rng(4).exponential(0.05, 10) - 0.05  # skewness 2: a right tail
    found = studentized_bootstrap(gains)
    reference = _bootstrap_t(gains)
    # within the draw noise of a heavy-tailed 97.5 % point
    assert found == pytest.approx(reference, abs=0.1 * stats.sem(gains))
    t_low, t_high = _t_interval(gains)
    assert found[1] - t_high > 2 * abs(found[0] - t_low)  # the right tail gets the width
    assert paired_interval(gains[:, None])[1] == pytest.approx(found[1])


def test_the_bootstrap_t_of_two_cases_or_equal_ones_is_the_mean() -> None:
    assert studentized_bootstrap(np.array([0.1, 0.3])) == pytest.approx((0.2, 0.2))
    assert studentized_bootstrap(np.full(7, 0.02)) == pytest.approx((0.02, 0.02))


def test_leave_one_out_is_the_t_interval_of_the_case_means_with_the_bootstrap_t() -> None:
    # one case per fold: each case has runs of its own, so the case means are independent
    table = np.random.default_rng(2).normal(0.0, 0.05, (8, 3)) + np.arange(8)[:, None] * 0.01
    means = table.mean(axis=1)
    found = paired_interval(table, folds=list(range(8)))
    expected = _hull(_t_interval(means), studentized_bootstrap(means))
    assert found == pytest.approx(expected, rel=1e-4)  # the pivot's 4,000 stratified draws


def _anova(table: np.ndarray) -> tuple[float, float, float]:
    """MS cases, MS seeds, MS residual of a complete two-way table, written out."""
    n, k = table.shape
    grand = sum(sum(row) for row in table) / (n * k)
    rows = [sum(table[i]) / k for i in range(n)]
    cols = [sum(table[i][j] for i in range(n)) / n for j in range(k)]
    ss_a = k * sum((r - grand) ** 2 for r in rows)
    ss_b = n * sum((c - grand) ** 2 for c in cols)
    ss_e = sum((table[i][j] - rows[i] - cols[j] + grand) ** 2 for i in range(n) for j in range(k))
    return ss_a / (n - 1), ss_b / (k - 1), ss_e / ((n - 1) * (k - 1))


def test_mean_squares_are_the_two_way_anova_and_the_variance_its_textbook_formula() -> None:
    rng = np.random.default_rng(3)
    table = rng.normal(0, 0.05, (15, 4)) + rng.normal(0, 0.08, 4)  # seed effects dominate
    ms_a, ms_b, ms_e = _anova(table)
    found = mean_squares(table)
    assert found.ms_cases == pytest.approx(ms_a / 4)  # the case means' variance: MS_A / k
    assert (found.ms_seeds, found.ms_within) == pytest.approx((ms_b, ms_e))
    assert (found.df_cases, found.df_seeds, found.df_within) == (14, 3, 42)
    # Var(mean) of the crossed random-effects model: (MS_A + MS_B - MS_E) / (n k)
    assert found.variance == pytest.approx((ms_a + ms_b - ms_e) / 60)
    assert found.var_run == pytest.approx((ms_b - ms_e) / 15)


def test_folds_pool_the_seed_mean_squares_within_folds() -> None:
    rng = np.random.default_rng(4)
    folds = np.arange(12) % 3
    table = rng.normal(0, 0.05, (12, 3)) + rng.normal(0, 0.05, (3, 3))[:, folds].T
    found = mean_squares(table, folds=folds.tolist())
    parts = [_anova(table[folds == f]) for f in range(3)]
    assert found.ms_seeds == pytest.approx(np.mean([p[1] for p in parts]))  # equal df
    assert found.ms_within == pytest.approx(np.mean([p[2] for p in parts]))
    assert (found.df_seeds, found.df_within) == (6, 18)
    # Var(d) of the model with a run per (seed, fold): var_case / n + var_run / (k F) +
    # var_within / (n k); S2 / n holds all but (1 - 1/F)^... of the run part: check the sum
    m, n, k = 4, 12, 3
    g = 3 * (m * m / n**2 - (m - m * m / n) / (n * (n - 1))) / k
    assert found.run_weight == pytest.approx(g)
    assert found.variance == pytest.approx(found.ms_cases / n + g * found.var_run)


def test_the_half_width_is_the_generalized_pivot_drawn_by_plain_monte_carlo() -> None:
    rng = np.random.default_rng(5)
    table = rng.normal(0, 0.04, (10, 3)) + rng.normal(0, 0.05, 3)
    squares = mean_squares(table)
    estimate = paired_estimate(table)
    # the pivot written out: V* = S2 (n-1)/U1 / n + g max(0, MSB dB/U2 - MSE dE/U3) / m,
    # and |Z| sqrt(V*) whose 95 % quantile is the half-width
    draws = np.random.default_rng(6)
    size = 400_000
    v = squares.ms_cases * 9 / draws.chisquare(9, size) / 10
    run = squares.ms_seeds * 2 / draws.chisquare(2, size) - squares.ms_within * 18 / (
        draws.chisquare(18, size)
    )
    v += squares.run_weight * np.maximum(run, 0) / squares.seeds_per_run
    reference = np.quantile(np.abs(draws.standard_normal(size)) * np.sqrt(v), 0.95)
    assert estimate.half_width == pytest.approx(reference, rel=0.02)
    assert estimate.low == pytest.approx(table.mean() - estimate.half_width)


def test_yates_fill_of_an_additive_table_restores_it() -> None:
    cases, seeds = np.linspace(-0.1, 0.2, 9), np.array([0.03, -0.02, 0.05])
    full = cases[:, None] + seeds[None, :]
    holed = full.copy()
    holed[[1, 4, 7], [0, 2, 1]] = math.nan
    complete, missing = mean_squares(full), mean_squares(holed)
    assert missing.mean == pytest.approx(full.mean())  # the holes cost the mean nothing
    assert missing.ms_within == pytest.approx(0.0, abs=1e-20)
    assert missing.df_within == complete.df_within - 3  # one df per filled cell


def test_a_failed_run_drops_its_seed_within_its_fold_only() -> None:
    rng = np.random.default_rng(7)
    folds = np.arange(12) % 3
    table = rng.normal(0, 0.05, (12, 3))
    table[folds == 1, 2] = math.nan  # seed 2 of fold 1 failed
    found = mean_squares(table, folds=folds.tolist())
    assert found.n_runs == 8 and found.df_seeds == 2 + 1 + 2


def test_equal_differences_give_a_zero_width_interval_at_that_value() -> None:
    assert paired_interval(np.full((6, 3), 0.02)) == pytest.approx((0.02, 0.02))
    assert paired_interval(np.zeros((5, 1))) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("table", "folds", "confidence", "match"),
    [
        (np.zeros((1, 3)), None, 0.95, "at least 2 cases"),
        (np.full((3, 2), math.nan), None, 0.95, "at least 2 cases"),
        (np.array([[0.1, math.inf], [0.2, 0.3]]), None, 0.95, "finite"),
        (np.zeros(4), None, 0.95, "2-D"),
        (np.zeros((4, 2)), [1, 2], 0.95, "folds has 2 labels"),
        (np.zeros((4, 2)), None, 1.0, "confidence"),
    ],
)
def test_bad_tables_are_refused(table, folds, confidence, match) -> None:
    with pytest.raises(ValueError, match=match):
        paired_interval(table, folds=folds, confidence=confidence)


def _coverage(
    n: int, k: int, folds: int, sds: tuple[float, float, float], reps: int, skewed: bool = False
) -> float:
    """Share of simulated benchmarks D = a[c] + r[s, fold(c)] + e (mean 0) whose interval
    holds 0; ``skewed``: the case gains a[c] are a centred exponential (skewness 2)."""
    rng = np.random.default_rng([n, k, folds])
    fold = np.arange(n) % folds
    hits = 0
    for _ in range(reps):
        gains = rng.exponential(1.0, n) - 1.0 if skewed else rng.normal(0.0, 1.0, n)
        table = (
            sds[0] * gains[:, None]
            + rng.normal(0, sds[1], (k, folds))[:, fold].T
            + rng.normal(0, sds[2], (n, k))
        )
        low, high = paired_interval(table, folds=fold.tolist())
        hits += low <= 0 <= high
    return hits / reps


@pytest.mark.parametrize(
    ("n", "k", "folds", "sds"),
    [
        (48, 3, 3, (0.05, 0.06, 0.05)),  # the default benchmark's shape: the old 78 %
        (48, 2, 1, (0.02, 0.05, 0.02)),  # two seeds, runs dominate: the old 67 %
        (6, 3, 3, (0.08, 0.05, 0.05)),  # the BraTS subset's shape: the old 86 %
    ],
)
@pytest.mark.slow
def test_coverage_is_near_nominal_where_the_previous_bootstrap_was_not(n, k, folds, sds) -> None:
    # 400 simulated benchmarks: a true 95 % lands in [92.5 %, 97.3 %] with probability 0.98
    assert _coverage(n, k, folds, sds, reps=400) >= 0.92


@pytest.mark.slow
def test_coverage_holds_with_ten_strongly_skewed_cases() -> None:
    # the random design where the generalized pivot alone covered 87-90 %; 1,000 benchmarks:
    # a true 94 % lands above 92 % with probability 0.995
    assert _coverage(10, 10, 5, (0.030, 0.005, 0.012), reps=1000, skewed=True) >= 0.92
