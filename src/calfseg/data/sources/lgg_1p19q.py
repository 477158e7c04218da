"""LGG-1p19qDeletion (TCIA; Akkus et al. 2017): 159 low-grade glioma patients, T1 and T2 MRI
with a tumour segmentation. The paper's fourth dataset; the authors used T2 only.

TCIA distributes the collection as DICOM only (a T2 series and a ``Tumor segmentation``
DICOM-SEG series per patient), which this reader does not read: convert it first, to one
of the two layouts below (docs/sources.md gives the commands).

Slices, the layout the authors' notebook (``datasets_preprocessing/LGG/LGG_process.ipynb``)
writes and their loader reads::

    LGG/                                  root = this folder or its parent
        LGG-104/
            T2/t2_slice_01.png ...        one 2D slice per file -> t2
            Segmentation/tumor_slice_1.png ...   its mask (0 / 255)

An image and its mask are paired by the LAST whole number in their file names (01 and 1 are
slice 1, as the authors' loader does) and stacked on the last axis in that order, giving
``(H, W, K)`` volumes indexed [row, column, slice]; the slices have no geometry, so the
spacing is reported as (1, 1, 1) with ``CaseFiles.info["spacing"] = "unknown"``.

NIfTI, one volume per series (e.g. dcm2niix for the T2 series, dcmqi ``segimage2itkimage``
for the segmentation)::

    LGG-104/
        T2.nii.gz            or LGG-104_T2.nii.gz                     -> t2
        Segmentation.nii.gz  or LGG-104_seg.nii.gz (also _mask, _label) -> label

Case id = the patient folder (``LGG-104``). Only T2 is read by default; ``modalities=`` reads
other folders or files named by a modality (``T1``, ``T1C``, ``FLAIR``, any spelling known to
:func:`~calfseg.data.sources.naming.normalise_modality`). The mask was drawn on T2, so
another modality must be registered to it (same shape) or the case fails to load. Whole
tumour = label > 0, as for every layout.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from calfseg.data.sources.base import MODALITIES, CaseError, CaseFiles, CaseVolumes
from calfseg.data.sources.files import read_image_volume, read_label_volume, stack_files
from calfseg.data.sources.naming import (
    MODALITY_ALIASES,
    child_dirs,
    file_names,
    find_case_dirs,
    has_case_dir,
    name_matcher,
    select_modalities,
    token_files,
)
from calfseg.data.sources.nifti import LABEL, NiftiLayout, unique_ids
from calfseg.data.sources.volumes import CaseBuilder, raise_problems

_CASE_DIR = re.compile(r"LGG-\d+")
_MASK_DIR = "segmentation"  # the mask folder of the slice layout, any case
_SLICE_SUFFIXES = (".png", ".tif", ".tiff")
_LAST_NUMBER = re.compile(r"(\d+)\D*$")
_LABEL_TOKENS = ("seg", "segmentation", "mask", "label")
# File-name tokens of the NIfTI layout (matched ignoring case) -> role.
_TOKENS: dict[str, str] = {
    **MODALITY_ALIASES,
    **{token: LABEL for token in _LABEL_TOKENS},
}
SLICES, NIFTI = "slices", "nifti"  # CaseFiles.info["format"]


def slice_number(name: str) -> int | None:
    """The last whole number in a file name without its suffix (``t2_slice_01.png`` -> 1)."""
    match = _LAST_NUMBER.search(Path(name).stem)
    return None if match is None else int(match.group(1))


def _numbered(folder: Path, problems: list[str]) -> dict[int, Path]:
    """The slice files of ``folder`` by number; a name without a number or a number used
    twice is a problem."""
    found: dict[int, Path] = {}
    for name in file_names(folder):
        if not name.lower().endswith(_SLICE_SUFFIXES):
            continue
        number = slice_number(name)
        if number is None:
            problems.append(f"no slice number in the name {folder.name}/{name}")
        elif number in found:
            problems.append(
                f"slice {number} twice in {folder.name}: {found[number].name} and {name}"
            )
        else:
            found[number] = folder / name
    return found


class Lgg1p19qSource(NiftiLayout):
    name = "lgg-1p19q"
    description = (
        "LGG-NNN/{T2,Segmentation}/*_K.png (the authors' slices) or "
        "LGG-NNN/[LGG-NNN_]{T2,Segmentation}.nii.gz"
    )
    required_modalities: ClassVar[tuple[str, ...]] = ("t2",)  # the authors used T2 only

    def __init__(self, *, modalities: Iterable[str] | None = None) -> None:
        super().__init__()
        self.modalities = (
            None if modalities is None else select_modalities(modalities, self.name, MODALITIES)
        )

    @property
    def wanted(self) -> tuple[str, ...]:
        return self.required_modalities if self.modalities is None else self.modalities

    @classmethod
    def detect(cls, root: Path) -> bool:
        return has_case_dir(Path(root), name_matcher(_CASE_DIR))

    def find_cases(self, root: Path) -> list[CaseFiles]:
        folders = find_case_dirs(Path(root), name_matcher(_CASE_DIR))
        return unique_ids([self._case(folder) for folder in folders])

    def _case(self, folder: Path) -> CaseFiles:
        subfolders = {d.name.lower(): d for d in child_dirs(folder)}
        if _MASK_DIR in subfolders:
            return self._slice_case(folder, subfolders)
        return self._nifti_case(folder)

    def _nifti_case(self, folder: Path) -> CaseFiles:
        prefix = re.compile(rf"(?:{re.escape(folder.name)}[_-])?")
        roles = token_files(file_names(folder), prefix, _TOKENS)
        found = {role: [folder / name for name in names] for role, names in roles.items()}
        expected = {m: f"{m.upper()}.nii.gz" for m in MODALITIES}
        expected[LABEL] = "Segmentation.nii.gz"
        problems = []
        if not roles and not any(n.lower().endswith(_SLICE_SUFFIXES) for n in file_names(folder)):
            problems.append(
                f"{folder.name} holds no NIfTI files and no Segmentation/ folder of slices: "
                "TCIA's DICOM files must be converted first (docs/sources.md, lgg-1p19q)"
            )
        return self.case_files(
            folder.name, folder, found, expected, problems=problems, info={"format": NIFTI}
        )

    def _slice_case(self, folder: Path, subfolders: dict[str, Path]) -> CaseFiles:
        problems: list[str] = []
        masks = _numbered(subfolders[_MASK_DIR], problems)
        if not masks:
            problems.append(f"no mask slices in {folder.name}/{subfolders[_MASK_DIR].name}")
        by_modality: dict[str, Path] = {}
        for name, sub in subfolders.items():
            modality = MODALITY_ALIASES.get(name)
            if modality in self.wanted and modality in by_modality:
                problems.append(
                    f"several {modality} folders in {folder.name}: {by_modality[modality].name}, "
                    f"{sub.name}"
                )
            elif modality in self.wanted:
                by_modality[modality] = sub
        images: dict[str, Path] = {}
        files: list[Path] = []
        for modality in self.wanted:
            if modality not in by_modality:
                problems.append(f"no {modality.upper()} folder of slices in {folder.name}")
                continue
            path = images[modality] = by_modality[modality]
            slices = _numbered(path, problems)
            if not slices:
                problems.append(f"no image slices in {folder.name}/{path.name}")
            for k in sorted(set(slices) - set(masks))[:10]:
                problems.append(f"no mask for slice {k} ({path.name}/{slices[k].name})")
            for k in sorted(set(masks) - set(slices))[:10]:
                problems.append(f"no {path.name} slice for the mask {masks[k].name}")
            files.extend(slices[k] for k in sorted(slices))
        files.extend(masks[k] for k in sorted(masks))
        return CaseFiles(
            case_id=folder.name,
            dataset=self.name,
            images=images,
            label=subfolders[_MASK_DIR] if masks else None,
            files=tuple(files),
            problems=tuple(problems),
            info={"format": SLICES, "spacing": "unknown"},
        )

    def load(self, case: CaseFiles) -> CaseVolumes:
        if case.info.get("format") != SLICES:
            return super().load(case)
        raise_problems(case)
        if case.label is None:
            raise CaseError(case.case_id, "no mask slices")
        # The files of one folder, in slice-number order (find_cases listed them sorted).
        in_folder: dict[Path, list[Path]] = {}
        for path in case.files:
            in_folder.setdefault(path.parent, []).append(path)
        label = stack_files(case.case_id, in_folder.get(case.label, []), read_label_volume)
        builder = CaseBuilder(case, label)
        for modality, folder in case.images.items():
            builder.add(
                modality, stack_files(case.case_id, in_folder.get(folder, []), read_image_volume)
            )
        return builder.finish()
