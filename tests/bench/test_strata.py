"""Verdicts by lesion volume: the cases are split by their true lesion volume (TP + FN),
empty cases apart, and each stratum gets the paired analysis of its own cases."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from calfseg.bench.collect import ResultsTable, RunInfo
from calfseg.bench.interval import paired_interval
from calfseg.bench.report import build_benchmark_report
from calfseg.bench.stats import (
    MIN_STRATUM_CASES,
    STRATA,
    TOO_FEW,
    case_strata,
    decide,
    stratified_verdicts,
    verdicts,
)
from calfseg.errors import DataValueError

from .fakes import write_benchmark

SEEDS = (0, 1, 2)


def _table(volumes: list[int], gains: dict[str, np.ndarray]) -> ResultsTable:
    """bce and each loss of ``gains`` (per case, added to bce's TP), three seeds, one
    fold; case ``c`` has a true lesion of ``volumes[c]`` voxels."""
    table = ResultsTable()
    rng = np.random.default_rng(5)
    base = {s: rng.uniform(0.4, 0.8, len(volumes)) for s in SEEDS}
    for loss, gain in {"bce": np.zeros(len(volumes)), **gains}.items():
        for s in SEEDS:
            name = f"unet-{loss}-s{s}"
            table.runs.append(RunInfo(name, "unet", loss, s, Path(name)))
            rows = []
            for c, volume in enumerate(volumes):
                share = float(np.clip(base[s][c] + gain[c] + rng.normal(0, 0.003), 0, 1))
                tp = round(share * volume)
                fp = 0 if volume else int(gain[c] > 0)  # empty truth: a false alarm or none
                rows.append({"case_id": f"c{c:02d}", "tp": tp, "fp": fp, "fn": int(volume) - tp})
            table.per_case[name] = rows
    return table


def test_strata_are_the_tertiles_of_the_true_volumes_with_the_empty_cases_apart() -> None:
    volumes = [0, 0, 5, 50, 7, 900, 30, 200, 40, 3, 600, 80]
    table = _table(volumes, {"calf": np.zeros(len(volumes))})
    strata = case_strata(table)
    filled = np.array([v for v in volumes if v])
    q1, q2 = np.quantile(filled, [1 / 3, 2 / 3])
    # by hand: sorted 3 5 7 30 40 50 80 200 600 900; positions 9/3 = 3 and 18/3 = 6
    assert (q1, q2) == (30.0, 80.0)
    for c, v in enumerate(volumes):
        expected = "empty" if v == 0 else "small" if v <= q1 else "medium" if v <= q2 else "large"
        assert strata[f"c{c:02d}"] == expected
    assert sorted(strata.values()).count("small") == 4


def test_each_stratum_is_the_interval_of_its_own_cases_and_follows_the_rule() -> None:
    n = 36
    volumes = [0] * 8 + [int(v) for v in np.linspace(10, 5000, n - 8)]
    # calf helps small lesions only: +0.2 there, nothing elsewhere
    small = np.quantile(volumes[8:], 1 / 3)
    # 1.0 on an empty case: a false alarm (fp = 1), Dice 1 -> 0
    gain = np.array([1.0 if v == 0 else 0.2 if v <= small else 0.0 for v in volumes])
    table = _table(volumes, {"calf": gain})
    rows = stratified_verdicts(table, margin=0.01)
    assert [v.stratum for v in rows] == list(STRATA)
    strata = case_strata(table)
    overall = verdicts(table, margin=0.01)[0]
    assert overall.stratum == "all" and overall.n_units == n
    for v in rows:
        cases = sorted(c for c, s in strata.items() if s == v.stratum)
        assert v.n_units == len(cases)
        diff = np.array(
            [
                [_dice(table, "calf", s, case) - _dice(table, "bce", s, case) for s in SEEDS]
                for case in cases
            ]
        )
        low, high = paired_interval(diff)
        assert (v.ci_low, v.ci_high) == pytest.approx((low, high))
        assert v.mean_diff == pytest.approx(diff.mean())
        assert v.verdict == decide(low, high, 0.01)
    by = {v.stratum: v.verdict for v in rows}
    assert by["small"] == "better" and by["large"] == "equivalent"
    assert by["empty"] == "worse"  # a false alarm in every empty case: Dice 1 -> 0


def _dice(table: ResultsTable, loss: str, seed: int, case: str) -> float:
    row = next(r for r in table.per_case[f"unet-{loss}-s{seed}"] if r["case_id"] == case)
    total = 2 * row["tp"] + row["fp"] + row["fn"]
    return 1.0 if total == 0 else 2 * row["tp"] / total


def test_a_stratum_with_too_few_cases_says_so_instead_of_a_verdict() -> None:
    volumes = [0, 0, *range(100, 100 + 3 * MIN_STRATUM_CASES)]
    table = _table(volumes, {"calf": np.full(len(volumes), 0.05)})
    rows = {v.stratum: v for v in stratified_verdicts(table)}
    assert rows["empty"].n_units == 2 and rows["empty"].verdict == TOO_FEW
    assert rows["empty"].ci_low is None and rows["empty"].ci_high is None
    assert all(rows[s].n_units == MIN_STRATUM_CASES and rows[s].verdict != TOO_FEW
               for s in ("small", "medium", "large"))  # fmt: skip


def test_runs_that_saw_another_truth_for_a_case_are_refused() -> None:
    table = _table([10, 20, 30], {"calf": np.zeros(3)})
    table.per_case["unet-calf-s1"][1]["fn"] += 1
    with pytest.raises(DataValueError, match=r"case c01 .* different masks"):
        case_strata(table)


def test_verdicts_csv_has_a_stratum_column_and_the_report_a_strata_table(tmp_path: Path) -> None:
    files = build_benchmark_report(write_benchmark(tmp_path))
    with (tmp_path / "verdicts.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    overall = [r for r in rows if r["stratum"] == "all"]
    assert len(overall) == len(files.verdicts) == 4
    for model, loss in {(r["model"], r["loss"]) for r in overall}:
        strata = [r["stratum"] for r in rows if (r["model"], r["loss"]) == (model, loss)]
        assert strata == ["all", *STRATA]
    # the fake's 12 cases all have one lesion volume: every case is "small" (ties go down)
    small = [r for r in rows if r["stratum"] == "small"]
    assert {r["n_units"] for r in small} == {"12"}
    assert {r["verdict"] for r in rows if r["stratum"] in ("empty", "medium", "large")} == {TOO_FEW}
    summary = files.summary.read_text()
    assert "### Verdicts by lesion volume" in summary and TOO_FEW in summary
