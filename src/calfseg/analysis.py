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

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calfseg.data.cache import SPLIT_NAMES, SliceCache, is_cache
from calfseg.data.files.masks import DEFAULT_MAX_LABELS
from calfseg.data.scan.labels import LAYOUT_AUTO
from calfseg.data.scan.masks import NoMaskFilesError, OnError, SkippedFile, scan_masks
from calfseg.fingerprint import Fingerprint, NoAreasError, fingerprint_of_areas, load_fingerprint
from calfseg.rule import Thresholds
from calfseg.stats.areas import AreaMethod


class NoReadableMasksError(NoMaskFilesError):
    """Mask files were found, but none could be read (``on_error="skip"``);
    :attr:`skipped` says why for each."""

    def __init__(self, path: Path, skipped: Sequence[SkippedFile]) -> None:
        super().__init__(path, f"none of the {len(skipped)} mask files could be read")
        self.skipped = list(skipped)


class EmptySplitError(NoAreasError):
    """The chosen split of a cache has no rows; the message gives the rows per split."""


def analyze(
    path: str | os.PathLike[str],
    *,
    layout: str = LAYOUT_AUTO,
    mask_glob: str | None = None,
    labels: Sequence[int] | None = None,
    per_volume: bool = False,
    slice_axis: int = -1,
    area: AreaMethod = "pixels",
    max_labels: int = DEFAULT_MAX_LABELS,
    split: str | None = None,
    exclude_empty: bool = False,
    batch_size: int | None = None,
    batches: int = 1000,
    bootstrap: int = 200,
    seed: int = 0,
    thresholds: Thresholds | dict[str, float] | None = None,
    on_error: OnError = "stop",
    progress: bool = False,
) -> Fingerprint:
    """The fingerprint of the masks at ``path``.

    ``path`` is a mask file or folder (see :func:`calfseg.data.scan.masks.scan_masks` for
    ``layout``, ``mask_glob``, ``labels``, ``per_volume``, ``slice_axis``, ``area``,
    ``max_labels`` and ``on_error``), a cache folder of ``calf prepare`` (the areas of its
    index; ``split`` picks train, val or test rows), or a fingerprint JSON file (read with
    :func:`~calfseg.fingerprint.load_fingerprint`). ``exclude_empty``, ``batch_size``,
    ``batches``, ``bootstrap``, ``seed`` and ``thresholds`` are those of
    :func:`~calfseg.fingerprint.fingerprint_of_areas`.

    The result's ``measured`` records the path, the source (``masks`` or ``cache``), the
    unit of one area, the files read and skipped (or the cache rows) and the options; its
    ``areas`` are the analysed areas (for a histogram).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an option that cannot apply to this kind of ``path`` (named), or a bad
            value; :class:`~calfseg.fingerprint.NoAreasError` when nothing is left to
            analyse; :class:`~calfseg.fingerprint.FingerprintError` for a bad JSON file.
        MaskFileError: a bad mask file (``on_error="stop"``), none found
            (:class:`NoMaskFilesError`) or none readable (:class:`NoReadableMasksError`).
        CacheError: a cache folder that is not finished.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no such file or folder: {root}")
    measuring = _measuring_options(mask_glob, labels, per_volume, slice_axis, area)
    options: dict[str, Any] = {
        "mask_glob": mask_glob,
        "labels": None if labels is None else list(labels),
        "per_volume": per_volume,
        "slice_axis": slice_axis,
        "exclude_empty": exclude_empty,
        "area": area,
        "max_labels": max_labels,
        "batch_size": batch_size,
        "batches": batches,
        "bootstrap": bootstrap,
        "seed": seed,
        "on_error": on_error,
        "split": split,
    }
    resampling: dict[str, Any] = {
        "exclude_empty": exclude_empty,
        "batch_size": batch_size,
        "batches": batches,
        "bootstrap": bootstrap,
        "seed": seed,
        "thresholds": thresholds,
    }
    if root.is_dir() and is_cache(root):
        _refuse(measuring, f"a cache ({root}: choose labels and sizes in calf prepare)")
        return _analyze_cache(root, split, options, resampling)
    if split is not None:
        raise ValueError(f"split applies to a cache folder; {root} is not one")
    if root.is_file() and root.name.lower().endswith(".json"):
        _refuse([*measuring, *(["exclude_empty"] if exclude_empty else [])], f"{root}")
        return load_fingerprint(root)
    scan = scan_masks(
        root,
        mask_glob=mask_glob,
        layout=layout,
        labels=labels,
        per_volume=per_volume,
        area=area,
        slice_axis=slice_axis,
        max_labels=max_labels,
        on_error=on_error,
        progress=progress,
    )
    if not scan.files:
        raise NoReadableMasksError(root, scan.skipped)
    measured: dict[str, Any] = {"path": str(root), "source": "masks", "unit": scan.unit}
    measured |= {"files": scan.to_dict(), "options": options}
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


def _measuring_options(
    mask_glob: str | None,
    labels: Sequence[int] | None,
    per_volume: bool,
    slice_axis: int,
    area: str,
) -> list[str]:
    """The options given that choose which areas are measured from mask files."""
    given = {
        "mask_glob": mask_glob is not None,
        "labels": labels is not None,
        "per_volume": per_volume,
        "slice_axis": slice_axis != -1,
        "area='contour'": area != "pixels",
    }
    return [name for name, on in given.items() if on]


def _refuse(options: list[str], what: str) -> None:
    if options:
        raise ValueError(f"{', '.join(options)} cannot apply to {what}")


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
