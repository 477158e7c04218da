"""``calf prepare SRC --out CACHE``: preprocess a dataset into a slice cache (docs/prepare.md)."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calfseg.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    check_input,
    check_output_folder,
    error,
    label_list,
    non_negative_int,
    positive_int,
    warn,
)
from calfseg.cli.errors import fail
from calfseg.cli.options import add_no_progress, add_seed, add_shard
from calfseg.errors import check_choice

if TYPE_CHECKING:
    from calfseg.data.preparation.pipeline import PrepareReport, SkippedCase

PROG = "calf prepare"
NORMALISATIONS = ("minmax-slice", "minmax-volume", "zscore-brain", "paper")
# Options that --merge takes from the shards instead (dest names).
_MADE_BY_SHARDS = (
    "layout", "manifest", "label_source", "synthetic", "cases", "slices", "size", "modalities",
    "stack",
    "labels", "normalise", "mask_resize", "keep_aspect", "drop_outside_brain", "dtype",
    "split", "val", "test", "seed", "kfold", "fold", "shard", "on_error",
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
    pre = p.add_argument_group("preprocessing (the paper's protocol by default)")
    pre.add_argument(
        "--size",
        type=positive_int,
        metavar="N",
        help="side of the square slices (default 256; --synthetic: the preset's size)",
    )
    pre.add_argument(
        "--modalities",
        default="paper",
        metavar="WHICH",
        help="paper (default: FLAIR, T2 and T1, T1c for BraTS, each available one a sample), "
        "all, or a list like flair,t1c (each required)",
    )
    pre.add_argument(
        "--stack",
        action="store_true",
        help="one sample per slice with the --modalities list as channels",
    )
    pre.add_argument(
        "--labels",
        type=label_list,
        metavar="L[,L...]",
        help="label values that form the mask (default: every label > 0, whole tumour)",
    )
    pre.add_argument(
        "--normalise",
        "--normalize",
        dest="normalise",
        choices=NORMALISATIONS,
        default="minmax-slice",
        metavar="METHOD",
        help="intensity scaling to [0, 1]: minmax-slice (default, the paper's), "
        "minmax-volume, zscore-brain (z over nonzero voxels, [-5, 5] sd -> [0, 1]), paper "
        "(minmax-slice, per volume for UPENN-GBM FLAIR as the authors did)",
    )
    pre.add_argument(
        "--mask-resize",
        choices=("paper", "nearest"),
        default="paper",
        help="paper: bilinear then > 0 (default); nearest: nearest-exact sampling",
    )
    pre.add_argument(
        "--keep-aspect",
        action="store_true",
        help="pad non-square slices to a square before resizing (default: stretch)",
    )
    pre.add_argument(
        "--drop-outside-brain",
        action="store_true",
        help="leave out slices that are constant (background) in every modality",
    )
    pre.add_argument(
        "--dtype",
        choices=("uint8", "float16"),
        default="uint8",
        help="images.npy type: uint8 0..255 (default) or float16 in [0, 1]",
    )
    spl = p.add_argument_group("splits")
    spl.add_argument(
        "--split",
        choices=("case", "slice"),
        default="case",
        help="case: every patient in one split (default); slice: the paper's split of "
        "each patient's slices (leaks patients between train and test)",
    )
    spl.add_argument("--val", type=float, default=0.1, help="validation share (default 0.1)")
    spl.add_argument("--test", type=float, default=0.1, help="test share (default 0.1)")
    add_seed(spl, default=0, help="seed of the split (and of --synthetic; default 0)")
    spl.add_argument("--kfold", type=positive_int, metavar="K", help="case-level K-fold split")
    spl.add_argument(
        "--fold", type=non_negative_int, metavar="F", help="--kfold: the test fold, 0..K-1"
    )
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


def run(args: argparse.Namespace) -> int:
    # Imported here so that `calf --help` does not pay for torch.
    from calfseg.data.preparation.pipeline import CaseFailedError

    if args.merge is not None:
        given = _options_given_with_merge(args)
        if given:
            return error(
                PROG,
                f"--merge takes the source and options from the shards; drop {', '.join(given)}",
                EXIT_USAGE,
            )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = _run(args)
        for warning in caught:
            if warning.category.__name__ != "LeakageWarning":  # said before the run
                warn(PROG, str(warning.message))
        return code
    except CaseFailedError as err:  # the rest reaches run_guarded's table of exit codes
        return fail(PROG, err, "--on-error skip leaves such cases out and lists them at the end")


def _run(args: argparse.Namespace) -> int:
    from calfseg.data import prepare
    from calfseg.data.preparation.pipeline import merge_cache

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
    options, splits = _options(args)
    if splits.mode == "slice":
        warn(
            PROG,
            "--split slice puts slices of one patient in train, val and test (the paper's "
            "protocol); test scores are inflated",
        )
    before = _digest(args.out)
    report = prepare(
        args.src or None,
        args.out,
        synthetic=args.synthetic,
        cases=args.cases,
        slices=args.slices,
        layout=args.layout,
        manifest=args.manifest,
        label_source=args.label_source,
        options=options,
        splits=splits,
        workers=args.workers,
        shard=args.shard,
        on_error=args.on_error,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        log=lambda line: print(f"{PROG}: {line}", file=sys.stderr),
    )
    code = _finish(report)
    after = _digest(args.out)
    if before is not None and after is not None and before != after:
        print(
            f"{PROG}: the cache in {args.out} changed (digest {before} -> {after}): runs "
            "trained on the old one are not resumed or skipped against it (calf train "
            "--resume, calf benchmark)",
            file=sys.stderr,
        )
    from calfseg.cli.degenerate import lesion_problems  # degenerate data: an error or a warning

    first_src = args.src[0] if args.src else None
    problem, caution = lesion_problems(report.cache, first_src, args.labels)
    if caution is not None:
        warn(PROG, caution)
    return error(PROG, problem, EXIT_FAILURE) if problem is not None else code


def _source_problem(args: argparse.Namespace) -> str | None:
    """A usage error in how the source is given, phrased with the options' names."""
    from calfseg.data.sources.synthetic import SYNTHETIC_PRESETS

    if bool(args.src) == (args.synthetic is not None):
        return "give either SRC (a dataset folder) or --synthetic PRESET"
    for src in args.src:
        check_input(src, "SRC", "folder")  # raises: a missing input is exit 1, not usage
    for flag in ("cases", "slices"):
        if getattr(args, flag) is not None and args.synthetic is None:
            return f"--{flag} applies to --synthetic"
    if args.synthetic is not None:
        check_choice("--synthetic preset", args.synthetic, sorted(SYNTHETIC_PRESETS), valid="known")
    return None


def _digest(cache: Path) -> str | None:
    """The digest of a finished cache at ``cache``, or None when there is none."""
    from calfseg.data.cache import CacheError, cache_digest, read_meta

    if read_meta(cache) is None:
        return None
    try:
        return cache_digest(cache)
    except CacheError:
        return None


def _options(args: argparse.Namespace) -> tuple[Any, Any]:
    """PreprocessOptions and SplitOptions of the command line (PrepareSettingsError, a
    usage error, names a bad value)."""
    from calfseg.data.preparation.entry import PrepareSettingsError, preprocess_options
    from calfseg.data.splits.options import SplitOptions

    modalities: str | tuple[str, ...] = args.modalities
    if args.modalities not in ("paper", "all"):
        modalities = tuple(m.strip().lower() for m in args.modalities.split(",") if m.strip())
    if args.stack and isinstance(modalities, str):
        raise PrepareSettingsError("--stack needs the channels in order: --modalities M1,M2,...")
    options = preprocess_options(
        size=args.size,
        synthetic=args.synthetic,
        modalities=modalities,
        stack=args.stack,
        labels=None if args.labels is None else tuple(args.labels),
        normalise=args.normalise,
        mask_resize=args.mask_resize,
        keep_aspect=args.keep_aspect,
        drop_outside_brain=args.drop_outside_brain,
        image_dtype=args.dtype,
    )
    splits = SplitOptions(  # a bad combination: SplitOptions' OptionError, exit 2
        mode=args.split, val=args.val, test=args.test, seed=args.seed, kfold=args.kfold,
        fold=args.fold,
    )  # fmt: skip
    return options, splits


def _options_given_with_merge(args: argparse.Namespace) -> list[str]:
    given = []
    if args.src or args.out is not None:
        given.append("SRC/--out")
    for dest in _MADE_BY_SHARDS:
        if getattr(args, dest) != _PARSER_DEFAULTS[dest]:
            given.append("--" + dest.replace("_", "-"))
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
