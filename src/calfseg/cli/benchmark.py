"""``calf benchmark``: train a grid of (model x loss x seed) runs and report (docs/benchmark.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from calfseg.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, error, positive_int

PROG = "calf benchmark"


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "benchmark",
        help="train a grid of models x losses x seeds and write a report",
        description=(
            "Train every (model, loss, seed) run of a preset, skipping finished runs, then "
            "collect the results and write summary.md, figures and report.html in OUT. "
            "With no options: the default preset (synthetic data, tiny models). "
            "See docs/benchmark.md."
        ),
    )
    p.set_defaults(run=run)
    p.add_argument(
        "--preset",
        choices=("default", "paper"),
        default="default",
        help="default: synthetic data, tiny models, a few epochs; paper: the paper's "
        "settings (256x256, 20 epochs, Adam 1e-5, batch 32, the eight paper losses)",
    )
    p.add_argument(
        "--data",
        type=Path,
        metavar="CACHE",
        help="slice cache to train on (default: synthetic paper-like data made in OUT/data)",
    )
    p.add_argument("--models", nargs="+", metavar="NAME", help="models (default: the preset's)")
    p.add_argument("--losses", nargs="+", metavar="NAME", help="losses (default: the preset's)")
    p.add_argument(
        "--seeds",
        type=positive_int,
        metavar="N",
        help="N seeds counting up from the preset's first (default: 0, 1; paper: 12345..12347)",
    )
    p.add_argument("--epochs", type=positive_int, metavar="E", help="epochs per run")
    p.add_argument(
        "--out", type=Path, default=Path("calf-benchmark"), help="results folder (default "
        "./calf-benchmark)"
    )  # fmt: skip
    p.add_argument("--shard", type=_shard, metavar="K/N", help="only every N-th run, from the K-th")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")


def _shard(text: str) -> tuple[int, int]:
    from calfseg.bench.grid import parse_shard

    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    from calfseg.bench import PRESETS, BenchmarkError, check_names, run_benchmark
    from calfseg.extras import MissingExtraError

    base = PRESETS[args.preset]
    config = base.with_overrides(
        out=args.out,
        data=args.data,
        models=None if args.models is None else tuple(args.models),
        losses=None if args.losses is None else tuple(args.losses),
        seeds=None if args.seeds is None else _seeds(base.seeds, args.seeds),
        epochs=args.epochs,
        shard=args.shard,
    )
    try:
        check_names(config.models, config.losses)
    except ValueError as err:
        return error(PROG, str(err), EXIT_USAGE)
    if config.data is not None and not config.data.is_dir():
        return error(PROG, f"no such cache folder: {config.data}", EXIT_USAGE)
    if config.data is None and config.preset == "paper":
        print(
            f"{PROG}: no --data: the paper preset runs on synthetic paper-like data "
            f"({config.size}x{config.size}) in {config.cache}",
            file=sys.stderr,
        )
    try:
        outcome = run_benchmark(config, progress=not args.no_progress)
    except (BenchmarkError, MissingExtraError) as err:
        return error(PROG, str(err), EXIT_FAILURE)
    print(
        f"{PROG}: {len(outcome.finished)} trained, {len(outcome.skipped)} already done, "
        f"{len(outcome.failed)} failed of {outcome.planned} runs in {outcome.seconds:.0f} s; "
        f"report: {config.out / 'report.html'}"
    )
    if outcome.failed:
        for name, text in outcome.failed.items():
            print(f"  {name}: {text.splitlines()[0]}", file=sys.stderr)
        return error(PROG, f"{len(outcome.failed)} run(s) failed (see failed.json)", EXIT_FAILURE)
    return EXIT_OK


def _seeds(preset_seeds: tuple[int, ...], n: int) -> tuple[int, ...]:
    """The preset's first seed and its successors: N seeds in all."""
    first = preset_seeds[0] if preset_seeds else 0
    return tuple(first + i for i in range(n))
