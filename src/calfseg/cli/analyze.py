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
    UsageError,
    check_input,
    error,
    require_output_file,
    warn,
)
from calfseg.cli.errors import fail
from calfseg.cli.options import add_json, add_no_progress
from calfseg.options import add_options, options_from

if TYPE_CHECKING:
    from calfseg.analysis import AnalyzeOptions
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
    p.defer(_add_options)  # calfseg.analysis imports torch: only when the command is used


def _add_options(p: argparse.ArgumentParser) -> None:
    from calfseg.analysis import ERRORS, AnalyzeOptions

    add_options(p, AnalyzeOptions)  # declared once, in calfseg.analysis
    out = next(g for g in p._action_groups if g.title == ERRORS)
    add_json(out, "everything (usable later as a fingerprint PATH)")
    out.add_argument(
        "--plot",
        type=Path,
        metavar="OUT.png",
        help="draw the area histogram with S, K and the branch "
        f"(suffix {', '.join(PLOT_SUFFIXES)})",
    )
    out.add_argument(
        "--list-files",
        action="store_true",
        help=f"list every file read (always when at most {LIST_FILES_UP_TO} were read)",
    )
    add_no_progress(out)


def run(args: argparse.Namespace) -> int:
    from calfseg.analysis import AnalyzeOptions, is_fingerprint_file

    # Every check before the analysis, so that no work is lost: the options (OptionError,
    # exit 2), the outputs, the input (exit 1), the options against the input (exit 2).
    options = options_from(AnalyzeOptions, args)
    _check_outputs(args)
    check_input(args.path, "PATH")
    options.check_for(args.path)
    if args.plot is not None and is_fingerprint_file(args.path):
        raise UsageError(
            f"--plot cannot apply to a fingerprint ({args.path} holds only the moments of "
            "the areas, not the areas)"
        )
    outcome = _analyze(args, options)
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


def _analyze(args: argparse.Namespace, options: AnalyzeOptions) -> Fingerprint | int:
    """:func:`calfseg.analyze` with the options; a failure becomes its message and exit code."""
    # Imported here so that `calf --version` and `calf --help` do not pay for torch.
    from calfseg.analysis import EmptySplitError, NoReadableMasksError, analyze
    from calfseg.data.files.masks import MaskFileError
    from calfseg.fingerprint import NoAreasError

    try:
        return analyze(args.path, options, progress=not args.no_progress)
    # Anything else reaches calfseg.cli.run_guarded, whose table gives its exit code; these
    # add what the command line knows: the files skipped, the path, a hint.
    except NoReadableMasksError as err:
        _print_skipped(err.skipped)
        raise
    except NoAreasError as err:
        if isinstance(err, EmptySplitError):  # names the cache and its splits already
            raise
        raise NoAreasError(f"{args.path}: {err}") from err
    except MaskFileError as err:
        return fail(PROG, err, _mask_file_hint(args))


def _mask_file_hint(args: argparse.Namespace) -> str | None:
    if not args.path.is_dir():
        return None
    return (
        "pick the masks among other files with --mask-glob "
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
