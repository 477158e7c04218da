"""``calf prepare SRC --out CACHE``: preprocess a dataset into a slice cache (docs/prepare.md)."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calfseg.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    check_input,
    check_output_folder,
    error,
    positive_int,
    warn,
)
from calfseg.cli.errors import fail
from calfseg.cli.options import add_no_progress, add_shard
from calfseg.errors import check_choice
from calfseg.options import add_options, flag, given_options

if TYPE_CHECKING:
    from calfseg.data.preparation.pipeline import PrepareReport, SkippedCase

PROG = "calf prepare"
# Options that --merge takes from the shards instead (dest names).
# (and every field of PreprocessOptions and SplitOptions, :func:`_shard_options`)
_MADE_BY_SHARDS = (
    "layout", "manifest", "label_source", "synthetic", "cases", "slices", "shard", "on_error",
)  # fmt: skip
_PARSER_DEFAULTS: dict[str, Any] = {}  # filled by add_parser


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "prepare",
        help="preprocess a dataset into a slice cache (images.npy, masks.npy, index.csv)",
        description=(
            "Read every case of a dataset folder, cut its volumes into axial slices, "
            "normalise and resize them and write one cache folder that training reads. "
            "Resumable and idempotent: finished cases are kept, and a rerun with the same "
            "options on unchanged files does nothing. See docs/prepare.md."
        ),
    )
    p.set_defaults(run=run)
    p.defer(_add_arguments)  # the options objects import torch: only when it is used


def _add_arguments(p: argparse.ArgumentParser) -> None:
    from calfseg.data.preprocess import PreprocessOptions
    from calfseg.data.splits.options import SplitOptions

    src = p.add_argument_group("source and target")
    src.add_argument(
        "src",
        metavar="SRC",
        type=Path,
        nargs="*",
        help="dataset folder; several are pooled into one cache, each with its own layout "
        "(docs/sources.md)",
    )
    src.add_argument("--out", metavar="CACHE", type=Path, help="cache folder to write")
    src.add_argument(
        "--layout",
        default="auto",
        metavar="NAME",
        help="dataset layout: auto (detect, default), brats2015, brats2021, brats2023, "
        "ucsf-pdgm, upenn-gbm, lgg-kaggle, lgg-1p19q, nnunet, folder; several SRC: auto or one "
        "per SRC, comma-separated",
    )
    src.add_argument("--manifest", type=Path, metavar="CSV", help="manifest of --layout folder")
    src.add_argument(
        "--label-source",
        choices=("automated", "manual"),
        help="UPENN-GBM: which segmentations to use (the reader's default if not given)",
    )
    src.add_argument(
        "--synthetic",
        metavar="PRESET",
        help="write generated cases of a calfseg.data.sources.synthetic preset instead of SRC",
    )
    src.add_argument("--cases", type=positive_int, metavar="N", help="--synthetic: number of cases")
    src.add_argument(
        "--slices", type=positive_int, metavar="N", help="--synthetic: axial slices per case"
    )
    src.add_argument(
        "--merge",
        metavar="CACHE",
        type=Path,
        help="assemble CACHE from the parts of finished --shard runs",
    )
    # Declared once, in PreprocessOptions and SplitOptions; not given: their default.
    add_options(p, PreprocessOptions, unset=True)
    add_options(p, SplitOptions, unset=True)
    run_ = p.add_argument_group("running")
    run_.add_argument(
        "--workers",
        type=positive_int,
        default=min(4, os.cpu_count() or 1),
        metavar="N",
        help="cases prepared in parallel (default min(4, CPUs))",
    )
    add_shard(run_, help="prepare only the K-th of N disjoint shares of the cases (then --merge)")
    run_.add_argument(
        "--on-error",
        choices=("stop", "skip"),
        default="stop",
        help="stop at the first unreadable case (default) or skip it and list it at the "
        "end; either way the exit code is 1",
    )
    run_.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a cache in --out that was made from another source or with other "
        "options or splits (without it that is an error; an identical rerun needs none)",
    )
    add_no_progress(run_)
    # --merge compares against these: taken from the parser, never copied by hand.
    _PARSER_DEFAULTS.update({dest: p.get_default(dest) for dest in _MADE_BY_SHARDS})


def _shard_options() -> list[tuple[type, str]]:
    """The generated options that --merge takes from the shards: (options class, field)."""
    from calfseg.data.preprocess import PreprocessOptions
    from calfseg.data.splits.options import SplitOptions

    return [(cls, f.name) for cls in (PreprocessOptions, SplitOptions) for f in fields(cls)]


def run(args: argparse.Namespace) -> int:
    # Imported here so that `calf --help` does not pay for torch.
    from calfseg.data.preparation.lesions import NoLesionError
    from calfseg.data.preparation.pipeline import CaseFailedError

    if args.merge is not None:
        given = _options_given_with_merge(args)
        if given:
            return error(
                PROG,
                f"--merge takes the source and options from the shards; drop {', '.join(given)}",
                EXIT_USAGE,
            )
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            return _run(args)
    except CaseFailedError as err:  # the rest reaches run_guarded's table of exit codes
        return fail(PROG, err, "--on-error skip leaves such cases out and lists them at the end")
    except NoLesionError as err:  # the cache is written: say what it holds, then why not
        _finish(err.report)
        return fail(PROG, err)
    finally:  # prepare's warnings (a replaced cache, a train split without a lesion)
        for warning in caught:
            if warning.category.__name__ != "LeakageWarning":  # said before the run
                warn(PROG, str(warning.message))


def _run(args: argparse.Namespace) -> int:
    from calfseg.data import prepare
    from calfseg.data.preparation.pipeline import merge_cache
    from calfseg.data.preprocess import PreprocessOptions
    from calfseg.data.splits.options import SplitOptions

    if args.merge is not None:
        report = merge_cache(args.merge)
        return _finish(report)
    if args.out is None:
        return error(PROG, "the cache folder is required: --out CACHE", EXIT_USAGE)
    unwritable = check_output_folder(args.out, "--out")
    if unwritable is not None:
        return error(PROG, unwritable, EXIT_FAILURE)
    problem = _source_problem(args)
    if problem is not None:
        return error(PROG, problem, EXIT_USAGE)
    if getattr(args, "mode", None) == "slice":  # SplitOptions.mode is --split
        warn(
            PROG,
            "--split slice puts slices of one patient in train, val and test (the paper's "
            "protocol); test scores are inflated",
        )
    report = prepare(
        args.src or None,
        args.out,
        synthetic=args.synthetic,
        cases=args.cases,
        slices=args.slices,
        layout=args.layout,
        manifest=args.manifest,
        label_source=args.label_source,
        workers=args.workers,
        shard=args.shard,
        on_error=args.on_error,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        log=lambda line: print(f"{PROG}: {line}", file=sys.stderr),
        # the preprocessing and split options given; prepare() routes and checks them
        **{**given_options(PreprocessOptions, args), **given_options(SplitOptions, args)},
    )  # its warnings (a replaced cache, a train split without a lesion): calf prepare: warning
    return _finish(report)


def _source_problem(args: argparse.Namespace) -> str | None:
    """A usage error in how the source is given, phrased with the options' names."""
    from calfseg.data.sources.synthetic import SYNTHETIC_PRESETS

    if bool(args.src) == (args.synthetic is not None):
        return "give either SRC (a dataset folder) or --synthetic PRESET"
    for src in args.src:
        check_input(src, "SRC", "folder")  # raises: a missing input is exit 1, not usage
    for name in ("cases", "slices"):
        if getattr(args, name) is not None and args.synthetic is None:
            return f"--{name} applies to --synthetic"
    if args.synthetic is not None:
        check_choice("--synthetic preset", args.synthetic, sorted(SYNTHETIC_PRESETS), valid="known")
    return None


def _options_given_with_merge(args: argparse.Namespace) -> list[str]:
    given = []
    if args.src or args.out is not None:
        given.append("SRC/--out")
    for dest in _MADE_BY_SHARDS:
        if getattr(args, dest) != _PARSER_DEFAULTS[dest]:
            given.append("--" + dest.replace("_", "-"))
    given += [flag(cls, name) for cls, name in _shard_options() if hasattr(args, name)]
    return given


# -- text ---------------------------------------------------------------------------------


def _finish(report: PrepareReport) -> int:
    print(_describe(report))
    if report.skipped:
        _print_skipped(report.skipped)
        return error(PROG, f"{len(report.skipped)} case(s) skipped", EXIT_FAILURE)
    return EXIT_OK


def _describe(report: PrepareReport) -> str:
    counts = f"{report.processed} read, {report.reused} reused, {len(report.skipped)} skipped"
    if report.status == "shard-done":
        assert report.shard is not None
        k, n = report.shard
        return (
            f"{PROG}: shard {k}/{n} of {report.cache} done: {report.cases} cases ({counts}) "
            f"in {report.seconds:.1f} s\nwhen all {n} shards are done: "
            f"calf prepare --merge {report.cache}"
        )
    meta = report.meta or {}
    if report.status == "up-to-date":
        head = (
            f"{PROG}: {report.cache} is up to date (same options, unchanged source); nothing to do"
        )
    else:
        what = "re-split" if report.status == "reindexed" else "wrote"
        per_case = report.seconds / report.processed if report.processed else 0.0
        head = (
            f"{PROG}: {what} {report.cache}: {meta.get('n_slices')} slices of "
            f"{meta.get('n_cases')} cases ({counts}) in {report.seconds:.1f} s"
            + (f", {per_case:.2f} s per case read" if report.processed else "")
        )
    return "\n".join([head, *_cache_lines(meta), *_fingerprint_lines(report.cache)])


def _cache_lines(meta: dict[str, Any]) -> list[str]:
    if not meta:
        return []
    size = "x".join(str(v) for v in meta["size"])
    channels = ",".join(meta["channels"])
    lines = [f"  images     {size} {meta['image_dtype']}, channels {channels}"]
    splits = meta["splits"]
    parts = [
        f"{name} {c['rows']} rows ({c['cases']} case{'' if c['cases'] == 1 else 's'})"
        for name, c in meta["counts"].items()
    ]
    lines.append(f"  splits     by {splits['mode']}, seed {splits['seed']}: {', '.join(parts)}")
    return lines


def _fingerprint_lines(cache: Path) -> list[str]:
    from calfseg.data.cache import FINGERPRINT_FILE
    from calfseg.fingerprint import load_fingerprint
    from calfseg.rule import select_branch

    try:
        moments = load_fingerprint(cache / FINGERPRINT_FILE).moments
    except (OSError, ValueError):
        return []
    pick = select_branch(moments.skewness(), moments.kurtosis(), count=moments.count)
    return [
        f"  train      {moments.count} areas: S {moments.skewness():+.3f}, "
        f"K {moments.kurtosis():+.3f} -> {pick.branch} ({cache / FINGERPRINT_FILE})"
    ]


def _print_skipped(skipped: list[SkippedCase]) -> None:
    print(f"skipped {len(skipped)} case(s):", file=sys.stderr)
    for case in skipped:
        print(f"  {case.case_id}: {case.reason}", file=sys.stderr)
