"""Image and label files as :class:`Volume` objects for the readers that take plain files
(``folder``, ``lgg-1p19q``): one NIfTI, PNG, TIFF or NPY file, or 2D slice files stacked
along the last axis. Intensities come from :func:`calfseg.data.files.images.read_image`
(the reader ``calf predict`` uses too), labels from :func:`calfseg.data.files.masks.read_mask`,
NIfTI from :func:`calfseg.data.sources.nifti.read_nifti`; every failure is a
:class:`CaseError` naming the case and the file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from calfseg.data.files.images import ImageFileError, read_image
from calfseg.data.files.masks import MaskFileError, read_mask
from calfseg.data.sources.base import CaseError
from calfseg.data.sources.nifti import read_nifti
from calfseg.data.sources.volumes import Volume

FILE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".npy", ".png", ".tif", ".tiff")
NIFTI_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")


def file_suffix(path: Path) -> str | None:
    """The supported suffix of a file name (case-insensitive), or None."""
    name = path.name.lower()
    return next((s for s in FILE_SUFFIXES if name.endswith(s)), None)


def read_image_volume(case_id: str, path: Path) -> Volume:
    """An image file's intensities (float32), 2D or 3D; NIfTI canonical with geometry."""
    if file_suffix(path) in NIFTI_SUFFIXES:
        return read_nifti(case_id, path, label=False)
    try:
        return Volume(read_image(path), path)
    except ImageFileError as err:
        raise CaseError(case_id, err.reason, path) from err


def read_label_volume(case_id: str, path: Path) -> Volume:
    """A label file's validated integer labels, 2D or 3D; NIfTI canonical with geometry."""
    if file_suffix(path) in NIFTI_SUFFIXES:
        return read_nifti(case_id, path, label=True)
    try:
        return Volume(np.asarray(read_mask(path)), path)
    except MaskFileError as err:
        raise CaseError(case_id, err.reason, path) from err


def stack_files(case_id: str, paths: Sequence[Path], read: Callable[[str, Path], Volume]) -> Volume:
    """One file as it is (2D becomes ``(H, W, 1)``), or 2D slices stacked on the last axis
    (without geometry)."""
    if len(paths) == 1:
        volume = read(case_id, paths[0])
        if volume.array.ndim == 2:
            volume.array = volume.array[..., np.newaxis]
        return volume
    slices: list[np.ndarray] = []
    for path in paths:
        array = read(case_id, path).array
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim != 2:
            raise CaseError(
                case_id, f"a 3D volume of shape {array.shape} among the 2D slices of a case", path
            )
        if slices and array.shape != slices[0].shape:
            raise CaseError(
                case_id,
                f"slice {path.name} has shape {array.shape}, slice {paths[0].name} has "
                f"{slices[0].shape}",
                path,
            )
        slices.append(array)
    return Volume(np.stack(slices, axis=-1), paths[0])
