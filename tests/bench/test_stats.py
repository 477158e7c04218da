"""Seed CIs, Holm's correction, Wilcoxon pairs and branch usage against hand computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from calfseg.bench import (
    branch_usage,
    collect_results,
    holm,
    mean_ci,
    paired_tests,
    seed_summaries,
    wilcoxon_pairs,
)
from calfseg.bench.stats import paired_differences

from .fakes import N_TEST, SEEDS


def test_mean_ci_is_the_t_interval_by_hand() -> None:
    # values 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.302653
    mean, low, high = mean_ci([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)
    assert mean == pytest.approx(2.0)
    assert (low, high) == pytest.approx((2.0 - half, 2.0 + half))


def test_mean_ci_with_one_value_has_no_interval() -> None:
    mean, low, high = mean_ci([0.7])
    assert mean == 0.7 and math.isnan(low) and math.isnan(high)


def test_seed_summaries_match_the_runs(fake_benchmark: Path) -> None:
    table = collect_results(fake_benchmark, write=False)
    found = {(s.model, s.loss, s.metric, s.reduction, s.group): s for s in seed_summaries(table)}
    s = found[("unet", "calf", "dice", "per_image", "")]
    values = [
        r.value
        for r in table.rows
        if (r.model, r.loss, r.metric, r.reduction, r.group)
        == ("unet", "calf", "dice", "per_image", "")
    ]
    assert s.n == 2
    mean, low, high = mean_ci([v for v in values if v is not None])
    assert (s.mean, s.ci_low, s.ci_high) == pytest.approx((mean, low, high))
    assert found[("unet", "calf", "dice", "per_image", "empty")].mean is None


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


def test_paired_tests_pair_by_row_and_pool_seeds(fake_benchmark: Path) -> None:
    table = collect_results(fake_benchmark, write=False)
    n_defined = N_TEST - 4
    assert len(paired_differences(table, "unet", "calf")) == n_defined * len(SEEDS)
    tests = {(t.model, t.loss): t for t in paired_tests(table)}
    assert set(tests) == {(m, x) for m in ("unet", "fpn") for x in ("calf", "dice")}
    better = tests[("unet", "calf")]
    assert better.n_pairs == n_defined * len(SEEDS)
    assert better.median_difference == pytest.approx(0.08, abs=0.01)
    assert better.p_holm is not None and better.p_holm < 0.001
    assert better.verdict == "better"
    assert tests[("unet", "dice")].verdict == "worse"
    same = tests[("fpn", "calf")]
    assert same.p_value == 1.0 and same.median_difference == 0.0
    assert same.verdict == "no difference"


def test_branch_usage_averages_epochs(fake_benchmark: Path) -> None:
    usage = branch_usage(collect_results(fake_benchmark, write=False))
    assert set(usage) == {f"{m}-calf-s{s}" for m in ("unet", "fpn") for s in SEEDS}
    shares = usage["unet-calf-s0"]
    assert shares["log10"] == pytest.approx((0.5 + 0.75 + 0.75) / 3)
    assert shares["ln"] == pytest.approx((0.5 + 0.25 + 0.25) / 3)
    assert shares["fisher"] == 0.0
