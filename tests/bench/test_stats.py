"""Case-level verdicts against independent references: the bootstrap against scipy and a
written-out resampling, the verdict rule on hand-made intervals, the cases-needed formula
by hand, seed averaging and pairing on a hand-built table, and that slices never count."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from calfseg.bench import branch_usage, collect_results, holm, wilcoxon_pairs
from calfseg.bench.collect import ResultsTable, RunInfo
from calfseg.bench.stats import (
    BOOTSTRAP_SEED,
    N_RESAMPLES,
    bootstrap_ci,
    case_scores,
    cases_by_seeds_bootstrap_ci,
    cases_needed,
    decide,
    paired_case_differences,
    paired_seed_differences,
    verdicts,
)

from .fakes import N_CASES, SEEDS, TRUE_AREA, per_case_tp, write_benchmark, write_run

# -- the bootstrap -------------------------------------------------------------------------


def _two_way_reference(table: np.ndarray) -> tuple[float, float]:
    """The cases x seeds bootstrap written out with loops: case draws (B, n), then seed draws
    (B, k), from default_rng(BOOTSTRAP_SEED); per drawn case the mean of its non-NaN values
    in the drawn seeds, then the mean over the drawn cases that have any."""
    n, k = table.shape
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    rows = rng.integers(0, n, (N_RESAMPLES, n))
    cols = rng.integers(0, k, (N_RESAMPLES, k))
    means = []
    for b in range(N_RESAMPLES):
        per_case = []
        for r in rows[b]:
            values = [table[r, c] for c in cols[b] if not math.isnan(table[r, c])]
            if values:
                per_case.append(sum(values) / len(values))
        if per_case:
            means.append(sum(per_case) / len(per_case))
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def test_the_cases_by_seeds_bootstrap_is_the_written_out_resampling() -> None:
    rng = np.random.default_rng(8)
    table = rng.normal(0.02, 0.05, (15, 3)) + rng.normal(0, 0.04, 3)  # a seed effect
    table[2, 1] = table[7, 0] = table[7, 2] = math.nan  # missing runs
    assert cases_by_seeds_bootstrap_ci(table) == pytest.approx(_two_way_reference(table))


def test_one_seed_or_seeds_that_agree_give_the_case_bootstrap() -> None:
    diffs = np.random.default_rng(9).normal(0.01, 0.05, 24)
    assert cases_by_seeds_bootstrap_ci(diffs[:, None]) == bootstrap_ci(diffs.tolist())
    same = np.repeat(diffs[:, None], 3, axis=1)  # no variation between seeds
    assert cases_by_seeds_bootstrap_ci(same) == pytest.approx(bootstrap_ci(diffs.tolist()))


def test_seeds_that_disagree_make_a_case_level_better_inconclusive() -> None:
    # The default benchmark's shape: per-seed mean differences -0.043, +0.067, +0.081 and
    # small case-to-case spread. Averaged over seeds every case looks better; the seeds
    # do not agree even on the sign.
    rng = np.random.default_rng(10)
    table = np.array([-0.043, 0.067, 0.081]) + rng.normal(0, 0.03, (48, 3))
    case_only = bootstrap_ci(np.nanmean(table, axis=1).tolist())
    both = cases_by_seeds_bootstrap_ci(table)
    assert decide(*case_only, 0.01) == "better"
    assert decide(*both, 0.01) == "inconclusive"
    assert both[0] < -0.02 and both[1] > 0.07  # the spread of the seeds, not of the cases


def test_the_cases_by_seeds_bootstrap_refuses_too_few_cases_and_inf() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        cases_by_seeds_bootstrap_ci(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="finite"):
        cases_by_seeds_bootstrap_ci(np.array([[0.1, math.inf], [0.2, 0.3]]))


def test_bootstrap_ci_is_the_percentile_interval_of_seeded_resampled_means() -> None:
    diffs = np.random.default_rng(3).normal(0.02, 0.05, 20)
    low, high = bootstrap_ci(diffs.tolist())
    # The specification written out: B x n indices from default_rng(seed), row means, the
    # 2.5 % and 97.5 % quantiles.
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = np.array([diffs[rng.integers(0, 20, 20)].mean() for _ in range(N_RESAMPLES)])
    assert N_RESAMPLES >= 2000
    assert (low, high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])), abs=1e-12)


def test_bootstrap_ci_agrees_with_scipy_percentile_bootstrap() -> None:
    diffs = np.random.default_rng(5).normal(-0.01, 0.04, 30)
    low, high = bootstrap_ci(diffs.tolist())
    ref = scipy_stats.bootstrap(
        (diffs,), np.mean, n_resamples=20_000, method="percentile", random_state=11
    ).confidence_interval
    # two Monte Carlo estimates of the same interval: equal up to resampling noise
    assert low == pytest.approx(ref.low, abs=0.002)
    assert high == pytest.approx(ref.high, abs=0.002)
    assert low < diffs.mean() < high


def test_bootstrap_ci_of_equal_values_is_that_value_and_needs_two() -> None:
    assert bootstrap_ci([0.0] * 12) == (0.0, 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_ci([0.3])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([0.1, math.nan])


# -- the verdict rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (0.01, 0.05, "better"),
        (0.001, 0.005, "better"),  # inside the margin, but better comes first in the rule
        (-0.05, -0.01, "worse"),
        (-0.004, -0.001, "worse"),  # worse before equivalent too
        (-0.005, 0.008, "equivalent"),
        (-0.01, 0.01, "equivalent"),  # the margin's ends are inside
        (0.0, 0.004, "equivalent"),  # a lower end of exactly 0 is not better
        (-0.02, 0.03, "inconclusive"),
        (-0.002, 0.011, "inconclusive"),  # straddles 0, leaves the margin
        (None, None, "inconclusive"),  # no interval (fewer than 2 cases)
    ],
)
def test_the_verdict_rule_in_its_order(low, high, verdict) -> None:
    assert decide(low, high, 0.01) == verdict


def test_cases_needed_by_hand() -> None:
    # to show a difference: (1.96 * 0.1 / 0.02)^2 = 96.04 -> 97
    assert cases_needed(0.02, 0.1, 0.01) == 97
    # to show equivalence (|d| < margin): (1.96 * 0.01 / (0.01 - 0.002))^2 = 6.0025 -> 7
    assert cases_needed(-0.002, 0.01, 0.01) == 7
    assert cases_needed(0.0, 0.1, 0.0) is None  # nothing to show: no n suffices
    assert cases_needed(0.05, 0.0, 0.01) == 2  # no spread: the minimum


# -- case scores, seed averaging and pairing -----------------------------------------------


def _table(cells: dict[tuple[str, int], dict[str, float]]) -> ResultsTable:
    """A table of unet runs: ``cells[(loss, seed)] = {case: dice}`` via counts with
    FP = FN = 100 - TP (so Dice = TP / 100)."""
    table = ResultsTable()
    for (loss, seed), cases in cells.items():
        name = f"unet-{loss}-s{seed}"
        table.runs.append(RunInfo(name, "unet", loss, seed, Path(name)))
        table.per_case[name] = [
            {"case_id": c, "tp": round(100 * d), "fp": 100 - round(100 * d),
             "fn": 100 - round(100 * d), "tn": 1000, "dice": d}
            for c, d in cases.items()
        ]  # fmt: skip
    return table


def test_seeds_are_averaged_within_a_case_on_the_seeds_both_losses_ran() -> None:
    table = _table(
        {
            ("bce", 0): {"a": 0.50, "b": 0.60, "c": 0.9},
            ("bce", 1): {"a": 0.70, "b": 0.80},
            ("calf", 0): {"a": 0.60, "b": 0.70},
            ("calf", 1): {"a": 0.90},  # case b has no seed 1 for calf
        }
    )
    diffs = paired_case_differences(case_scores(table), "unet", "calf")
    # a: mean(0.6, 0.9) - mean(0.5, 0.7) = 0.15; b: seed 0 only: 0.7 - 0.6; c: no calf
    assert diffs == pytest.approx({"a": 0.15, "b": 0.10})
    table_cs, cases, seeds = paired_seed_differences(case_scores(table), "unet", "calf")
    # per seed: a: 0.6 - 0.5, 0.9 - 0.7; b: 0.7 - 0.6 and nothing for seed 1
    assert (cases, seeds) == (["a", "b"], [0, 1])
    np.testing.assert_allclose(table_cs, [[0.1, 0.2], [0.1, math.nan]])


def test_a_case_with_empty_truth_and_prediction_scores_one() -> None:
    table = ResultsTable()
    table.runs.append(RunInfo("r", "unet", "bce", 0, Path("r")))
    table.per_case["r"] = [{"case_id": "x", "tp": 0, "fp": 0, "fn": 0, "tn": 50, "dice": 1.0}]
    table.per_case["r"].append({"case_id": "y", "tp": 0, "fp": 3, "fn": 0, "tn": 47})
    assert case_scores(table)[("unet", "bce")] == {"x": {0: 1.0}, "y": {0: 0.0}}


def test_a_case_tested_twice_for_one_seed_is_refused(tmp_path: Path) -> None:
    write_run(tmp_path, "unet", "bce", 0)
    write_run(tmp_path, "unet", "bce", 0, fold=1, n_folds=3)  # same cases again
    with pytest.raises(ValueError, match=r"unet-bce-s0 and unet-bce-s0-f1"):
        case_scores(collect_results(tmp_path, write=False))


# -- verdicts of a whole (fake) benchmark --------------------------------------------------


def _expected_diffs(model: str, loss: str) -> np.ndarray:
    """Per case, the seed-mean Dice difference written out from the fakes' counts."""
    ours = np.mean([per_case_tp(model, loss, s) / TRUE_AREA for s in SEEDS], axis=0)
    theirs = np.mean([per_case_tp(model, "bce", s) / TRUE_AREA for s in SEEDS], axis=0)
    return ours - theirs


def _expected_table(model: str, loss: str) -> np.ndarray:
    """Cases x seeds: the per-seed Dice difference written out from the fakes' counts."""
    columns = [
        (per_case_tp(model, loss, s) - per_case_tp(model, "bce", s)) / TRUE_AREA for s in SEEDS
    ]
    return np.column_stack(columns)


@pytest.mark.parametrize("n_folds", [1, 3])
def test_verdicts_of_a_benchmark_follow_from_case_differences(tmp_path: Path, n_folds) -> None:
    table = collect_results(write_benchmark(tmp_path, n_folds=n_folds), write=False)
    found = {(v.model, v.loss): v for v in verdicts(table, margin=0.01)}
    assert set(found) == {(m, x) for m in ("unet", "fpn") for x in ("calf", "dice")}
    for (model, loss), v in found.items():
        diffs = _expected_diffs(model, loss)
        assert (v.unit, v.metric, v.baseline, v.margin) == ("case", "dice", "bce", 0.01)
        assert v.n_units == N_CASES  # with folds too: every case tested once per seed
        assert v.mean_diff == pytest.approx(diffs.mean())
        table = _expected_table(model, loss)
        assert (v.ci_low, v.ci_high) == pytest.approx(_two_way_reference(table))
        assert v.verdict == decide(v.ci_low, v.ci_high, 0.01)
    kinds = {key: v.verdict for key, v in found.items()}
    assert kinds == {
        ("unet", "calf"): "better",
        ("unet", "dice"): "worse",
        ("fpn", "calf"): "equivalent",
        ("fpn", "dice"): "inconclusive",
    }
    noisy = found[("fpn", "dice")]
    d = _expected_diffs("fpn", "dice")
    target = max(abs(d.mean()), 0.01 - abs(d.mean()))
    assert noisy.cases_needed == math.ceil((1.959963984540054 * d.std(ddof=1) / target) ** 2)
    assert found[("unet", "calf")].cases_needed is None  # decided: nothing needed


def test_a_verdict_never_comes_from_slices(fake_benchmark: Path) -> None:
    table = collect_results(fake_benchmark, write=False)
    before = verdicts(table)
    table.per_image = {name: [] for name in table.per_image}  # no slices at all
    table.rows = []
    assert verdicts(table) == before
    table.per_case = {}  # slices would remain, but no cases: no verdict
    assert verdicts(table) == []


def test_the_margin_changes_only_the_equivalence_branch(fake_benchmark: Path) -> None:
    table = collect_results(fake_benchmark, write=False)
    wide = {(v.model, v.loss): v.verdict for v in verdicts(table, margin=0.2)}
    assert wide[("fpn", "dice")] == "equivalent"  # its CI fits inside +-0.2
    assert wide[("unet", "calf")] == "better"
    with pytest.raises(ValueError, match="margin"):
        verdicts(table, margin=-0.01)


def test_wilcoxon_is_secondary_and_holm_corrected_per_model(fake_benchmark: Path) -> None:
    found = verdicts(collect_results(fake_benchmark, write=False))
    unet = [v for v in found if v.model == "unet"]
    raw = [wilcoxon_pairs(_expected_diffs("unet", v.loss).tolist()) for v in unet]
    assert [v.p_holm for v in unet] == pytest.approx(holm([p for p in raw if p is not None]))


# -- Holm, Wilcoxon, branch usage ----------------------------------------------------------


def test_holm_matches_a_hand_example() -> None:
    # sorted 0.01, 0.02, 0.04, 0.30 -> 4*0.01, 3*0.02, max(0.06, 2*0.04), max(0.08, 0.30)
    adjusted = holm([0.04, 0.01, 0.30, 0.02])
    assert adjusted == pytest.approx([0.08, 0.04, 0.30, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_wilcoxon_finds_a_clearly_better_loss() -> None:
    diffs = np.random.default_rng(0).normal(0.05, 0.01, 40)
    p = wilcoxon_pairs(diffs.tolist())
    assert p is not None and p < 1e-6


def test_wilcoxon_on_identical_predictions_is_p_one() -> None:
    assert wilcoxon_pairs([0.0] * 20) == 1.0
    assert wilcoxon_pairs([]) is None


def test_branch_usage_averages_epochs(fake_benchmark: Path) -> None:
    usage = branch_usage(collect_results(fake_benchmark, write=False))
    assert set(usage) == {f"{m}-calf-s{s}" for m in ("unet", "fpn") for s in SEEDS}
    shares = usage["unet-calf-s0"]
    assert shares["log10"] == pytest.approx((0.5 + 0.75 + 0.75) / 3)
    assert shares["ln"] == pytest.approx((0.5 + 0.25 + 0.25) / 3)
    assert shares["fisher"] == 0.0
