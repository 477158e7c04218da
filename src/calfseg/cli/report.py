"""``calf report RESULTS_DIR``: rebuild results.csv, per_case.csv, verdicts.csv, summary.md,
figures and report.html from the run folders of a benchmark (docs/benchmark.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from calfseg.cli.common import EXIT_OK, check_input
from calfseg.cli.errors import InputError
from calfseg.options import margin_value

PROG = "calf report"
DEFAULT_MARGIN_TEXT = "0.01"  # calfseg.bench.stats.DEFAULT_MARGIN, not imported: cheap --help


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "report",
        help="rebuild a benchmark's verdicts, tables, figures and report.html from its runs",
        description="Read RESULTS_DIR/runs/*, write results.csv, per_image.csv, per_case.csv, "
        "verdicts.csv, summary.md, figures/ and report.html in RESULTS_DIR.",
    )
    p.set_defaults(run=run)
    p.add_argument("results", metavar="RESULTS_DIR", type=Path, help="a calf benchmark --out")
    p.add_argument(
        "--margin",
        type=margin_value,
        metavar="DICE",
        help="equivalence margin of the verdicts in per-case Dice (default: the margin of "
        f"RESULTS_DIR/verdicts.csv when there is one, else {DEFAULT_MARGIN_TEXT})",
    )


def run(args: argparse.Namespace) -> int:
    from calfseg.bench.grid import RUNS_FOLDER
    from calfseg.bench.report import build_benchmark_report, recorded_margin
    from calfseg.bench.stats import VERDICTS
    from calfseg.extras import require
    from calfseg.writer_lock import writing

    check_input(args.results, "RESULTS_DIR", "folder")
    if not (args.results / RUNS_FOLDER).is_dir():
        raise InputError(
            f"RESULTS_DIR {args.results}: has no {RUNS_FOLDER}/ folder (not the --out of a "
            "calf benchmark)"
        )
    chosen = args.margin if args.margin is not None else recorded_margin(args.results)
    # Checked first: the statistics need scipy, and a missing package should be named with
    # its pip command rather than surface as an ImportError halfway through. What the report
    # raises (a corrupt run file, named) reaches calfseg.cli.run_guarded and its table.
    require("scipy.stats", "calf report (bootstrap intervals and Wilcoxon tests)")
    with writing(args.results, PROG):  # not beside a benchmark still writing into it
        files = build_benchmark_report(args.results, margin=chosen)
    counts = {v: sum(r.verdict == v for r in files.verdicts) for v in VERDICTS}
    said = ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "none"
    print(
        f"{PROG}: {len(files.table.runs)} finished runs, {len(files.table.failed)} failed; "
        f"verdicts against bce: {said}; wrote {files.verdicts_csv}, {files.summary}, "
        f"{files.html} and {len(files.figures)} figures"
    )
    return EXIT_OK
