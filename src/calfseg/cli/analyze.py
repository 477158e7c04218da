"""``calf analyze PATH``: area statistics of a set of masks and the branch CALF would pick.

A thin wrapper over :func:`calfseg.analyze`: check the options (usage errors, before any
work), analyse, print the report, warn when the pick is the rule's fallback, write ``--json``
(the fingerprint, format ``calfseg.fingerprint/1``) and ``--plot``, and exit 1 when files
were skipped."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calfseg.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    check_input,
    error,
    label_list,
    non_negative_int,
    positive_int,
    require_output_file,
    warn,
)
from calfseg.cli.options import add_json, add_no_progress, add_seed

if TYPE_CHECKING:
    from calfseg.fingerprint import Fingerprint

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
    add_seed(stats, default=0, help="random seed (default 0)")
    out = p.add_argument_group("output and errors")
    add_json(out, "everything (usable later as a fingerprint PATH)")
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
    add_no_progress(out)


def run(args: argparse.Namespace) -> int:
    problem = _usage_problem(args)
    if problem is not None:  # before the analysis, so that no work is lost
        return error(PROG, problem, EXIT_USAGE)
    outcome = _analyze(args)
    if isinstance(outcome, int):
        return outcome
    fingerprint = outcome
    print(_describe(args, fingerprint))
    if fingerprint.undefined_reason is not None:
        warn(
            PROG,
            f"{fingerprint.undefined_reason}; the branch {fingerprint.branch} is the rule's "
            "fallback, not a choice made from the data (check --label, or analyse more masks)",
        )
    failed = _write_outputs(args, fingerprint)
    if failed is not None:
        return failed
    skipped = _skipped(fingerprint)
    if skipped:
        _print_skipped(skipped)
        scanned = fingerprint.measured["files"]["scanned"]
        return error(PROG, f"{len(skipped)} of {scanned} mask files skipped", EXIT_FAILURE)
    return EXIT_OK


# -- steps --------------------------------------------------------------------------------


def _usage_problem(args: argparse.Namespace) -> str | None:
    """Why the options cannot work together or with PATH (exit 2), or None."""
    _check_outputs(args)  # raises: an unsupported suffix exit 2, an output in the way exit 1
    if not -3 <= args.slice_axis <= 2:
        return f"--slice-axis must be in -3..2, got {args.slice_axis}"
    if args.area == "contour" and args.per_volume:
        return "--area contour measures 2D slices; drop --per-volume"
    check_input(args.path, "PATH")  # raises: a missing input is exit 1
    from calfseg.data.cache import is_cache

    if args.path.is_dir() and is_cache(args.path):
        ignored = [
            o for o in _options_needing_areas(args) if o not in ("--exclude-empty", "--plot")
        ]
        if ignored:
            return (
                f"{', '.join(ignored)} cannot apply to a cache ({args.path}: its index holds the "
                "pixel counts of the prepared masks; choose labels and sizes in calf prepare)"
            )
        return None
    if args.split is not None:
        return f"--split applies to a cache folder; {args.path} is not one"
    if _is_fingerprint_file(args.path):
        ignored = _options_needing_areas(args)
        if ignored:
            return (
                f"{', '.join(ignored)} cannot apply to a fingerprint ({args.path} holds only "
                "the moments of the areas, not the areas)"
            )
        return None
    return _layout_problem(args)


def _layout_problem(args: argparse.Namespace) -> str | None:
    if args.layout != "auto" and args.mask_glob is not None:
        return (
            "--mask-glob searches every mask-like file; it cannot be combined with --layout "
            f"{args.layout} (which reads the layout's label files)"
        )
    if args.layout not in ("auto", "none"):
        from calfseg.data.sources import SOURCES

        if args.layout not in SOURCES:
            known = ", ".join(["auto", "none", *SOURCES])
            return f"unknown --layout {args.layout!r}; choose one of {known}"
    return None


def _is_fingerprint_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(".json")


def _analyze(args: argparse.Namespace) -> Fingerprint | int:
    """:func:`calfseg.analyze` with the options; a failure becomes its message and exit code."""
    # Imported here so that `calf --version` and `calf --help` do not pay for torch.
    from calfseg.analysis import EmptySplitError, NoReadableMasksError, analyze
    from calfseg.data.cache import CacheError
    from calfseg.data.files.masks import MaskFileError
    from calfseg.data.scan.masks import NoMaskFilesError
    from calfseg.extras import MissingExtraError
    from calfseg.fingerprint import FingerprintError, NoAreasError

    try:
        return analyze(
            args.path,
            layout=args.layout,
            mask_glob=args.mask_glob,
            labels=args.labels,
            per_volume=args.per_volume,
            slice_axis=args.slice_axis,
            area=args.area,
            max_labels=args.max_labels,
            split=args.split,
            exclude_empty=args.exclude_empty,
            batch_size=args.batch_size,
            batches=args.batches,
            bootstrap=args.bootstrap,
            seed=args.seed,
            on_error=args.on_error,
            progress=not args.no_progress,
        )
    except NoReadableMasksError as err:
        _print_skipped(err.skipped)
        return error(PROG, str(err), EXIT_FAILURE)
    except (MissingExtraError, NoMaskFilesError, CacheError, FingerprintError) as err:
        return error(PROG, str(err), EXIT_FAILURE)
    except EmptySplitError as err:
        return error(PROG, str(err), EXIT_FAILURE)
    except NoAreasError as err:
        return error(PROG, f"{args.path}: {err}", EXIT_FAILURE)
    except MaskFileError as err:
        return error(PROG, f"{err}{_mask_file_hint(args)}", EXIT_FAILURE)
    except ValueError as err:  # a --layout that cannot read PATH, a batch size too large
        return error(PROG, f"{args.path}: {err}", EXIT_USAGE)


def _mask_file_hint(args: argparse.Namespace) -> str:
    if not args.path.is_dir():
        return ""
    return (
        "\nhint: pick the masks among other files with --mask-glob "
        "(e.g. --mask-glob '*seg*') or --layout NAME, or leave bad files out with "
        "--on-error skip (the files read are listed)"
    )


def _write_outputs(args: argparse.Namespace, fingerprint: Fingerprint) -> int | None:
    """--json and --plot; an exit code on failure, None on success."""
    from calfseg.extras import MissingExtraError

    try:
        if args.json is not None:
            fingerprint.save(args.json)
        if args.plot is not None:
            from calfseg.fingerprint.plots import plot_area_histogram

            plot_area_histogram(
                fingerprint, args.plot, title=str(args.path), xlabel=_area_label(args)
            )
    except MissingExtraError as err:
        return error(PROG, str(err), EXIT_FAILURE)
    except OSError as err:
        return error(PROG, f"cannot write the output: {err}", EXIT_FAILURE)
    return None


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse a --json or --plot that cannot be written (suffix, a folder or a file in the
    way), before the analysis (calfseg.cli.common.require_output_file)."""
    inputs = [(args.path, "PATH")]
    if args.json is not None:
        require_output_file(args.json, "--json", inputs=inputs)
    if args.plot is not None:
        require_output_file(args.plot, "--plot", PLOT_SUFFIXES, inputs=inputs)


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


def _skipped(fingerprint: Fingerprint) -> list[dict[str, str]]:
    files = fingerprint.measured.get("files") if fingerprint.areas is not None else None
    return list(files["skipped"]) if files else []


# -- text ---------------------------------------------------------------------------------


def _describe(args: argparse.Namespace, fingerprint: Fingerprint) -> str:
    """The printed report: what was measured (files or cache rows), then the statistics."""
    from calfseg.fingerprint.text import moments_only_report, row, summary_rows

    source = fingerprint.measured.get("source")
    if fingerprint.areas is None:  # read from a fingerprint file
        if fingerprint.summary is None:
            return moments_only_report(str(args.path), fingerprint, args.batch_size)
        unit = str(fingerprint.measured.get("unit") or "masks")
        head = [f"calf analyze {args.path} (fingerprint file of {source or 'masks'})"]
        options = fingerprint.measured.get("options") or {}
        where = fingerprint.measured.get("path", "?")
        head.append(row("areas", f"{fingerprint.summary.n_measured} {unit} of {where}"))
        lines = head + summary_rows(fingerprint, unit, options.get("seed", args.seed))
        if args.batch_size is not None:
            lines.append(
                row("note", "--batch-size ignored: the file holds the batches it was written with")
            )
        return "\n".join(lines)
    if source == "cache":
        head = _cache_lines(args, fingerprint)
        return "\n".join(head + summary_rows(fingerprint, "slices", args.seed))
    unit = str(fingerprint.measured["unit"])
    return "\n".join(_file_lines(args, fingerprint) + summary_rows(fingerprint, unit, args.seed))


def _cache_lines(args: argparse.Namespace, fingerprint: Fingerprint) -> list[str]:
    from calfseg.fingerprint.text import plural, row

    cache = fingerprint.measured["cache"]
    which = "every row" if cache["split"] is None else f"split {cache['split']}"
    n_measured = fingerprint.summary.n_measured if fingerprint.summary else fingerprint.count
    return [
        f"calf analyze {args.path} (slice cache)",
        row(
            "rows",
            f"{cache['rows']} of {cache['rows_in_cache']} ({which}), "
            f"{plural(cache['cases'], 'case')}",
        ),
        row("areas", f"{n_measured} slices; pixel count of the prepared masks"),
    ]


def _file_lines(args: argparse.Namespace, fingerprint: Fingerprint) -> list[str]:
    from calfseg.fingerprint.text import plural, row

    files = fingerprint.measured["files"]
    unit = str(fingerprint.measured["unit"])
    lines = [f"calf analyze {args.path}"]
    glob = f" matching {args.mask_glob!r}" if args.mask_glob else ""
    if files["layout"] is not None:
        glob = f", the label files of layout {files['layout']}"
    lines.append(
        row(
            "files",
            f"{files['read']} read, {len(files['skipped'])} skipped "
            f"({plural(files['scanned'], 'mask file')} found{glob})",
        )
    )
    if args.list_files or files["read"] <= LIST_FILES_UP_TO:
        lines += [row("", str(f["path"])) for f in files["per_file"]]
    else:
        lines.append(row("", "(--list-files names them; --json lists them under files)"))
    labels = "labels > 0" if args.labels is None else f"labels {sorted(set(args.labels))}"
    what = "OpenCV contour area" if args.area == "contour" else "pixel count"
    where = f" (axis {args.slice_axis} of each volume)" if "slices" in unit else ""
    n_measured = fingerprint.summary.n_measured if fingerprint.summary else fingerprint.count
    lines.append(row("areas", f"{n_measured} {unit}{where}; {what} of {labels}"))
    return lines


def _area_label(args: argparse.Namespace) -> str:
    if args.area == "contour":
        return "foreground area (OpenCV contour area, pixels)"
    return "foreground area (voxels)" if args.per_volume else "foreground area (pixels)"


def _print_skipped(skipped: Sequence[Any]) -> None:
    """List skipped files on stderr (SkippedFile objects, or their dicts from a report)."""
    print(f"skipped {len(skipped)} file(s):", file=sys.stderr)
    for item in skipped:
        if isinstance(item, dict):
            path, reason = item["path"], item["reason"]
        else:
            path, reason = item.path, item.reason
        print(f"  {path}: {reason}", file=sys.stderr)
