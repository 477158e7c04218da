"""BraTS 2015 as redistributed with DeepMedic's examples (``shared/data/brats2015_subset``)::

    brats_2013_pat0001_1/
        Flair_subtrMeanDivStd.nii.gz   -> flair   (Flair_*.nii.gz)
        T1c_subtrMeanDivStd.nii.gz     -> t1c     (T1c_*.nii.gz)
        T1_*.nii.gz, T2_*.nii.gz       -> t1, t2  (optional: read when present)
        OTMultiClass.nii.gz            -> label (0, 1 necrosis, 2 oedema,
                                          3 non-enhancing, 4 enhancing)
        brainmask.nii.gz, License_*.txt   (ignored)

A case folder is any folder holding one of these files (the name is free), in ``root`` or
one level below (``HGG/``, ``LGG/``); case id = folder name. FLAIR, T1c and the label are
required; T1 and T2 are read where present (``modalities=`` makes any of them required).
The files are stored LPS (affine diag(-1, -1, 1)); canonical RAS flips the first two axes,
the shape stays 240 x 240 x 155.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from calfseg.data.sources.base import CaseFiles
from calfseg.data.sources.naming import file_names, find_case_dirs, has_case_dir, nifti_stem
from calfseg.data.sources.nifti import LABEL, NiftiLayout, unique_ids

# File-name prefix -> modality ("T1_" does not match "T1c_...").
_PREFIXES: dict[str, str] = {"Flair_": "flair", "T1c_": "t1c", "T1_": "t1", "T2_": "t2"}
_LABEL_STEM = "OTMultiClass"


def _role(name: str) -> str | None:
    stem = nifti_stem(name)
    if stem is None:
        return None
    if stem == _LABEL_STEM:
        return LABEL
    return next((m for prefix, m in _PREFIXES.items() if stem.startswith(prefix)), None)


def _is_case(folder: Path) -> bool:
    return any(_role(name) is not None for name in file_names(folder))


class Brats2015Source(NiftiLayout):
    name = "brats2015"
    description = "<case>/Flair_*.nii.gz, T1c_*.nii.gz [T1_*, T2_*], OTMultiClass.nii.gz"
    required_modalities: ClassVar[tuple[str, ...]] = ("flair", "t1c")
    optional_modalities: ClassVar[tuple[str, ...]] = ("t1", "t2")

    @classmethod
    def detect(cls, root: Path) -> bool:
        return has_case_dir(Path(root), _is_case)

    def find_cases(self, root: Path) -> list[CaseFiles]:
        cases = []
        for folder in find_case_dirs(Path(root), _is_case):
            found: dict[str, list[Path]] = {}
            for name in file_names(folder):
                role = _role(name)
                if role is not None:
                    found.setdefault(role, []).append(folder / name)
            expected = {m: f"{p}*.nii.gz" for p, m in _PREFIXES.items()}
            expected[LABEL] = f"{_LABEL_STEM}.nii.gz"
            cases.append(self.case_files(folder.name, folder, found, expected))
        return unique_ids(cases)
