"""From arrays read off disk to one checked :class:`CaseVolumes`: the checks every layout
shares (label values, empty or non-finite images, one shape, one affine).

Arrays are kept in Fortran order, the order NIfTI stores them in, so that an axial slice
``volume[..., k]`` is one contiguous block of memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calfseg.data.files.masks import DEFAULT_MAX_LABELS, MaskFileError, _as_label_array
from calfseg.data.sources.base import CaseError, CaseFiles, CaseVolumes

# Affines of one case's files may differ by this much (mm) from float rounding alone.
AFFINE_TOLERANCE = 1e-3


@dataclass
class Volume:
    """One array read from one file (or a stack of slice files, named by the first).

    ``affine`` and ``spacing`` are None where the file has no geometry (PNG, TIFF, NPY)."""

    array: np.ndarray
    path: Path
    affine: np.ndarray | None = None
    spacing: tuple[float, float, float] | None = None


def read_failure(case_id: str, path: Path, err: BaseException) -> CaseError:
    """The CaseError for a file that could not be read (missing, corrupt, truncated)."""
    return CaseError(case_id, f"cannot read the file ({type(err).__name__}: {err})", path)


def label_values(case_id: str, raw: np.ndarray, path: Path) -> np.ndarray:
    """Validate a label array (whole numbers, few distinct values, via the same rules as
    :func:`calfseg.data.files.masks.read_mask`) and return it as integers."""
    try:
        return _as_label_array(raw, path, DEFAULT_MAX_LABELS)
    except MaskFileError as err:
        raise CaseError(case_id, err.reason, path) from err


def compact_labels(array: np.ndarray) -> np.ndarray:
    """Integer labels as uint8 when they fit 0..255 (the usual case), else int32."""
    if array.dtype == np.uint8:
        return array
    lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
    dtype = np.uint8 if lo >= 0 and hi <= 255 else np.int32
    return array.astype(dtype, order="F", copy=False)


def fortran(array: np.ndarray) -> np.ndarray:
    """``array`` in Fortran order with positive strides (a copy only when needed)."""
    return np.asfortranarray(array)


class CaseBuilder:
    """Collects one case's volumes and checks each as it arrives, so that a bad file stops
    the case before the remaining (slow to decompress) files are read."""

    def __init__(self, case: CaseFiles, label: Volume) -> None:
        self.case = case
        self.label = label
        self.label.array = fortran(compact_labels(label.array))
        self.images: dict[str, np.ndarray] = {}
        # Geometry: taken from the first file that has any, and every other must agree.
        self._geometry: Volume | None = label if label.affine is not None else None

    def add(self, modality: str, volume: Volume) -> None:
        case_id, array = self.case.case_id, volume.array
        if array.shape != self.label.array.shape:
            raise CaseError(
                case_id,
                f"shape {array.shape} of {volume.path.name} differs from shape "
                f"{self.label.array.shape} of the label {self.label.path.name}",
                volume.path,
            )
        if not array.any():
            raise CaseError(case_id, f"empty volume: every voxel of {modality} is 0", volume.path)
        if not np.isfinite(array).all():
            raise CaseError(case_id, f"{modality} holds NaN or infinite values", volume.path)
        if volume.affine is not None:
            if self._geometry is None:
                self._geometry = volume
            else:
                self._check_affine(volume, self._geometry)
        self.images[modality] = fortran(array.astype(np.float32, copy=False))

    def _check_affine(self, volume: Volume, reference: Volume) -> None:
        assert volume.affine is not None and reference.affine is not None
        gap = float(np.max(np.abs(volume.affine - reference.affine)))
        if gap > AFFINE_TOLERANCE:
            raise CaseError(
                self.case.case_id,
                f"the affine of {volume.path.name} differs from that of "
                f"{reference.path.name} by up to {gap:.4g} mm (tolerance {AFFINE_TOLERANCE} mm)",
                volume.path,
            )

    def finish(self) -> CaseVolumes:
        if not self.images:
            raise CaseError(self.case.case_id, "no image volume to load")
        geometry = self._geometry
        if geometry is None or geometry.affine is None:
            affine, spacing = np.eye(4), (1.0, 1.0, 1.0)
        else:
            affine = geometry.affine
            spacing = geometry.spacing or (1.0, 1.0, 1.0)
        return CaseVolumes(
            case_id=self.case.case_id,
            dataset=self.case.dataset,
            images=self.images,
            label=self.label.array,
            spacing=spacing,
            affine=affine,
        )


def raise_problems(case: CaseFiles) -> None:
    """Refuse to load a case that was listed with problems."""
    if case.problems:
        raise CaseError(case.case_id, "; ".join(case.problems))
