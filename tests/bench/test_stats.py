"""Case-level verdicts against independent references: the verdict rule on hand-made
intervals, what would decide a row by hand, seed averaging and pairing (the A/A control's
included) on a hand-built table, and that slices never count. The interval itself:
tests/bench/test_interval.py."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from calfseg.bench import branch_usage, collect_results, holm, wilcoxon_pairs
from calfseg.bench.collect import ResultsTable, RunInfo
from calfseg.bench.grid import CONTROL_LOSS, CONTROL_SEED_OFFSET
from calfseg.bench.interval import PairedEstimate
from calfseg.bench.stats import (
    case_scores,
    decide,
    paired_case_differences,
    paired_interval,
    paired_seed_differences,
    verdicts,
    what_decides,
)

from .fakes import N_CASES, SEEDS, TRUE_AREA, per_case_tp, write_benchmark, write_run

# -- the verdict rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (0.01, 0.05, "better"),
        (0.005, 0.011, "better"),  # above 0, leaves the margin
        (0.001, 0.005, "equivalent"),  # inside the margin: equivalent comes first
        (-0.05, -0.01, "worse"),
        (-0.004, -0.001, "equivalent"),  # a difference within the margin does not matter
        (-0.00019, -0.00017, "equivalent"),  # the 2-epoch grid's "worse" of -0.00018
        (-0.005, 0.008, "equivalent"),
        (-0.01, 0.01, "equivalent"),  # the margin's ends are inside
        (0.0, 0.004, "equivalent"),
        (0.0, 0.0, "equivalent"),  # identical losses, even with margin 0 (next test)
        (-0.02, 0.03, "inconclusive"),
        (-0.002, 0.011, "inconclusive"),  # straddles 0, leaves the margin
        (None, None, "inconclusive"),  # no interval (fewer than 2 cases)
    ],
)
def test_the_verdict_rule_in_its_order(low, high, verdict) -> None:
    assert decide(low, high, 0.01) == verdict


def test_margin_zero_leaves_equivalent_to_identical_losses() -> None:
    assert decide(0.0, 0.0, 0.0) == "equivalent"
    assert decide(0.001, 0.002, 0.0) == "better"


def _estimate(mean: float, *, case: float, run: float, within: float, n: int, k: int):
    return PairedEstimate(
        mean=mean, low=0.0, high=0.0, se=0.0, n_cases=n, n_seeds=k, n_runs=k, var_case=case,
        var_run=run, var_within=within, sees_runs=k >= 2,
    )  # fmt: skip


def test_what_decides_by_hand() -> None:
    z = 1.959963984540054
    # to show a difference of 0.02 with case variance 0.01 (SD 0.1), one seed, no runs:
    # n = 0.01 / (0.02 / z)^2 = 96.04 -> 97; one seed cannot say what seeds would do
    one = _estimate(0.02, case=0.01, run=0.0, within=0.0, n=48, k=1)
    assert what_decides(one, 0.01, multiplier=z) == (97, None)
    # equivalence (|d| < margin): target 0.01 - 0.002 = 0.008; cases: (1e-4 + 3e-4 / 3) /
    # ((0.008 / z)^2 - 1e-5 / (3 * 3)) = 2e-4 / (1.66597e-5 - 1.1111e-6) -> 12.86 -> 13;
    # seeds: (1e-5 / 3 + 3e-4 / 48) / ((0.008 / z)^2 - 1e-4 / 48) -> 0.65 -> the minimum 2
    est = _estimate(-0.002, case=1e-4, run=1e-5, within=3e-4, n=48, k=3)
    room = (0.008 / z) ** 2
    cases = math.ceil(2e-4 / (room - 1e-5 / 9))
    seeds = max(2, math.ceil((1e-5 / 3 + 3e-4 / 48) / (room - 1e-4 / 48)))
    assert what_decides(est, 0.01, folds=3, multiplier=z) == (cases, seeds) == (13, 2)
    # a run term alone wider than the target: no number of cases decides it
    runs = _estimate(0.005, case=1e-4, run=1e-3, within=1e-4, n=48, k=3)
    assert what_decides(runs, 0.01, multiplier=z)[0] is None
    assert what_decides(_estimate(0.0, case=0.01, run=0, within=0, n=9, k=2), 0.0) == (None, None)
    # by default the estimate's own multiplier: a heavier tail than z asks for more
    heavy = replace(est, low=-0.002 - 0.03, high=-0.002 + 0.03, se=0.01)  # multiplier 3
    assert what_decides(heavy, 0.01, folds=3) == what_decides(est, 0.01, 3, multiplier=3.0)
    assert what_decides(heavy, 0.01, folds=3)[0] > 13


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


def test_the_control_arm_pairs_each_seed_with_the_bce_seed_it_was_shifted_from() -> None:
    control = [CONTROL_SEED_OFFSET, CONTROL_SEED_OFFSET + 1]
    table = _table(
        {
            ("bce", 0): {"a": 0.50, "b": 0.60},
            ("bce", 1): {"a": 0.70, "b": 0.80},
            (CONTROL_LOSS, control[0]): {"a": 0.55, "b": 0.60},
            (CONTROL_LOSS, control[1]): {"a": 0.70, "b": 0.70},
        }
    )
    found, cases, seeds = paired_seed_differences(case_scores(table), "unet", CONTROL_LOSS)
    assert (cases, seeds) == (["a", "b"], [0, 1])  # columns: the bce seeds
    np.testing.assert_allclose(found, [[0.05, 0.0], [0.0, -0.1]], atol=1e-12)


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
        folds = None if n_folds == 1 else [c % n_folds for c in range(N_CASES)]
        assert (v.ci_low, v.ci_high) == pytest.approx(paired_interval(table, folds=folds))
        assert v.n_seeds == len(SEEDS)
        assert v.verdict == decide(v.ci_low, v.ci_high, 0.01)
    kinds = {key: v.verdict for key, v in found.items()}
    assert kinds == {
        ("unet", "calf"): "better",
        ("unet", "dice"): "worse",
        ("fpn", "calf"): "equivalent",
        ("fpn", "dice"): "inconclusive",
    }
    noisy = found[("fpn", "dice")]
    assert noisy.estimate is not None
    assert (noisy.cases_needed, noisy.seeds_needed) == what_decides(noisy.estimate, 0.01, n_folds)
    assert found[("unet", "calf")].cases_needed is None  # decided: nothing needed


def test_a_verdict_never_comes_from_slices(fake_benchmark: Path) -> None:
    table = collect_results(fake_benchmark, write=False)
    before = verdicts(table)
    table.per_image = {name: [] for name in table.per_image}  # no slices at all
    table.rows = []
    assert verdicts(table) == before
    table.per_case = {}  # slices would remain, but no cases: no verdict
    assert verdicts(table) == []


def test_a_wider_margin_calls_what_fits_inside_it_equivalent(fake_benchmark: Path) -> None:
    table = collect_results(fake_benchmark, write=False)
    narrow = {(v.model, v.loss): v for v in verdicts(table, margin=0.01)}
    wide = {(v.model, v.loss): v.verdict for v in verdicts(table, margin=0.2)}
    assert wide[("fpn", "dice")] == "equivalent"  # its interval fits inside +-0.2
    # +0.08 is a gain at margin 0.01, and does not matter at 0.2: equivalent comes first
    assert narrow[("unet", "calf")].verdict == "better"
    assert narrow[("unet", "calf")].ci_high < 0.2
    assert wide[("unet", "calf")] == "equivalent"
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
