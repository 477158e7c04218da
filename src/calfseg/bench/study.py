"""``calf study rule``: does CALF's rule pick the right loss? Every branch, on data from every
row of the decision table.

For each dataset (by default one synthetic preset per row of the rule,
:data:`calfseg.data.sources.synthetic.BRANCH_PRESETS`; or a user's cache):

1. its fingerprint and the rule's pick, as ``calf analyze CACHE`` computes them (the cache's
   train split);
2. a benchmark (:func:`calfseg.bench.run_benchmark`, in ``OUT/<dataset>``) of every fixed
   branch (``branch-fisher`` ... ``branch-bce_dice``), ``calf`` (re-picked every batch, the
   paper), ``calf-dataset`` (the pick fixed from the training split) and ``combo``, under one
   protocol: the benchmark's, with its resumption and its refusal of stale runs;
3. the same case-level statistics as the benchmark's verdicts
   (:mod:`calfseg.bench.stats`), with the rule's pick (``branch-<pick>``) as the baseline:
   each loss's mean per-case Dice with its interval, its paired difference to the pick with
   interval and verdict, and the **regret**: the challenger (the fixed branch other than
   the pick with the largest mean difference to it) minus the pick, with a Bonferroni
   interval and the verdict rule (``worse``: the pick beat every other branch;
   ``equivalent``: the best of them is within the margin; ``better``: a fixed branch beat
   the pick; the regret itself is ``max(0, difference)``); per-batch ``calf`` against
   ``calf-dataset``.

:func:`calfseg.bench.study_report.run_rule_study` runs it. ``OUT/rule.csv`` holds one
row per dataset and loss (:data:`RULE_COLUMNS`) and one per dataset
with loss ``regret``; ``OUT/study.md`` and ``OUT/study.html`` the table, a figure and the
finding. The challenger is chosen on the same cases its difference is measured on (a
winner's curse), so its interval is at :data:`REGRET_CONFIDENCE` (Bonferroni over the five
branches it was chosen from) rather than 95 %.
"""

from __future__ import annotations

import errno
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from calfseg.bench.collect import ResultsTable, collect_results
from calfseg.bench.grid import BENCHMARK_PRESETS, BenchmarkConfig
from calfseg.bench.interval import paired_estimate
from calfseg.bench.stale import grid_names
from calfseg.bench.stats import (
    DEFAULT_MARGIN,
    FAILED_TO_LEARN,
    MIN_UNITS,
    CaseScores,
    Verdict,
    branch_usage,
    case_folds,
    case_scores,
    decide,
    mean_case_dice,
    paired_seed_differences,
    verdicts,
)
from calfseg.data.cache import CacheError
from calfseg.errors import OptionError, unknown_choice
from calfseg.options import margin_value, option, positive_int
from calfseg.rule import BRANCHES

BRANCH_LOSSES = tuple(f"branch-{b}" for b in BRANCHES)
STUDY_LOSSES: tuple[str, ...] = (*BRANCH_LOSSES, "calf", "calf-dataset", "combo")
# One synthetic preset per row of the decision table, in the table's order.
RULE_DATASETS: tuple[str, ...] = (
    "left-skewed", "moderate-left", "mild-left", "paper-like", "moderate-right",
    "platykurtic", "leptokurtic",
)  # fmt: skip
REGRET = "regret"
PICK = "pick"  # the verdict cell of the pick's own row
STUDY_TITLE = "Does CALF's rule pick the right loss?"
RULE_CSV = "rule.csv"
STUDY_MD = "study.md"
STUDY_HTML = "study.html"
FIGURE_PNG = "figures/rule.png"
RULE_COLUMNS: tuple[str, ...] = (
    "dataset", "skewness", "kurtosis", "rule_branch", "loss", "n_units", "n_seeds",
    "mean_dice", "dice_low", "dice_high", "diff_vs_pick", "ci_low", "ci_high", "verdict",
    "challenger",
)  # fmt: skip
# The study's own sizes on top of the benchmark presets: the default fits 90 minutes on a
# 2-core CPU (docs/results.md, "Does the rule pick the right loss?").
STUDY_PRESETS: dict[str, dict[str, Any]] = {
    "default": {"seeds": (0, 1), "epochs": 14},
    "project": {"models": ("unet",)},
}
STUDY_MODEL = "unet"  # one model: the question is about the loss, not the architecture
NO_PICK = "no-pick-runs"  # every verdict of a dataset whose pick has no finished run
INCOMPLETE = "incomplete"  # the regret's verdict when a fixed branch's runs are missing
# The regret's interval: Bonferroni over the fixed branches other than the pick, since the
# best of them is chosen on the cases it is scored on.
REGRET_CONFIDENCE = 1 - 0.05 / (len(BRANCH_LOSSES) - 1)


@dataclass(frozen=True)
class RuleStudy:
    """What ``calf study rule`` runs: datasets (synthetic preset names or cache folders),
    the benchmark preset it starts from, and the grid's seeds, folds and epochs (None: the
    study preset's)."""

    out: Path = option(
        Path("calf-study-rule"), "results folder (default ./calf-study-rule)", parse=Path,
        metavar="OUT",
    )  # fmt: skip
    datasets: tuple[str, ...] = option(
        RULE_DATASETS,
        "synthetic presets or cache folders of calf prepare (default: one preset per row of "
        f"the rule: {', '.join(RULE_DATASETS)})",
        many=True, metavar="NAME|CACHE",
    )  # fmt: skip
    preset: str = option(
        "default",
        "default: calf benchmark's default protocol (48x48 synthetic cases, a tiny U-Net, 2 "
        "folds) with 2 seeds and 14 annealed epochs, sized for a 2-core CPU; project: the "
        "project preset at the paper's sizes (smp U-Net, 256x256), for a GPU",
        choices=("default", "project"),
    )  # fmt: skip
    seeds: tuple[int, ...] | None = None  # --seeds N in the CLI: N seeds from the preset's
    folds: int | None = option(
        None, "K-fold patient-level cross-validation (default: the preset's, 2)",
        parse=positive_int, metavar="K",
    )  # fmt: skip
    epochs: int | None = option(
        None, "epochs per run (default: the preset's)", parse=positive_int, metavar="E"
    )
    margin: float = option(
        DEFAULT_MARGIN, "equivalence margin of the verdicts, per-case Dice (default 0.01)",
        parse=margin_value, metavar="DICE",
    )  # fmt: skip

    def benchmarks(self) -> list[tuple[str, BenchmarkConfig]]:
        """(dataset label, its benchmark's config), in the order of :attr:`datasets`."""
        from calfseg.data.cache import is_cache
        from calfseg.data.sources.synthetic import SYNTHETIC_PRESETS

        if self.preset not in STUDY_PRESETS:
            raise unknown_choice("study preset", self.preset, tuple(STUDY_PRESETS))
        if not self.datasets:
            raise OptionError("a study needs at least one dataset")
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise OptionError(f"margin must be a finite number >= 0, got {self.margin}")
        base = BENCHMARK_PRESETS[self.preset].with_overrides(
            **STUDY_PRESETS[self.preset], losses=STUDY_LOSSES, control=False
        )
        base = base.with_overrides(seeds=self.seeds, folds=self.folds, epochs=self.epochs)
        configs: list[tuple[str, BenchmarkConfig]] = []
        for name in self.datasets:
            path = Path(name)
            written_as_path = (
                os.sep in name or name.startswith(".") or name not in SYNTHETIC_PRESETS
            )
            if written_as_path and path.exists():
                if not is_cache(path):
                    raise CacheError(f"{name} is not a slice cache of calf prepare (no meta.json)")
                label, config = path.resolve().name, replace(base, data=path)
            elif name in SYNTHETIC_PRESETS:
                label, config = name, replace(base, data=None, synthetic=name)
            elif os.sep in name:
                raise FileNotFoundError(errno.ENOENT, "no such cache folder (--datasets)", name)
            else:
                raise unknown_choice(
                    "dataset (a synthetic preset or a cache folder)", name,
                    tuple(SYNTHETIC_PRESETS),
                )  # fmt: skip
            if not label:
                raise OptionError(f"dataset {name}: a cache folder needs a name")
            if label in (seen := [lab for lab, _ in configs]):
                raise OptionError(f"two datasets are named {label!r}: {[*seen, label]}")
            configs.append((label, replace(config, out=self.out / label)))
        return configs


@dataclass(frozen=True)
class RuleRow:
    """One row of rule.csv (:data:`RULE_COLUMNS`)."""

    dataset: str
    skewness: float
    kurtosis: float
    rule_branch: str
    loss: str
    n_units: int
    n_seeds: int
    mean_dice: float | None
    dice_low: float | None
    dice_high: float | None
    diff_vs_pick: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str
    challenger: str = ""  # the regret row's: the strongest fixed branch other than the pick

    def cells(self) -> list[str]:
        values = [getattr(self, name) for name in RULE_COLUMNS]
        return ["" if v is None else repr(v) if isinstance(v, float) else str(v) for v in values]


@dataclass(frozen=True)
class DatasetResult:
    """The study's answer for one dataset: its rows, per-batch CALF against calf-dataset,
    the branch each calf-dataset run fitted on its training rows, and the runs of the grid
    that failed or are missing (their losses' numbers rest on fewer runs)."""

    label: str
    rows: tuple[RuleRow, ...]
    calf_vs_dataset: Verdict | None = None
    dataset_picks: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    learned_nothing: tuple[str, ...] = ()  # runs whose mean per-case test Dice is < 0.1

    @property
    def regret(self) -> RuleRow:
        return next(r for r in self.rows if r.loss == REGRET)


def dataset_result(label: str, config: BenchmarkConfig, margin: float) -> DatasetResult:
    """The rows of one dataset from its finished runs (see the module docstring). The
    rule's pick is ``calf analyze CACHE``'s: over every row of the cache."""
    from calfseg.analysis import analyze

    planned = grid_names(config)
    table = collect_results(config.out, only=planned, write=False)
    finished = {r.name for r in table.runs}
    failed = tuple(sorted(n for n in table.failed if n in planned))
    missing = tuple(sorted(set(planned) - finished - set(failed)))
    fingerprint = analyze(config.cache)
    pick, s, k = fingerprint.branch, fingerprint.skewness, fingerprint.kurtosis
    baseline = f"branch-{pick}"
    scores = case_scores(table)  # read once: every loss's level and the regret use it
    has_pick = _mean_dice(table, scores, baseline) is not None
    against = {v.loss: v for v in verdicts(table, margin, baseline=baseline)} if has_pick else {}
    rows = []
    for loss in config.losses:
        level = _mean_dice(table, scores, loss)
        if level is None:
            continue
        mean, low, high, n, seeds = level
        v = against.get(loss)
        if loss == baseline:
            diff, low_d, high_d, verdict = 0.0, None, None, PICK
        elif v is None:
            diff, low_d, high_d, verdict = None, None, None, NO_PICK
        else:
            diff, low_d, high_d, verdict = v.mean_diff, v.ci_low, v.ci_high, v.verdict
        rows.append(
            RuleRow(
                label, s, k, pick, loss, n, seeds, mean, low, high, diff, low_d, high_d, verdict
            )
        )
    short = {loss_of_run(name) for name in failed + missing}
    rows.append(_regret(table, scores, label, (s, k, pick), rows, against, margin, short))
    calf = None
    if has_pick and {"calf", "calf-dataset"} <= {r.loss for r in rows}:
        calf = next(
            (v for v in verdicts(table, margin, baseline="calf-dataset") if v.loss == "calf"),
            None,
        )
    usage = branch_usage(table)
    fitted = tuple(
        max(usage[r.name], key=usage[r.name].__getitem__)
        for r in table.runs
        if r.loss == "calf-dataset" and usage.get(r.name)
    )
    nothing = tuple(
        name for name, dice in sorted(mean_case_dice(table).items()) if dice < FAILED_TO_LEARN
    )
    return DatasetResult(label, tuple(rows), calf, fitted, failed, missing, nothing)


def loss_of_run(name: str) -> str:
    """The loss of a study run's name, ``unet-branch-fisher-s1-f2`` -> ``branch-fisher``."""
    return name.removeprefix(f"{STUDY_MODEL}-").rsplit("-s", 1)[0]


def _mean_dice(
    table: ResultsTable, scores: CaseScores, loss: str
) -> tuple[float, float | None, float | None, int, int] | None:
    """(mean per-case Dice, its interval's ends, cases, seeds) of ``loss`` over its runs:
    the interval of :func:`calfseg.bench.interval.paired_estimate` on the cases x seeds
    table of Dice (not of differences)."""
    import numpy as np

    models = table.models
    model = STUDY_MODEL if STUDY_MODEL in models else (models[0] if models else "")
    by_case = scores.get((model, loss), {})
    if not by_case:
        return None
    cases = sorted(by_case)
    seeds = sorted({s for c in cases for s in by_case[c]})
    grid = np.full((len(cases), len(seeds)), np.nan)
    for i, case in enumerate(cases):
        for seed, dice in by_case[case].items():
            grid[i, seeds.index(seed)] = dice
    mean = float(np.mean(np.nanmean(grid, axis=1)))
    if len(cases) < MIN_UNITS:
        return mean, None, None, len(cases), len(seeds)
    folds = case_folds(table, model, loss)
    estimate = paired_estimate(grid, folds=[folds.get(c) for c in cases])
    return estimate.mean, estimate.low, estimate.high, len(cases), len(seeds)


def _regret(
    table: ResultsTable,
    scores: CaseScores,
    label: str,
    rule: tuple[float, float, str],
    rows: list[RuleRow],
    against: dict[str, Verdict],
    margin: float,
    short: set[str],
) -> RuleRow:
    """The challenger (the fixed branch other than the pick with the largest mean paired
    difference to it) minus the pick, with its interval at :data:`REGRET_CONFIDENCE` and
    the verdict rule; the regret is ``max(0, difference)``. ``incomplete`` when a fixed
    branch lacks runs (``short``: the losses with failed or missing runs); ``no-pick-runs``
    without the pick's runs."""
    import numpy as np

    s, k, pick = rule
    baseline = f"branch-{pick}"
    if baseline not in {r.loss for r in rows}:
        return RuleRow(label, s, k, pick, REGRET, 0, 0, None, None, None, None, None, None,
                       NO_PICK)  # fmt: skip
    gains = {
        loss: v.mean_diff
        for loss, v in against.items()
        if loss in BRANCH_LOSSES and v.mean_diff is not None
    }
    if not gains:
        return RuleRow(label, s, k, pick, REGRET, 0, 0, None, None, None, None, None, None,
                       INCOMPLETE)  # fmt: skip
    challenger = max(gains, key=gains.__getitem__)
    model = STUDY_MODEL if STUDY_MODEL in table.models else table.models[0]
    differences, cases, _ = paired_seed_differences(scores, model, challenger, baseline)
    folds = case_folds(table, model, challenger)
    v = against[challenger]
    low = high = None
    if len(cases) >= MIN_UNITS:
        estimate = paired_estimate(
            differences, confidence=REGRET_CONFIDENCE, folds=[folds.get(c) for c in cases]
        )
        low, high = estimate.low, estimate.high
    diff = float(np.mean(np.nanmean(differences, axis=1))) if cases else v.mean_diff
    incomplete = any(loss in short for loss in BRANCH_LOSSES)
    verdict = INCOMPLETE if incomplete else decide(low, high, margin)
    return RuleRow(label, s, k, pick, REGRET, v.n_units, v.n_seeds, None, None, None, diff,
                   low, high, verdict, challenger)  # fmt: skip
