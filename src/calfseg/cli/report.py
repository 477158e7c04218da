"""``calf report RESULTS_DIR``: rebuild results.csv, summary.md, figures and report.html from
the run folders of a benchmark (docs/benchmark.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from calfseg.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, error

PROG = "calf report"


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "report",
        help="rebuild a benchmark's tables, figures and report.html from its run folders",
        description="Read RESULTS_DIR/runs/*, write results.csv, per_image.csv, summary.md, "
        "figures/ and report.html in RESULTS_DIR.",
    )
    p.set_defaults(run=run)
    p.add_argument("results", metavar="RESULTS_DIR", type=Path, help="a calf benchmark --out")


def run(args: argparse.Namespace) -> int:
    from calfseg.bench.grid import RUNS_FOLDER
    from calfseg.bench.report import build_report
    from calfseg.extras import MissingExtraError

    if not (args.results / RUNS_FOLDER).is_dir():
        return error(PROG, f"{args.results} has no {RUNS_FOLDER}/ folder", EXIT_USAGE)
    try:
        files = build_report(args.results)
    except (MissingExtraError, OSError, ValueError) as err:
        return error(PROG, str(err), EXIT_FAILURE)
    print(
        f"{PROG}: {len(files.table.runs)} finished runs, {len(files.table.failed)} failed; "
        f"wrote {files.summary}, {files.html} and {len(files.figures)} figures"
    )
    return EXIT_OK
