"""NIfTI volumes in canonical orientation, and the base class of the layouts that store one
NIfTI file per modality and one label file per case.

Reading a file: the header, then the data once (decompression dominates the cost). Images
are read as float32 (``get_fdata(dtype=float32)``: no float64 copy), labels as stored and
validated as whole numbers. The array is then put in the closest canonical orientation,
RAS+, with ``nibabel.as_closest_canonical``: axis 0 runs left to right, axis 1 posterior to
anterior, axis 2 inferior to superior, so the last axis is axial. That is a permutation and
flips of the axes, never a resampling. The spacing is the header's zooms, permuted to match.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from calfseg.data.sources.base import MODALITIES, CaseError, CaseFiles, CaseVolumes, SourceReader
from calfseg.data.sources.naming import (
    file_names,
    find_case_dirs,
    has_case_dir,
    name_matcher,
    select_modalities,
    token_files,
)
from calfseg.data.sources.volumes import (
    CaseBuilder,
    Volume,
    compact_labels,
    fortran,
    label_values,
    raise_problems,
    read_failure,
)
from calfseg.extras import require

LABEL = "label"  # the role of the label file among a case's files


def read_nifti(case_id: str, path: Path, *, label: bool) -> Volume:
    """One NIfTI file as a canonical (RAS+) array: float32 for an image, validated integer
    labels for a label file. 2D files become ``(X, Y, 1)``; trailing length-1 axes beyond
    the third are dropped. Any failure is a :class:`CaseError` naming ``case_id`` and
    ``path``."""
    nibabel: Any = require("nibabel", "reading NIfTI files")
    try:
        image = nibabel.load(os.fspath(path))
        if label:
            data = np.asanyarray(image.dataobj)  # as stored (scaled to float if scl_slope)
        else:
            data = image.get_fdata(dtype=np.float32, caching="unchanged")
        affine = np.asarray(image.affine, dtype=np.float64)
        zooms = tuple(float(z) for z in image.header.get_zooms())
    except MemoryError:
        raise
    except Exception as err:  # nibabel, gzip, zlib and EOFError all signal a bad file
        damage = _gzip_damage(Path(path))
        if damage is not None:
            raise CaseError(case_id, f"corrupt or truncated gzip file ({damage})", path) from err
        raise read_failure(case_id, path, err) from err
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., np.newaxis]
    if data.ndim != 3:
        raise CaseError(case_id, f"expected a 3D volume, got shape {data.shape}", path)
    if label:
        data = compact_labels(label_values(case_id, data, path))
    # A header-less image around the array: as_closest_canonical then only permutes and
    # flips views of it (no copy, no dtype change); fortran() makes one contiguous copy.
    ornt = nibabel.orientations.io_orientation(affine)
    if np.isnan(ornt).any():
        raise CaseError(
            case_id, f"the affine has no clear axis directions: {affine.tolist()}", path
        )
    canonical = nibabel.as_closest_canonical(nibabel.Nifti1Image(data, affine, dtype=data.dtype))
    # The header's zooms, permuted like the axes (canonical axis ornt[i, 0] is stored axis i).
    padded = (*zooms, 1.0, 1.0, 1.0)
    spacing = [1.0, 1.0, 1.0]
    for axis, (target, _flip) in enumerate(ornt):
        spacing[int(target)] = padded[axis]
    return Volume(
        array=fortran(np.asanyarray(canonical.dataobj)),
        path=Path(path),
        affine=np.asarray(canonical.affine, dtype=np.float64),
        spacing=(spacing[0], spacing[1], spacing[2]),
    )


def _gzip_damage(path: Path) -> str | None:
    """Why a ``.gz`` file's stream is broken, or None. Only called after a failed read: a
    short truncated file makes nibabel say "Cannot work out file type", which hides the
    cause."""
    if not path.name.lower().endswith(".gz") or not path.is_file():
        return None
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 22):
                pass
    except (OSError, EOFError, zlib.error) as err:
        return f"{type(err).__name__}: {err}"
    return None


class NiftiLayout(SourceReader):
    """A layout with one NIfTI file per modality and one NIfTI label file per case.

    Subclasses find the files (``find_cases``, ``detect``) and hand each case to
    :meth:`case_files`; loading is shared. Option ``modalities``: which modalities to read
    (default: the layout's own); only those are listed, required and decompressed.
    """

    # Modalities every case must have by default, and those read when present.
    required_modalities: ClassVar[tuple[str, ...]] = MODALITIES
    optional_modalities: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, modalities: Iterable[str] | None = None) -> None:
        offered = self.required_modalities + self.optional_modalities
        self.modalities = (
            None if modalities is None else select_modalities(modalities, self.name, offered)
        )

    def case_files(
        self,
        case_id: str,
        folder: Path,
        found: Mapping[str, Sequence[Path]],
        expected: Mapping[str, str],
        *,
        problems: Iterable[str] = (),
        info: Mapping[str, str] | None = None,
        patient_id: str | None = None,
    ) -> CaseFiles:
        """One case from the files found for each role (a modality name, or ``"label"``).

        ``expected`` names the file each role should have, for the messages; a missing
        required modality or label, or two files for one role, becomes a problem.
        """
        issues = list(problems)
        if self.modalities is None:
            required: tuple[str, ...] = self.required_modalities
            wanted = required + tuple(m for m in self.optional_modalities if found.get(m))
        else:
            required = wanted = self.modalities
        images: dict[str, Path] = {}
        for modality in wanted:
            paths = found.get(modality, ())
            if len(paths) == 1:
                images[modality] = paths[0]
            elif len(paths) > 1:
                names = ", ".join(p.name for p in paths)
                issues.append(f"several {modality} files in {folder.name}: {names}")
            elif modality in required:
                issues.append(f"no {modality} file {expected[modality]} in {folder.name}")
        labels = found.get(LABEL, ())
        label = labels[0] if len(labels) == 1 else None
        if len(labels) > 1:
            issues.append(f"several label files: {', '.join(p.name for p in labels)}")
        elif not labels:
            issues.append(f"no label file {expected[LABEL]} for {folder.name}")
        files = tuple(images.values()) + ((label,) if label is not None else ())
        return CaseFiles(
            case_id=case_id,
            dataset=self.name,
            images=images,
            label=label,
            files=files,
            problems=tuple(issues),
            info=dict(info or {}),
            patient_id=patient_id,
        )

    def load(self, case: CaseFiles) -> CaseVolumes:
        raise_problems(case)
        if case.label is None:
            raise CaseError(case.case_id, "no label file")
        # The label first: small and quick, and a bad one stops the case early.
        builder = CaseBuilder(case, read_nifti(case.case_id, case.label, label=True))
        for modality, path in case.images.items():
            builder.add(modality, read_nifti(case.case_id, path, label=False))
        return builder.finish()


def unique_ids(cases: list[CaseFiles]) -> list[CaseFiles]:
    """Cases sorted by id; an id found in several folders keeps the first, with a problem
    naming the other copies (a root that holds two copies of a dataset)."""
    by_id: dict[str, list[CaseFiles]] = {}
    for case in cases:
        by_id.setdefault(case.case_id, []).append(case)
    result = []
    for case_id in sorted(by_id):
        first, *others = by_id[case_id]
        if others:
            where = ", ".join(str(c.files[0].parent) if c.files else "?" for c in others)
            first = replace(first, problems=(*first.problems, f"case id also found in {where}"))
        result.append(first)
    return result


class NamedFilesLayout(NiftiLayout):
    """One folder per case, holding ``<prefix><token>.nii.gz`` for each modality and for
    the label. Subclasses set ``case_dir`` (a folder-name pattern whose group ``id`` is the
    case id) and ``tokens``; the prefix is the folder name and ``_`` unless overridden."""

    case_dir: ClassVar[re.Pattern[str]]
    # Token as the dataset spells it (matched ignoring case) -> role (modality or "label").
    tokens: ClassVar[dict[str, str]]

    def prefix(self, folder: Path, case_id: str) -> str:
        """The literal text before the token in a case folder's file names."""
        return f"{folder.name}_"

    def prefix_pattern(self, folder: Path, case_id: str) -> re.Pattern[str]:
        """What may precede the token (the literal prefix unless a layout is laxer)."""
        return re.compile(re.escape(self.prefix(folder, case_id)))

    @classmethod
    def detect(cls, root: Path) -> bool:
        return has_case_dir(Path(root), name_matcher(cls.case_dir))

    def find_cases(self, root: Path) -> list[CaseFiles]:
        folders = find_case_dirs(Path(root), name_matcher(self.case_dir))
        return unique_ids([self._case(folder) for folder in folders])

    def _case(self, folder: Path) -> CaseFiles:
        match = self.case_dir.fullmatch(folder.name)
        assert match is not None
        case_id = match.group("id")
        pattern = self.prefix_pattern(folder, case_id)
        roles = token_files(file_names(folder), pattern, self.tokens)
        found = {role: [folder / name for name in names] for role, names in roles.items()}
        stem = self.prefix(folder, case_id)
        expected: dict[str, str] = {}
        for token, role in self.tokens.items():
            expected.setdefault(role, f"{stem}{token}.nii.gz")
        return self.case_files(case_id, folder, found, expected)
