"""Measuring mask files: one foreground area per 2D mask, per slice of a 3D volume (along
its last axis, as stored) or per volume, plus per-file bookkeeping.

:func:`scan_masks` reads one file at a time through :mod:`calfseg.data.files.masks` and
keeps only the areas, so a folder of any size can be scanned. In a dataset folder of a known
layout only the layout's label files are read (:mod:`calfseg.data.scan.labels`).
:func:`measure_mask` is the per-array step.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from calfseg.data.files.masks import (
    DEFAULT_MAX_LABELS,
    MASK_SUFFIXES,
    MaskFileError,
    find_mask_files,
    foreground,
    read_mask,
)
from calfseg.data.scan.labels import LAYOUT_AUTO, LAYOUT_NONE, layout_label_files
from calfseg.errors import OptionError, check_choice
from calfseg.progress import progress_bar
from calfseg.stats import foreground_areas
from calfseg.stats.areas import AreaMethod

OnError = Literal["stop", "skip"]


class NoMaskFilesError(MaskFileError):
    """A folder (or a file filtered out by the glob) holds no mask file."""


@dataclass(frozen=True)
class FileRecord:
    """One mask file that was read: its array shape and how many (empty) areas it gave."""

    path: Path
    shape: tuple[int, ...]
    areas: int
    empty: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "shape": list(self.shape),
            "areas": self.areas,
            "empty": self.empty,
        }


@dataclass(frozen=True)
class SkippedFile:
    """A file left out under ``on_error="skip"``, and why."""

    path: Path
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "reason": self.reason}


@dataclass
class ScanResult:
    """Areas of every mask read (file order, then slice order) and the bookkeeping."""

    path: Path
    areas: np.ndarray  # float64, one per mask / slice / volume
    empty: np.ndarray  # bool, True where the mask has no foreground pixel
    found: int  # mask files found (and tried)
    files: list[FileRecord] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    per_volume: bool = False
    layout: str | None = None  # the dataset layout whose label files were read, if any

    @property
    def unit(self) -> str:
        """What one area is: ``masks`` (2D files), ``slices`` or ``volumes`` (3D files)."""
        kinds = []
        if any(len(f.shape) == 2 for f in self.files):
            kinds.append("masks")
        if any(len(f.shape) == 3 for f in self.files):
            kinds.append("volumes" if self.per_volume else "slices")
        return " and ".join(kinds) or "masks"

    def to_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "scanned": self.found,
            "read": len(self.files),
            "skipped": [s.to_dict() for s in self.skipped],
            "per_file": [f.to_dict() for f in self.files],
        }


def measure_mask(
    label_array: np.ndarray,
    *,
    labels: Iterable[int] | None = None,
    per_volume: bool = False,
    area: AreaMethod = "pixels",
    slice_axis: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """Areas and emptiness of one label array: one per 2D mask, per slice along
    ``slice_axis`` of a 3D volume, or one per volume with ``per_volume``."""
    fg = foreground(label_array, labels)
    if fg.ndim == 2:
        samples = fg[None]
    elif per_volume:
        samples = fg[None, None]  # (1, 1, *volume): foreground_areas' 3D layout
    else:
        samples = np.ascontiguousarray(np.moveaxis(fg, slice_axis, 0))
    areas = foreground_areas(samples, area).numpy()
    if area == "pixels":
        empty = areas == 0
    else:  # a contour area of 0 does not mean empty (one-pixel blobs, lines)
        empty = ~samples.reshape(samples.shape[0], -1).any(axis=1)
    return areas, empty


def scan_masks(
    path: str | os.PathLike[str],
    *,
    mask_glob: str | None = None,
    layout: str = LAYOUT_AUTO,
    labels: Sequence[int] | None = None,
    per_volume: bool = False,
    area: AreaMethod = "pixels",
    slice_axis: int = -1,
    max_labels: int = DEFAULT_MAX_LABELS,
    on_error: OnError = "stop",
    progress: bool = False,
) -> ScanResult:
    """Measure every mask file at ``path``.

    Which files: a file is itself; in a folder, ``layout`` ``"auto"`` (default) detects a
    known dataset layout as ``calf prepare`` does and reads only its label files (never a
    BraTS ``brainmask.nii.gz``); a layout name forces that layout; ``"none"``, a folder of
    no known layout, or a ``mask_glob`` search every mask-like file below the folder (see
    :func:`~calfseg.data.find_mask_files`).

    ``on_error="stop"`` raises the first :class:`MaskFileError` (a case of the layout
    without a label file included); ``"skip"`` records it in :attr:`ScanResult.skipped`
    and goes on. ``progress`` shows a bar on stderr when it is a terminal. A folder without
    any mask file raises :class:`NoMaskFilesError` in both modes.
    """
    check_choice("on_error", on_error, get_args(OnError))
    root = Path(path)
    files, missing, found_layout = _files_to_read(root, mask_glob, layout, on_error)
    result = ScanResult(
        root,
        np.empty(0),
        np.empty(0, dtype=bool),
        len(files) + len(missing),
        skipped=list(missing),
        per_volume=per_volume,
        layout=found_layout,
    )
    bar = progress_bar(len(files), "reading masks", progress, unit="file")
    area_parts, empty_parts = [], []
    for file in files:
        if bar is not None:
            bar.update(1)
        try:
            label_array = read_mask(file, max_labels=max_labels)
            try:
                areas, empty = measure_mask(
                    label_array, labels=labels, per_volume=per_volume, area=area,
                    slice_axis=slice_axis,
                )  # fmt: skip
            except ValueError as err:  # values the foreground rule cannot read (below 0)
                raise MaskFileError(file, str(err)) from None
        except MaskFileError as err:
            if on_error == "stop":
                raise
            result.skipped.append(SkippedFile(file, err.reason))
            continue
        area_parts.append(areas)
        empty_parts.append(empty)
        shape = tuple(label_array.shape)
        result.files.append(FileRecord(file, shape, int(areas.size), int(empty.sum())))
    if bar is not None:
        bar.close()
    if area_parts:
        result.areas = np.concatenate(area_parts).astype(np.float64)
        result.empty = np.concatenate(empty_parts)
    return result


def _files_to_read(
    root: Path, mask_glob: str | None, layout: str, on_error: OnError
) -> tuple[list[Path], list[SkippedFile], str | None]:
    """The mask files to read, the layout's cases without a label file (raised under
    ``on_error="stop"``), and the layout whose label files they are (None: a search)."""
    found = None if mask_glob is not None else layout_label_files(root, layout)
    missing: list[SkippedFile] = []
    if found is None:
        if layout not in (LAYOUT_AUTO, LAYOUT_NONE) and root.is_dir():
            raise OptionError(f"layout {layout!r} cannot be combined with a mask glob")
        files = list(find_mask_files(root, mask_glob))
    else:
        files = list(found.files)
        missing = [SkippedFile(root, f"case {p}") for p in found.problems]
        if missing and on_error == "stop":
            raise MaskFileError(root, missing[0].reason)
    if not files:
        what = f"matching {mask_glob!r} " if mask_glob is not None else ""
        if found is not None:
            what = f"of layout {found.layout} "
        raise NoMaskFilesError(
            root, f"no mask files {what}found (looked for {', '.join(MASK_SUFFIXES)})"
        )
    return files, missing, None if found is None else found.layout
