"""``calf study rule``: every fixed branch, CALF, calf-dataset and Combo on data from every
row of the rule; rule.csv and a report of whether the rule's pick is the best loss
(:mod:`calfseg.bench.study`, docs/results.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import calfseg.run_files as files
from calfseg.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    check_output_folder,
    error,
    positive_int,
)
from calfseg.cli.options import add_no_progress
from calfseg.options import add_options, given_options

PROG = "calf study"


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "study",
        help="experiments about the method itself (calf study rule)",
        description="Experiments about CALF itself. See docs/results.md.",
    )
    studies = p.add_subparsers(title="studies", metavar="STUDY", dest="study")
    rule = studies.add_parser(
        "rule",
        help="does the rule pick the right loss? every branch on data from every row",
        description=(
            "For each dataset (default: one synthetic preset per row of the decision table), "
            "the rule's pick as calf analyze computes it, then a benchmark of every fixed "
            "branch (branch-fisher ... branch-bce_dice), calf, calf-dataset and combo under "
            "calf benchmark's protocol, in OUT/<dataset> (finished runs kept, stale ones "
            "refused). Writes OUT/rule.csv, OUT/study.md and OUT/study.html: each loss "
            "against the pick, and the regret (the best fixed branch minus the pick)."
        ),
    )
    rule.set_defaults(run=run, parser=rule)  # usage errors show `calf study rule`'s usage
    rule.defer(_add_options)

    def no_study(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return EXIT_USAGE

    p.set_defaults(run=no_study)


def _add_options(p: argparse.ArgumentParser) -> None:
    from calfseg.bench.executors.dispatch import Execution
    from calfseg.bench.study import RuleStudy

    add_options(p, RuleStudy, unset=True)  # declared once, in RuleStudy
    p.add_argument("--seeds", type=positive_int, metavar="N",
                   help="N seeds counting up from the preset's first (default: 2)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="retrain runs made with other settings (without it: refused)")  # fmt: skip
    add_no_progress(p)
    add_options(p, Execution, unset=True)  # --jobs ... --ray-address


def run(args: argparse.Namespace) -> int:
    from calfseg.bench.grid import BENCHMARK_PRESETS
    from calfseg.bench.grid import runs as grid_runs
    from calfseg.bench.study import STUDY_PRESETS, RuleStudy
    from calfseg.bench.study_report import finding, run_rule_study
    from calfseg.cli.benchmark import _check_execution, _execution, _seeds

    given = given_options(RuleStudy, args)
    preset = given.get("preset", "default")
    if args.seeds is not None:
        first = STUDY_PRESETS[preset].get("seeds") or BENCHMARK_PRESETS[preset].seeds
        given["seeds"] = _seeds(tuple(first), args.seeds)
    study = RuleStudy(**given)
    configs = study.benchmarks()  # refuses unknown datasets before anything runs
    unwritable = check_output_folder(study.out, "--out")
    if unwritable is not None:
        return error(PROG, unwritable, EXIT_FAILURE)
    execution = _execution(args)
    runs = sum(len(grid_runs(c)) for _, c in configs)
    problem = _check_execution(execution, runs)
    if problem is not None:
        return error(PROG, *problem)
    print(f"{PROG} rule: {len(configs)} datasets, {runs} runs in {study.out}", file=sys.stderr)
    results = run_rule_study(
        study, progress=not args.no_progress, overwrite=args.overwrite, execution=execution
    )
    print(finding(results))
    print(f"{PROG} rule: wrote {study.out / 'rule.csv'}, {study.out / 'study.html'}")
    broken = [f"{d.label}: {name}" for d in results for name in d.failed]
    if broken:
        for line in broken:
            print(f"  {line} failed (see its {files.FAILED})", file=sys.stderr)
        return error(PROG, f"{len(broken)} run(s) failed; rerun to retry them", EXIT_FAILURE)
    return EXIT_OK
