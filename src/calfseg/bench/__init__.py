"""Benchmark layer: a grid of (model x loss x seed) training runs, their results table,
case-level verdicts against bce, and the report (verdicts.csv, summary.md, figures,
report.html).

    grid      BenchmarkConfig, BENCHMARK_PRESETS, RunSpec, runs(): what to train
    runner    run_benchmark(): train the pending runs, record failures, then report
    collect   collect_results(): finished run folders -> results.csv, per_image.csv
    interval  paired_interval(): the interval of a cases x seeds table of differences
    stats     case-level verdicts against bce (that interval, margin), Holm, branch usage
    figures   matplotlib (Agg) figures
    document  sections -> Markdown and one self-contained HTML file
    report    build_benchmark_report(): everything above, from the run folders alone

See docs/benchmark.md.
"""

from calfseg.bench.collect import ResultRow, ResultsTable, RunInfo, collect_results
from calfseg.bench.grid import (
    BENCHMARK_PRESETS,
    BenchmarkConfig,
    RunSpec,
    check_names,
    pending,
    runs,
)
from calfseg.bench.report import ReportFiles, build_benchmark_report
from calfseg.bench.runner import BenchmarkError, BenchmarkOutcome, run_benchmark
from calfseg.bench.stats import (
    DEFAULT_MARGIN,
    Verdict,
    branch_usage,
    holm,
    paired_interval,
    stratified_verdicts,
    verdicts,
    wilcoxon_pairs,
)

__all__ = [
    "BENCHMARK_PRESETS",
    "DEFAULT_MARGIN",
    "BenchmarkConfig",
    "BenchmarkError",
    "BenchmarkOutcome",
    "ReportFiles",
    "ResultRow",
    "ResultsTable",
    "RunInfo",
    "RunSpec",
    "Verdict",
    "branch_usage",
    "build_benchmark_report",
    "check_names",
    "collect_results",
    "holm",
    "paired_interval",
    "pending",
    "run_benchmark",
    "runs",
    "stratified_verdicts",
    "verdicts",
    "wilcoxon_pairs",
]
