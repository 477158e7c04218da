"""``calf analyze PATH``: area statistics of a set of masks and the branch CALF would pick."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calfseg.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    check_output_file,
    error,
    label_list,
    non_negative_int,
    positive_int,
    warn,
)

if TYPE_CHECKING:
    from calfseg.analyze import AnalysisResult, CacheAreas, ScanResult, SkippedFile

PROG = "calf analyze"
# Formats matplotlib writes without extra packages.
PLOT_SUFFIXES: tuple[str, ...] = (".png", ".pdf", ".svg")
LIST_FILES_UP_TO = 20  # file names are printed when at most this many were read


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "analyze",
        help="area statistics of a set of masks and the CALF branch they select",
        description=(
            "Measure the foreground area of every mask (2D file, axial slice = last array "
            "axis of a 3D volume as stored, or whole volume), summarise the distribution "
            "(skewness S, excess kurtosis K) and apply CALF's decision rule. PATH is a mask "
            "file, a folder searched recursively, a JSON fingerprint written by --json, or a "
            "slice cache written by calf prepare (its index's areas)."
        ),
    )
    p.set_defaults(run=run)
    p.add_argument(
        "path",
        metavar="PATH",
        type=Path,
        help="mask file, folder of masks, JSON fingerprint, or cache folder",
    )
    what = p.add_argument_group("what to measure")
    what.add_argument(
        "--split",
        choices=("train", "val", "test"),
        help="a cache PATH: only the rows of this split (default: every row)",
    )
    what.add_argument(
        "--layout",
        default="auto",
        metavar="NAME",
        help="a dataset FOLDER: auto (default) detects its layout as calf prepare does and "
        "reads only its label files (e.g. BraTS *seg*/OTMultiClass, never brainmask); a "
        "layout name (brats2015, brats2021, ...) forces one; none reads every mask-like file",
    )
    what.add_argument(
        "--mask-glob",
        metavar="GLOB",
        help="keep only files whose name matches GLOB (e.g. '*seg*.nii.gz'); "
        "a GLOB with '/' is matched against the path below PATH (searches every "
        "mask-like file instead of a layout's label files)",
    )
    what.add_argument(
        "--label",
        dest="labels",
        metavar="L[,L...]",
        type=label_list,
        action="extend",
        help="label values that count as foreground (repeat or comma-separate; "
        "default: every value > 0); integer label maps may have any number of labels",
    )
    what.add_argument(
        "--per-volume", action="store_true", help="one area per 3D volume instead of one per slice"
    )
    what.add_argument(
        "--slice-axis",
        type=int,
        default=-1,
        metavar="AXIS",
        help="axis of a 3D volume that indexes its slices (default -1: the last "
        "axis as stored; multi-page TIFF pages are moved last)",
    )
    what.add_argument(
        "--exclude-empty",
        action="store_true",
        help="leave out masks without foreground (default: they count, area 0)",
    )
    what.add_argument(
        "--area",
        choices=("pixels", "contour"),
        default="pixels",
        help="pixels: count of foreground pixels (default); contour: the "
        "authors' OpenCV polygon area (2D slices only)",
    )
    what.add_argument(
        "--max-labels",
        type=positive_int,
        default=16,
        metavar="N",
        help="a float file (or a grey PNG/TIFF) with more than N distinct values is refused "
        "as an image (default 16); integer label maps are never refused for their count",
    )
    stats = p.add_argument_group("resampling")
    stats.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="also report how often each branch is picked over random "
        "mini-batches of N masks (the paper's per-batch CALF; it used 32)",
    )
    stats.add_argument(
        "--batches",
        type=positive_int,
        default=1000,
        metavar="M",
        help="number of mini-batches drawn (default 1000)",
    )
    stats.add_argument(
        "--bootstrap",
        type=non_negative_int,
        default=200,
        metavar="B",
        help="bootstrap resamples for the stability of the pick (default 200; 0: none)",
    )
    stats.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    out = p.add_argument_group("output and errors")
    out.add_argument(
        "--json",
        type=Path,
        metavar="OUT",
        help="write everything as JSON (usable later as a fingerprint PATH)",
    )
    out.add_argument(
        "--plot",
        type=Path,
        metavar="OUT.png",
        help="draw the area histogram with S, K and the branch "
        f"(suffix {', '.join(PLOT_SUFFIXES)})",
    )
    out.add_argument(
        "--on-error",
        choices=("stop", "skip"),
        default="stop",
        help="stop at the first bad file (default) or skip it and list it at "
        "the end; either way the exit code is 1",
    )
    out.add_argument(
        "--list-files",
        action="store_true",
        help=f"list every file read (always when at most {LIST_FILES_UP_TO} were read)",
    )
    out.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (shown only when stderr is a terminal and tqdm is installed)",
    )


def run(args: argparse.Namespace) -> int:
    # Imported here so that `calf --version` and `calf --help` do not pay for torch.
    from calfseg.analyze import (
        FingerprintError,
        NoMaskFilesError,
        analyze_moments,
        build_report,
        load_fingerprint,
        scan_masks,
        write_json,
    )
    from calfseg.data.files.masks import MaskFileError
    from calfseg.extras import MissingExtraError

    prog = PROG
    options = _analyze_options(args)
    bad_output = _check_outputs(args)
    if bad_output is not None:  # before the analysis, so that no work is lost
        return error(prog, bad_output, EXIT_USAGE)
    if not -3 <= args.slice_axis <= 2:
        return error(prog, f"--slice-axis must be in -3..2, got {args.slice_axis}", EXIT_USAGE)
    if args.area == "contour" and args.per_volume:
        return error(prog, "--area contour measures 2D slices; drop --per-volume", EXIT_USAGE)
    if not args.path.exists():
        return error(prog, f"no such file or folder: {args.path}", EXIT_USAGE)
    from calfseg.data.cache import is_cache

    if args.path.is_dir() and is_cache(args.path):
        return _run_cache(args, options)
    if args.split is not None:
        return error(prog, f"--split applies to a cache folder; {args.path} is not one", EXIT_USAGE)
    if args.layout != "auto" and args.mask_glob is not None:
        return error(
            prog,
            "--mask-glob searches every mask-like file; it cannot be combined with --layout "
            f"{args.layout} (which reads the layout's label files)",
            EXIT_USAGE,
        )
    if args.layout not in ("auto", "none"):
        from calfseg.data.sources import SOURCES

        if args.layout not in SOURCES:
            known = ", ".join(["auto", "none", *SOURCES])
            return error(prog, f"unknown --layout {args.layout!r}; choose one of {known}", 2)

    if args.path.is_file() and args.path.name.lower().endswith(".json"):
        ignored = _options_needing_areas(args)
        if ignored:
            return error(
                prog,
                f"{', '.join(ignored)} cannot apply to a fingerprint ({args.path} holds only "
                "the moments of the areas, not the areas)",
                EXIT_USAGE,
            )
        try:
            result = analyze_moments(load_fingerprint(args.path))
        except FingerprintError as err:
            return error(prog, str(err), EXIT_FAILURE)
        print(_format_fingerprint(args.path, result, args.batch_size))
        if args.json is not None:
            write_json(build_report(result, path=args.path, options=options), args.json)
        return EXIT_OK

    try:
        scan = scan_masks(
            args.path,
            mask_glob=args.mask_glob,
            layout=args.layout,
            labels=args.labels,
            per_volume=args.per_volume,
            area=args.area,
            slice_axis=args.slice_axis,
            max_labels=args.max_labels,
            on_error=args.on_error,
            progress=not args.no_progress,
        )
    except MissingExtraError as err:
        return error(prog, str(err), EXIT_FAILURE)
    except NoMaskFilesError as err:
        return error(prog, str(err), EXIT_FAILURE)
    except MaskFileError as err:
        hint = ""
        if args.path.is_dir():
            hint = (
                "\nhint: pick the masks among other files with --mask-glob "
                "(e.g. --mask-glob '*seg*') or --layout NAME, or leave bad files out with "
                "--on-error skip (the files read are listed)"
            )
        return error(prog, f"{err}{hint}", EXIT_FAILURE)
    except ValueError as err:  # a --layout that cannot read PATH
        return error(prog, f"{args.path}: {err}", EXIT_USAGE)

    if not scan.files:
        _print_skipped(scan.skipped)
        return error(prog, f"none of the {scan.found} mask files could be read", EXIT_FAILURE)

    failed = _analyse_and_write(
        args,
        options,
        scan.areas,
        scan.empty,
        describe=lambda result: _format_result(args, scan, result),
        report=lambda result: build_report(result, path=args.path, scan=scan, options=options),
        xlabel=_area_label(args),
    )
    if failed is not None:
        return failed

    if scan.skipped:
        _print_skipped(scan.skipped)
        return error(prog, f"{len(scan.skipped)} of {scan.found} mask files skipped", EXIT_FAILURE)
    return EXIT_OK


def _check_outputs(args: argparse.Namespace) -> str | None:
    """Why --json or --plot cannot be written (suffix, a folder or a file in the way)."""
    if args.json is not None:
        problem = check_output_file(args.json, "--json")
        if problem is not None:
            return problem
    if args.plot is not None:
        return check_output_file(args.plot, "--plot", PLOT_SUFFIXES)
    return None


def _run_cache(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """PATH is a slice cache: analyse the areas in its index (all rows, or one split)."""
    from calfseg.analyze import build_report, cache_areas
    from calfseg.data.cache import CacheError

    prog = "calf analyze"
    ignored = [o for o in _options_needing_areas(args) if o not in ("--exclude-empty", "--plot")]
    if ignored:
        return error(
            prog,
            f"{', '.join(ignored)} cannot apply to a cache ({args.path}: its index holds the "
            "pixel counts of the prepared masks; choose labels and sizes in calf prepare)",
            EXIT_USAGE,
        )
    try:
        cache = cache_areas(args.path, args.split)
    except CacheError as err:
        return error(prog, str(err), EXIT_FAILURE)
    if cache.areas.size == 0:
        counts = ", ".join(f"{name} {n}" for name, n in cache.split_rows.items())
        return error(
            prog,
            f"{args.path}: split {cache.split} has no rows, so nothing to analyse (rows per "
            f"split: {counts}); choose another --split or re-prepare with other split options",
            EXIT_FAILURE,
        )
    failed = _analyse_and_write(
        args,
        options,
        cache.areas,
        cache.empty,
        describe=lambda result: _format_cache_result(args, cache, result),
        report=lambda result: build_report(result, path=args.path, options=options, cache=cache),
        xlabel="foreground area (pixels)",
    )
    return EXIT_OK if failed is None else failed


def _analyse_and_write(
    args: argparse.Namespace,
    options: dict[str, Any],
    areas: Any,
    empty: Any,
    *,
    describe: Callable[[AnalysisResult], str],
    report: Callable[[AnalysisResult], dict[str, Any]],
    xlabel: str,
) -> int | None:
    """The rule, the resampling, the printout, --json and --plot: shared by mask files and
    caches. Returns an exit code on failure, None on success."""
    from calfseg.analyze import NoAreasError, analyze_areas, write_json
    from calfseg.extras import MissingExtraError

    prog = PROG
    try:
        result = analyze_areas(
            areas,
            empty=empty,
            exclude_empty=args.exclude_empty,
            batch_size=args.batch_size,
            batches=args.batches,
            bootstrap=args.bootstrap,
            seed=args.seed,
        )
    except NoAreasError as err:
        return error(prog, f"{args.path}: {err}", EXIT_FAILURE)
    except ValueError as err:
        return error(prog, str(err), EXIT_USAGE)
    print(describe(result))
    if result.undefined_reason is not None:
        warn(
            prog,
            f"{result.undefined_reason}; the branch {result.branch} is the rule's fallback, "
            "not a choice made from the data (check --label, or analyse more masks)",
        )
    try:
        if args.json is not None:
            write_json(report(result), args.json)
        if args.plot is not None:
            from calfseg.plots import plot_area_histogram

            kept = areas[~empty] if args.exclude_empty else areas
            plot_area_histogram(kept, result, args.plot, title=str(args.path), xlabel=xlabel)
    except MissingExtraError as err:
        return error(prog, str(err), EXIT_FAILURE)
    except OSError as err:
        return error(prog, f"cannot write the output: {err}", EXIT_FAILURE)
    return None


def _format_cache_result(
    args: argparse.Namespace, cache: CacheAreas, result: AnalysisResult
) -> str:
    which = "every row" if cache.split is None else f"split {cache.split}"
    lines = [
        f"calf analyze {args.path} (slice cache)",
        _row(
            "rows",
            f"{cache.areas.size} of {cache.rows_in_cache} ({which}), "
            f"{_plural(cache.cases, 'case')}",
        ),
        _row("areas", f"{result.n_measured} slices; pixel count of the prepared masks"),
    ]
    return "\n".join(lines + _result_rows(args, result, "slices"))


def _analyze_options(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        "mask_glob",
        "labels",
        "per_volume",
        "slice_axis",
        "exclude_empty",
        "area",
        "max_labels",
        "batch_size",
        "batches",
        "bootstrap",
        "seed",
        "on_error",
        "split",
    )
    return {name: getattr(args, name) for name in names}


def _options_needing_areas(args: argparse.Namespace) -> list[str]:
    """Options that change which areas are measured, or need them one by one."""
    given = {
        "--mask-glob": args.mask_glob is not None,
        "--label": args.labels is not None,
        "--per-volume": args.per_volume,
        "--slice-axis": args.slice_axis != -1,
        "--exclude-empty": args.exclude_empty,
        "--area contour": args.area != "pixels",
        "--plot": args.plot is not None,
    }
    return [name for name, on in given.items() if on]


# -- text ---------------------------------------------------------------------------------


def _format_result(args: argparse.Namespace, scan: ScanResult, result: AnalysisResult) -> str:
    lines = [f"calf analyze {args.path}"]
    glob = f" matching {args.mask_glob!r}" if args.mask_glob else ""
    if scan.layout is not None:
        glob = f", the label files of layout {scan.layout}"
    lines.append(
        _row(
            "files",
            f"{len(scan.files)} read, {len(scan.skipped)} skipped "
            f"({_plural(scan.found, 'mask file')} found{glob})",
        )
    )
    if args.list_files or len(scan.files) <= LIST_FILES_UP_TO:
        lines += [_row("", str(f.path)) for f in scan.files]
    else:
        lines.append(_row("", "(--list-files names them; --json lists them under files)"))
    labels = "labels > 0" if args.labels is None else f"labels {sorted(set(args.labels))}"
    what = "OpenCV contour area" if args.area == "contour" else "pixel count"
    where = f" (axis {args.slice_axis} of each volume)" if "slices" in scan.unit else ""
    lines.append(_row("areas", f"{result.n_measured} {scan.unit}{where}; {what} of {labels}"))
    return "\n".join(lines + _result_rows(args, result, scan.unit))


def _result_rows(args: argparse.Namespace, result: AnalysisResult, unit: str) -> list[str]:
    """Everything after the line saying what was measured."""
    lines = []
    if result.n_measured:
        fate = "excluded" if result.excluded_empty else "counted as area 0"
        lines.append(_row("empty", f"{result.n_empty} ({result.empty_fraction:.1%}), {fate}"))
    if result.excluded_empty:
        lines.append(_row("analysed", f"{result.n} non-empty {unit}"))
    if result.quantiles:
        q = result.quantiles
        parts = [f"{name} {_num(q[name])}" for name in q]
        parts.append(f"mean {_num(result.moments.mean)}")
        lines.append(_row("quantiles", "  ".join(parts)))
    lines += _statistics_rows(result)
    if result.batch is not None:
        b = result.batch
        lines.append(
            _row(
                "batches",
                f"{b.batches} of {b.batch_size}, seed {args.seed}: "
                f"{_frequencies(b.branch_frequencies)}",
            )
        )
        lines.append(
            _row(
                "",
                f"S median {_signed(b.skewness_median)}, 95% of batches in "
                f"{_pair(b.skewness_range95)}; undefined in {b.undefined_fraction:.1%}",
            )
        )
    else:
        lines.append(_row("batches", "not computed (--batch-size N; the paper used 32)"))
    if result.bootstrap is not None:
        boot = result.bootstrap
        lines.append(
            _row(
                "bootstrap",
                f"{boot.resamples} resamples, seed {args.seed}: "
                f"{_frequencies(boot.branch_frequencies)}",
            )
        )
        lines.append(
            _row("", f"S 95% CI {_pair(boot.skewness_ci95)}, K 95% CI {_pair(boot.kurtosis_ci95)}")
        )
    return lines


def _format_fingerprint(path: Path, result: AnalysisResult, batch_size: int | None) -> str:
    lines = [f"calf analyze {path} (fingerprint: moments only)"]
    lines.append(_row("areas", f"{result.n}"))
    if result.n:
        std = math.sqrt(result.moments.variance)
        lines.append(_row("mean", f"{_num(result.moments.mean)} (std {_num(std)})"))
    lines += _statistics_rows(result)
    note = "per-batch frequencies, quantiles and the bootstrap need the areas themselves"
    if batch_size is not None:
        note = f"--batch-size ignored: {note}"
    lines.append(_row("note", note + "; a fingerprint holds only their moments"))
    return "\n".join(lines)


def _statistics_rows(result: AnalysisResult) -> list[str]:
    return [
        _row("S", f"{_signed(result.skewness)}  (skewness g1)"),
        _row("K", f"{_signed(result.kurtosis)}  (excess kurtosis g2)"),
        _row("branch", f"{result.branch}  ({result.condition})"),
    ]


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _row(name: str, text: str) -> str:
    return f"  {name:<10} {text}"


def _frequencies(freqs: dict[str, float]) -> str:
    shown = sorted(((f, b) for b, f in freqs.items() if f > 0), reverse=True)
    return ", ".join(f"{b} {f:.1%}" for f, b in shown) or "none"


def _num(x: float) -> str:
    if math.isnan(x):
        return "nan"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def _signed(x: float) -> str:
    return "undefined" if math.isnan(x) else f"{x:+.3f}"


def _pair(pair: tuple[float, float]) -> str:
    return f"[{_signed(pair[0])}, {_signed(pair[1])}]"


def _area_label(args: argparse.Namespace) -> str:
    if args.area == "contour":
        return "foreground area (OpenCV contour area, pixels)"
    return "foreground area (voxels)" if args.per_volume else "foreground area (pixels)"


def _print_skipped(skipped: Sequence[SkippedFile]) -> None:
    print(f"skipped {len(skipped)} file(s):", file=sys.stderr)
    for item in skipped:
        print(f"  {item.path}: {item.reason}", file=sys.stderr)
