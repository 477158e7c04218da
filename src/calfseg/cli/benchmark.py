"""``calf benchmark``: train a grid of (model x loss x seed [x fold]) runs and report
(docs/benchmark.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from calfseg.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    check_input,
    check_output_folder,
    error,
    positive_int,
    scoped_loss_option,
)
from calfseg.cli.options import add_no_progress, add_preset
from calfseg.options import add_options, given_options

PROG = "calf benchmark"


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "benchmark",
        help="train a grid of models x losses x seeds and write a report",
        description=(
            "Train every (model, loss, seed[, fold]) run of a preset, skipping finished runs, then "
            "collect the results and write summary.md, figures and report.html in OUT. "
            "With no options: the default preset (synthetic data, tiny models). "
            "See docs/benchmark.md."
        ),
    )
    p.set_defaults(run=run)
    p.defer(_add_options)  # declared in BenchmarkConfig and Execution (calfseg.bench)


def _add_options(p: argparse.ArgumentParser) -> None:
    from calfseg.bench.executors.dispatch import Execution
    from calfseg.bench.grid import BenchmarkConfig

    add_preset(
        p,
        ("default", "project", "paper"),
        default="default",
        help="default: the project protocol on synthetic paper-like data (48 cases of "
        "48x48), a tiny U-Net, BCE, CALF, Combo and the A/A control, 4 seeds x 2 folds, "
        "each run the cpu preset's 22 annealed epochs; "
        "project: the project protocol (patient-level split, validation, best checkpoint, "
        "3 seeds, statistics) at the paper's settings (256x256, 20 epochs, Adam 1e-5, "
        "batch 32, the eight paper losses, smp models); paper: the authors' protocol end "
        "to end (their models, contour areas, paper numerics, per-rank CALF statistics, "
        "slice-level split, no validation, last epoch, seed 12345 only)",
    )
    # Declared once, in BenchmarkConfig; not given: the preset's value.
    add_options(p, BenchmarkConfig, unset=True)
    p.add_argument(
        "--seeds",
        type=positive_int,
        metavar="N",
        help="N seeds counting up from the preset's first (default: 0..3; project: "
        "12345..12347; paper: 12345)",
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random flips and quarter turns of the training slices (TrainConfig.augment; "
        "default: the preset's: on for default, off for project and paper)",
    )
    p.add_argument(
        "--no-control",
        action="store_true",
        help="skip the A/A control arm (bce-control: BCE again under other seeds, whose "
        "interval must contain 0; default and project presets train it when bce is in the "
        "grid)",
    )
    p.add_argument(
        "--loss-option",
        type=scoped_loss_option,
        action="append",
        default=[],
        metavar="[LOSS:]KEY=VALUE",
        help="an option of a loss (repeatable): LOSS:KEY=VALUE for that loss, KEY=VALUE for "
        "every loss of the grid that takes KEY; VALUE as JSON when it parses, else text "
        "(e.g. --loss-option calf:area=contour --loss-option numerics=paper)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="retrain the runs in OUT made with other settings, another cache or another "
        "calf-seg version (without it the benchmark refuses and names what changed)",
    )
    add_no_progress(p)
    add_options(p, Execution, unset=True)  # --jobs ... --ray-address


def run(args: argparse.Namespace) -> int:
    import calfseg.run_files as files
    from calfseg.bench import BENCHMARK_PRESETS, check_names, run_benchmark
    from calfseg.bench.folds import check_folds
    from calfseg.bench.grid import (
        RUNS_FOLDER,
        BenchmarkConfig,
        check_loss_options,
        resolve_loss_options,
        runs,
    )

    base = BENCHMARK_PRESETS[args.preset]
    config = base.with_overrides(
        **given_options(BenchmarkConfig, args),
        seeds=None if args.seeds is None else _seeds(base.seeds, args.seeds),
        extra=None if args.augment is None else {**base.extra, "augment": args.augment},
        control=False if args.no_control else None,
    )
    # what these raise reaches calfseg.cli.run_guarded, whose table gives the exit code
    check_names(config.models, config.losses)
    check_folds(config)
    options = resolve_loss_options(config.losses, args.loss_option)
    check_loss_options(options)
    config = config.with_overrides(loss_options=options or None)
    if config.data is not None:
        check_input(config.data, "--data", "folder")  # raises: a missing cache is exit 1
    unwritable = check_output_folder(config.out, "--out")
    if unwritable is not None:
        return error(PROG, unwritable, EXIT_FAILURE)
    if config.data is None and config.preset in ("project", "paper"):
        print(
            f"{PROG}: no --data: the {config.preset} preset runs on synthetic paper-like data "
            f"({config.size}x{config.size}) in {config.cache}",
            file=sys.stderr,
        )
    execution = _execution(args)
    problem = _check_execution(execution, len(runs(config)))
    if problem is not None:
        return error(PROG, *problem)
    outcome = run_benchmark(
        config, progress=not args.no_progress, overwrite=args.overwrite, execution=execution
    )
    print(
        f"{PROG}: {len(outcome.finished)} trained, {len(outcome.skipped)} already done, "
        f"{len(outcome.failed)} failed of {outcome.planned} runs in {outcome.seconds:.0f} s"
        f"{_how(outcome, execution.thread_policy)}; report: {config.out / 'report.html'}"
    )
    if outcome.overwritten:
        print(f"{PROG}: retrained {len(outcome.overwritten)} run(s) made with other settings")
    if outcome.outside:
        shown = ", ".join(outcome.outside[:5]) + (", ..." if len(outcome.outside) > 5 else "")
        print(
            f"{PROG}: {config.out} also holds {len(outcome.outside)} run(s) not in this grid "
            f"({shown}): not in this report; calf report {config.out} reports every run",
            file=sys.stderr,
        )
    if outcome.failed:
        for name, text in outcome.failed.items():
            first = text.splitlines()[0] if text else "unknown error"
            log = config.out / RUNS_FOLDER / name / files.FAILED
            print(f"  {name}: {first} ({log})", file=sys.stderr)
        return error(
            PROG, f"{len(outcome.failed)} run(s) failed (see {files.FAILED})", EXIT_FAILURE
        )
    return EXIT_OK


def _seeds(preset_seeds: tuple[int, ...], n: int) -> tuple[int, ...]:
    """The preset's first seed and its successors: N seeds in all."""
    first = preset_seeds[0] if preset_seeds else 0
    return tuple(first + i for i in range(n))


def _execution(args: argparse.Namespace) -> Any:
    """The Execution of the options given; --jobs not given: auto (Execution's own default,
    1, is the Python API's: one run after another)."""
    from calfseg.bench.executors.dispatch import Execution

    return Execution(**{"jobs": None, **given_options(Execution, args)})


def _check_execution(execution: Any, runs: int) -> tuple[str, int] | None:
    """(message, exit code) when the execution options cannot work here, before anything
    is prepared or trained: ``--gpus`` beyond the machine's, Ray not installed, an
    unreachable ``--ray-address``."""
    from calfseg.bench.executors.dispatch import ExecutionError, plan_execution
    from calfseg.bench.executors.ray_tasks import ExecutorError, check_address
    from calfseg.extras import MissingExtraError, require

    try:
        plan_execution(execution, runs=max(1, runs))
    except ExecutionError as err:
        return str(err), EXIT_USAGE
    if execution.executor != "ray":
        return None
    try:
        require("ray", "calf benchmark --executor ray")
        if execution.ray_address is not None:
            check_address(execution.ray_address)
    except (MissingExtraError, ExecutorError) as err:
        return str(err), EXIT_FAILURE
    return None


def _how(outcome: Any, policy: bool) -> str:
    """`` (2 at once, 1 thread each)``: how the runs trained, when any did."""
    if outcome.plan is None:
        return ""
    threads = outcome.plan.threads
    plural = "" if threads.threads == 1 else "s"
    each = f"{threads.threads} thread{plural} each" if policy else "torch's default threads"
    return f" ({threads.jobs} at once, {each})"
