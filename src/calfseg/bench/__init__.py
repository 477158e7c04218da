"""Benchmark layer: a grid of (model x loss x seed) training runs, their results table,
seed statistics and paired tests, and the report (summary.md, figures, report.html).

    grid      BenchmarkConfig, PRESETS, RunSpec, runs(): what to train
    runner    run_benchmark(): train the pending runs, record failures, then report
    collect   collect_results(): finished run folders -> results.csv, per_image.csv
    stats     mean and 95 % t-CI over seeds, Wilcoxon against bce with Holm, branch usage
    figures   matplotlib (Agg) figures
    document  sections -> Markdown and one self-contained HTML file
    report    build_report(): everything above, from the run folders alone

See docs/benchmark.md.
"""

from calfseg.bench.collect import ResultRow, ResultsTable, RunInfo, collect_results
from calfseg.bench.grid import PRESETS, BenchmarkConfig, RunSpec, check_names, pending, runs
from calfseg.bench.report import ReportFiles, build_report
from calfseg.bench.runner import BenchmarkError, BenchmarkOutcome, run_benchmark
from calfseg.bench.stats import (
    PairedTest,
    SeedSummary,
    branch_usage,
    holm,
    mean_ci,
    paired_tests,
    seed_summaries,
    wilcoxon_pairs,
)

__all__ = [
    "PRESETS",
    "BenchmarkConfig",
    "BenchmarkError",
    "BenchmarkOutcome",
    "PairedTest",
    "ReportFiles",
    "ResultRow",
    "ResultsTable",
    "RunInfo",
    "RunSpec",
    "SeedSummary",
    "branch_usage",
    "build_report",
    "check_names",
    "collect_results",
    "holm",
    "mean_ci",
    "paired_tests",
    "pending",
    "run_benchmark",
    "runs",
    "seed_summaries",
    "wilcoxon_pairs",
]
