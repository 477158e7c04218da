"""``calfseg.analyze``: the one Python call behind ``calf analyze``.

It measures the foreground areas of masks (a file, a folder of files or of a known dataset
layout, or a cache written by ``calf prepare``), and returns their
:class:`~calfseg.fingerprint.Fingerprint`: S, K, the branch CALF's rule picks, how many
masks were empty, quantiles, and how stable the pick is over mini-batches and bootstrap
resamples. A JSON fingerprint file is read back as it is. Example::

    from calfseg import analyze

    fp = analyze("data/brats2015", batch_size=32)
    fp.branch, fp.skewness, fp.summary.batch.branch_frequencies
    fp.save("fingerprint.json")                     # calfseg.fingerprint/1
    CALFLoss("dataset").fit("fingerprint.json")     # the same branch

Layer: above the data layer (which reads the files) and the fingerprint layer.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calfseg.data.cache import SPLIT_NAMES, SliceCache, is_cache
from calfseg.data.files.masks import DEFAULT_MAX_LABELS
from calfseg.data.scan.labels import LAYOUT_AUTO, LAYOUT_NONE
from calfseg.data.scan.masks import NoMaskFilesError, OnError, SkippedFile, scan_masks
from calfseg.errors import OptionError, check_choice
from calfseg.fingerprint import Fingerprint, NoAreasError, fingerprint_of_areas, load_fingerprint
from calfseg.options import flag, integer, label_list, non_negative_int, option, positive_int
from calfseg.rule import Thresholds
from calfseg.stats.areas import AREA_METHODS, AreaMethod


class NoReadableMasksError(NoMaskFilesError):
    """Mask files were found, but none could be read (``on_error="skip"``);
    :attr:`skipped` says why for each."""

    def __init__(self, path: Path, skipped: Sequence[SkippedFile]) -> None:
        super().__init__(path, f"none of the {len(skipped)} mask files could be read")
        self.skipped = list(skipped)


class EmptySplitError(NoAreasError):
    """The chosen split of a cache has no rows; the message gives the rows per split."""


MEASURE, RESAMPLE, ERRORS = "what to measure", "resampling", "output and errors"
# The options a fingerprint's measured records, in this order.
_RECORDED = (
    "mask_glob", "labels", "per_volume", "slice_axis", "exclude_empty", "area", "max_labels",
    "batch_size", "batches", "bootstrap", "seed", "on_error", "split",
)  # fmt: skip


@dataclass(frozen=True)
class AnalyzeOptions:
    """The options of :func:`analyze` and of ``calf analyze``, declared once: the command
    line is generated from these fields (:mod:`calfseg.options`). A bad value or a
    combination that cannot work is an :class:`~calfseg.errors.OptionError` when the
    object is made; :meth:`check_for` refuses what cannot apply to a given path."""

    split: str | None = option(
        None, "a cache PATH: only the rows of this split (default: every row)",
        choices=SPLIT_NAMES, group=MEASURE,
    )  # fmt: skip
    layout: str = option(
        LAYOUT_AUTO,
        "a dataset FOLDER: auto (default) detects its layout as calf prepare does and reads "
        "only its label files (e.g. BraTS *seg*/OTMultiClass, never brainmask); a layout "
        "name (brats2015, brats2021, ...) forces one; none reads every mask-like file",
        metavar="NAME", group=MEASURE,
    )  # fmt: skip
    mask_glob: str | None = option(
        None,
        "keep only files whose name matches GLOB (e.g. '*seg*.nii.gz'); a GLOB with '/' is "
        "matched against the path below PATH (searches every mask-like file instead of a "
        "layout's label files)",
        metavar="GLOB", group=MEASURE,
    )  # fmt: skip
    labels: Sequence[int] | None = option(
        None,
        "label values that count as foreground (repeat or comma-separate; default: every "
        "value > 0); integer label maps may have any number of labels",
        parse=label_list, metavar="L[,L...]", name="label", repeat=True, group=MEASURE,
    )  # fmt: skip
    per_volume: bool = option(
        False, "one area per 3D volume instead of one per slice", group=MEASURE
    )
    slice_axis: int = option(
        -1,
        "axis of a 3D volume that indexes its slices (default -1: the last axis as stored; "
        "multi-page TIFF pages are moved last)",
        parse=integer, metavar="AXIS", group=MEASURE,
    )  # fmt: skip
    exclude_empty: bool = option(
        False, "leave out masks without foreground (default: they count, area 0)",
        group=MEASURE,
    )  # fmt: skip
    area: AreaMethod = option(
        "pixels",
        "pixels: count of foreground pixels (default); contour: the authors' OpenCV polygon "
        "area (2D slices only)",
        choices=AREA_METHODS, group=MEASURE,
    )  # fmt: skip
    max_labels: int = option(
        DEFAULT_MAX_LABELS,
        f"a float file (or a grey PNG/TIFF) with more than N distinct values is refused as "
        f"an image (default {DEFAULT_MAX_LABELS}); integer label maps are never refused for "
        "their count",
        parse=positive_int, metavar="N", group=MEASURE,
    )  # fmt: skip
    batch_size: int | None = option(
        None,
        "also report how often each branch is picked over random mini-batches of N masks "
        "(the paper's per-batch CALF; it used 32)",
        parse=positive_int, metavar="N", group=RESAMPLE,
    )  # fmt: skip
    batches: int = option(
        1000, "number of mini-batches drawn (default 1000)",
        parse=positive_int, metavar="M", group=RESAMPLE,
    )  # fmt: skip
    bootstrap: int = option(
        200, "bootstrap resamples for the stability of the pick (default 200; 0: none)",
        parse=non_negative_int, metavar="B", group=RESAMPLE,
    )  # fmt: skip
    seed: int = option(
        0, "random seed (default 0)", parse=non_negative_int, metavar="N", group=RESAMPLE
    )
    on_error: OnError = option(
        "stop",
        "stop at the first bad file (default) or skip it and list it at the end; either way "
        "the exit code is 1",
        choices=("stop", "skip"), group=ERRORS,
    )  # fmt: skip
    thresholds: Thresholds | dict[str, float] | None = None  # the rule's; Python only

    def __post_init__(self) -> None:
        if not -3 <= self.slice_axis <= 2:
            raise OptionError(f"--slice-axis must be in -3..2, got {self.slice_axis}")
        if self.area == "contour" and self.per_volume:
            raise OptionError("--area contour measures 2D slices; drop --per-volume")
        if self.layout != LAYOUT_AUTO and self.mask_glob is not None:
            raise OptionError(
                "--mask-glob searches every mask-like file; it cannot be combined with "
                f"--layout {self.layout} (which reads the layout's label files)"
            )
        from calfseg.data.sources import SOURCES

        check_choice("--layout", self.layout, (LAYOUT_AUTO, LAYOUT_NONE, *SOURCES))
        if self.split is not None:
            check_choice("--split", self.split, SPLIT_NAMES)
        check_choice("--area", self.area, AREA_METHODS)
        check_choice("--on-error", self.on_error, ("stop", "skip"))

    def measuring(self) -> list[str]:
        """The options given that choose which areas are measured from mask files."""
        given = {
            "mask_glob": self.mask_glob is not None,
            "labels": self.labels is not None,
            "per_volume": self.per_volume,
            "slice_axis": self.slice_axis != -1,
            "area": self.area != "pixels",
        }
        return [name for name, on in given.items() if on]

    def check_for(self, root: Path) -> None:
        """Refuse the options that cannot apply to ``root`` (an existing path): measuring
        options for a cache or a fingerprint file, ``exclude_empty`` for a fingerprint
        file, ``split`` for anything but a cache."""
        if root.is_dir() and is_cache(root):
            _refuse(
                self.measuring(),
                f"a cache ({root}: its index holds the pixel counts of the prepared masks; "
                "choose labels and sizes in calf prepare)",
            )
        elif self.split is not None:
            raise OptionError(f"--split applies to a cache folder; {root} is not one")
        elif is_fingerprint_file(root):
            _refuse(
                [*self.measuring(), *(["exclude_empty"] if self.exclude_empty else [])],
                f"a fingerprint ({root} holds only the moments of the areas, not the areas)",
            )

    def record(self) -> dict[str, Any]:
        """The options a fingerprint's ``measured`` records."""
        values = {name: getattr(self, name) for name in _RECORDED}
        return {**values, "labels": None if self.labels is None else list(self.labels)}


def is_fingerprint_file(path: Path) -> bool:
    """A JSON file: what :func:`analyze` reads as a fingerprint."""
    return path.is_file() and path.name.lower().endswith(".json")


def analyze(
    path: str | os.PathLike[str],
    options: AnalyzeOptions | None = None,
    *,
    progress: bool = False,
    **given: Any,
) -> Fingerprint:
    """The fingerprint of the masks at ``path``.

    ``path`` is a mask file or folder (see :func:`calfseg.data.scan.masks.scan_masks` for
    ``layout``, ``mask_glob``, ``labels``, ``per_volume``, ``slice_axis``, ``area``,
    ``max_labels`` and ``on_error``), a cache folder of ``calf prepare`` (the areas of its
    index; ``split`` picks train, val or test rows), or a fingerprint JSON file (read with
    :func:`~calfseg.fingerprint.load_fingerprint`). ``exclude_empty``, ``batch_size``,
    ``batches``, ``bootstrap``, ``seed`` and ``thresholds`` are those of
    :func:`~calfseg.fingerprint.fingerprint_of_areas`. The options are an
    :class:`AnalyzeOptions`, or its fields as keywords (``analyze(path, batch_size=32)``).

    The result's ``measured`` records the path, the source (``masks`` or ``cache``), the
    unit of one area, the files read and skipped (or the cache rows) and the options; its
    ``areas`` are the analysed areas (for a histogram).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        OptionError: a bad value, or an option that cannot apply to this kind of ``path``
            (named); :class:`~calfseg.fingerprint.NoAreasError` when nothing is left to
            analyse; :class:`~calfseg.fingerprint.FingerprintError` for a bad JSON file.
        MaskFileError: a bad mask file (``on_error="stop"``), none found
            (:class:`NoMaskFilesError`) or none readable (:class:`NoReadableMasksError`).
        CacheError: a cache folder that is not finished.
    """
    if options is None:
        options = AnalyzeOptions(**given)
    elif given:
        options = dataclasses.replace(options, **given)
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no such file or folder: {root}")
    options.check_for(root)
    o = options
    resampling: dict[str, Any] = {
        "exclude_empty": o.exclude_empty,
        "batch_size": o.batch_size,
        "batches": o.batches,
        "bootstrap": o.bootstrap,
        "seed": o.seed,
        "thresholds": o.thresholds,
    }
    if root.is_dir() and is_cache(root):
        return _analyze_cache(root, o.split, o.record(), resampling)
    if is_fingerprint_file(root):
        return load_fingerprint(root)
    scan = scan_masks(
        root,
        mask_glob=o.mask_glob,
        layout=o.layout,
        labels=o.labels,
        per_volume=o.per_volume,
        area=o.area,
        slice_axis=o.slice_axis,
        max_labels=o.max_labels,
        on_error=o.on_error,
        progress=progress,
    )
    if not scan.files:
        raise NoReadableMasksError(root, scan.skipped)
    measured: dict[str, Any] = {"path": str(root), "source": "masks", "unit": scan.unit}
    measured |= {"files": scan.to_dict(), "options": o.record()}
    return fingerprint_of_areas(scan.areas, empty=scan.empty, measured=measured, **resampling)


def _analyze_cache(
    root: Path, split: str | None, options: dict[str, Any], resampling: dict[str, Any]
) -> Fingerprint:
    """The fingerprint of a cache's index areas (every row, or one split's)."""
    cache = cache_areas(root, split)
    if cache.areas.size == 0:
        counts = ", ".join(f"{name} {n}" for name, n in cache.split_rows.items())
        raise EmptySplitError(
            f"{root}: split {cache.split} has no rows, so nothing to analyse (rows per "
            f"split: {counts}); choose another split or re-prepare with other split options"
        )
    measured: dict[str, Any] = {"path": str(root), "source": "cache", "unit": "slices"}
    measured |= {"cache": cache.to_dict(), "options": options}
    return fingerprint_of_areas(cache.areas, empty=cache.empty, measured=measured, **resampling)


def _refuse(names: list[str], what: str) -> None:
    if names:
        given = ", ".join(flag(AnalyzeOptions, name) for name in names)
        raise OptionError(f"{given} cannot apply to {what}")


@dataclass(frozen=True)
class CacheAreas:
    """The areas of a slice cache's rows (all, or one split), read from its index."""

    path: Path
    areas: np.ndarray  # float64 pixel counts of the prepared (resized) masks
    empty: np.ndarray  # bool
    split: str | None  # None: every row
    cases: int  # cases among the chosen rows
    rows_in_cache: int
    split_rows: dict[str, int] = field(default_factory=dict)  # rows of each split

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "rows": int(self.areas.size),
            "cases": self.cases,
            "rows_in_cache": self.rows_in_cache,
        }


def cache_areas(path: str | os.PathLike[str], split: str | None = None) -> CacheAreas:
    """Areas of the rows of the cache at ``path`` (``split``: only train, val or test).

    Raises :class:`~calfseg.data.cache.CacheError` when ``path`` is not a finished cache."""
    cache = SliceCache.open(path)
    rows = cache.rows(split)
    areas = cache.index["area"][rows].astype(np.float64)
    keys = zip(
        cache.index["dataset"][rows].tolist(), cache.index["case_id"][rows].tolist(), strict=True
    )
    split_rows = {name: int(cache.rows(name).size) for name in SPLIT_NAMES}
    return CacheAreas(Path(path), areas, areas == 0, split, len(set(keys)), len(cache), split_rows)
