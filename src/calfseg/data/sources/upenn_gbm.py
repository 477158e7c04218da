"""UPENN-GBM (TCIA, the ``NIfTI-files`` folder)::

    images_structural/
        UPENN-GBM-00001_11/
            UPENN-GBM-00001_11_FLAIR.nii.gz   -> flair
            UPENN-GBM-00001_11_T1.nii.gz      -> t1
            UPENN-GBM-00001_11_T1GD.nii.gz    -> t1c
            UPENN-GBM-00001_11_T2.nii.gz      -> t2
    automated_segm/
        UPENN-GBM-00001_11_automated_approx_segm.nii.gz   -> label (labels="automated")
    images_segm/
        UPENN-GBM-00001_11_segm.nii.gz                    -> label (labels="manual")

``root`` is the folder holding ``images_structural/`` or its parent. Labels: 0, 1 necrosis,
2 oedema, 4 enhancing.

Option ``labels``: ``"automated"`` (default; what the paper used) reads ``automated_segm``;
``"manual"`` prefers the manually revised ``images_segm`` file and falls back to the
automated one for a case without it. ``CaseFiles.info["label"]`` records which was used.

Case id: the patient, ``UPENN-GBM-00001``; ``_11`` is the time point (scan), kept in the id
(``UPENN-GBM-00001_11``, ``UPENN-GBM-00001_21``) for a patient with several scans.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from calfseg.data.sources.base import CaseFiles
from calfseg.data.sources.naming import child_dirs, file_names, token_files
from calfseg.data.sources.nifti import LABEL, NiftiLayout, unique_ids
from calfseg.errors import check_choice

STRUCTURAL = "images_structural"
AUTOMATED = "automated_segm"
MANUAL = "images_segm"
LABEL_CHOICES: tuple[str, ...] = ("automated", "manual")
_SCAN = re.compile(r"(?P<patient>UPENN-GBM-\d{5})_(?P<time>\d+)")
_TOKENS: dict[str, str] = {"FLAIR": "flair", "T1": "t1", "T1GD": "t1c", "T2": "t2"}


def _base(root: Path) -> Path | None:
    """The folder holding images_structural/: root or one of its children."""
    if (root / STRUCTURAL).is_dir():
        return root
    return next((d for d in child_dirs(root) if (d / STRUCTURAL).is_dir()), None)


def _label_file(names: set[str], stem: str) -> str | None:
    return next((stem + s for s in (".nii.gz", ".nii") if stem + s in names), None)


class UpennGbmSource(NiftiLayout):
    name = "upenn-gbm"
    description = (
        "images_structural/UPENN-GBM-NNNNN_11/UPENN-GBM-NNNNN_11_{FLAIR,T1,T1GD,T2}.nii.gz + "
        "automated_segm/*_automated_approx_segm.nii.gz or images_segm/*_segm.nii.gz"
    )
    required_modalities: ClassVar[tuple[str, ...]] = ("flair", "t1", "t1c", "t2")

    def __init__(
        self, *, modalities: Iterable[str] | None = None, labels: str = "automated"
    ) -> None:
        super().__init__(modalities=modalities)
        check_choice("labels", labels, LABEL_CHOICES)
        self.labels = labels

    @classmethod
    def detect(cls, root: Path) -> bool:
        return _base(Path(root)) is not None

    def find_cases(self, root: Path) -> list[CaseFiles]:
        base = _base(Path(root))
        if base is None:
            return []
        scans = [
            (folder, match)
            for folder in child_dirs(base / STRUCTURAL)
            if (match := _SCAN.fullmatch(folder.name)) is not None
        ]
        per_patient: dict[str, int] = {}
        for _, match in scans:
            per_patient[match["patient"]] = per_patient.get(match["patient"], 0) + 1
        automated = set(file_names(base / AUTOMATED))
        manual = set(file_names(base / MANUAL)) if self.labels == "manual" else set()
        cases = []
        for folder, match in scans:
            scan = folder.name
            case_id = scan if per_patient[match["patient"]] > 1 else match["patient"]
            roles = token_files(file_names(folder), re.compile(re.escape(scan + "_")), _TOKENS)
            found = {role: [folder / n for n in names] for role, names in roles.items()}
            expected = {m: f"{scan}_{t}.nii.gz" for t, m in _TOKENS.items()}
            auto_name = _label_file(automated, f"{scan}_automated_approx_segm")
            manual_name = _label_file(manual, f"{scan}_segm")
            info: dict[str, str] = {}
            if manual_name is not None:
                found[LABEL] = [base / MANUAL / manual_name]
                info["label"] = "manual"
            elif auto_name is not None:
                found[LABEL] = [base / AUTOMATED / auto_name]
                info["label"] = "automated"
            expected[LABEL] = f"{AUTOMATED}/{scan}_automated_approx_segm.nii.gz"
            if self.labels == "manual":
                expected[LABEL] = f"{MANUAL}/{scan}_segm.nii.gz or {expected[LABEL]}"
            cases.append(
                self.case_files(
                    case_id, folder, found, expected, info=info, patient_id=match["patient"]
                )
            )
        return unique_ids(cases)
