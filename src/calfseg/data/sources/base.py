"""The one interface every dataset layout implements: find the cases under a root folder,
then load one case's volumes.

A *case* is one patient (or one subject of a manifest). Loading gives every modality volume
and the label volume as arrays in the same canonical orientation (RAS+, via
``nibabel.as_closest_canonical`` for NIfTI), so that the LAST axis is axial (inferior to
superior) everywhere; 2D sources (PNG/TIFF slices) stack their slices along that last axis.
A slice ``k`` is therefore ``volume[..., k]``, indexed ``[i, j]`` by the first two axes.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from calfseg.errors import DataValueError

# Modality names after normalisation across layouts (T1GD, t1ce and T1c are all "t1c").
MODALITIES: tuple[str, ...] = ("flair", "t1", "t1c", "t2")


class CaseError(DataValueError):
    """A case cannot be read; the message names the case and, where known, the file."""

    def __init__(self, case_id: str, reason: str, path: str | os.PathLike[str] | None = None):
        self.case_id = case_id
        self.path = None if path is None else Path(path)
        self.reason = reason
        where = f" ({self.path})" if self.path is not None else ""
        super().__init__(f"case {case_id}{where}: {reason}")


@dataclass(frozen=True)
class CaseFiles:
    """Where one case's data lies. ``images`` maps a normalised modality name to its file
    (a 2D source maps to the folder of slices or a list-like manifest entry); ``files`` lists
    every file that contributes, for checksums and change detection. Generated sources
    (synthetic data) have no files."""

    case_id: str
    dataset: str
    images: dict[str, Path]
    label: Path | None
    files: tuple[Path, ...] = ()
    # What was found wrong while listing (e.g. "no label file *_seg.nii.gz"): the case is
    # still listed, and load() raises CaseError with these reasons, so that
    # ``--on-error skip`` can skip it and go on.
    problems: tuple[str, ...] = ()
    # What the reader chose or could not know, for the record (e.g. {"label": "manual"} for
    # UPENN-GBM, {"spacing": "unknown"} for 2D slices without geometry).
    info: dict[str, str] = field(default_factory=dict)
    # The patient, where one patient has several cases (e.g. UPENN-GBM time points _11 and
    # _21); None means the case is the patient. Splits keep a patient's cases together.
    patient_id: str | None = None

    @property
    def patient(self) -> str:
        """The id that splits group by: ``patient_id``, or the case id."""
        return self.patient_id or self.case_id


@dataclass
class CaseVolumes:
    """One loaded case: arrays of one shape ``(X, Y, Z)`` (Z axial), canonical orientation.

    ``images`` maps modality -> float32 array; ``label`` is an integer array (0 background);
    ``spacing`` is the voxel size in mm along each axis; ``affine`` the 4x4 voxel-to-world
    matrix of the canonical arrays (identity-like for 2D sources without geometry).
    """

    case_id: str
    dataset: str
    images: dict[str, np.ndarray]
    label: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))


class SourceReader(ABC):
    """A dataset layout. Subclasses set ``name`` and ``description`` and implement the three
    methods; the registry in :mod:`calfseg.data.sources` finds them by name and detection."""

    name: ClassVar[str]
    description: ClassVar[str]  # one line: the file naming it expects

    @classmethod
    @abstractmethod
    def detect(cls, root: Path) -> bool:
        """True when ``root`` looks like this layout (cheap: names only, no file reads)."""

    @abstractmethod
    def find_cases(self, root: Path) -> list[CaseFiles]:
        """All cases under ``root``, sorted by case id. A case with a missing required file is
        listed with ``problems`` set; raising here is only for a root that is unusable."""

    @abstractmethod
    def load(self, case: CaseFiles) -> CaseVolumes:
        """Read one case; CaseError naming the file on a missing, corrupt or inconsistent
        file (shape or affine mismatch, non-integer labels, empty volume)."""
