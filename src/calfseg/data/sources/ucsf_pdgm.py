"""UCSF-PDGM (TCIA, versions 3 to 5)::

    UCSF-PDGM-0004_nifti/
        UCSF-PDGM-0004_FLAIR.nii.gz                -> flair
        UCSF-PDGM-0004_T1.nii.gz                   -> t1
        UCSF-PDGM-0004_T1c.nii.gz                  -> t1c
        UCSF-PDGM-0004_T2.nii.gz                   -> t2
        UCSF-PDGM-0004_tumor_segmentation.nii.gz   -> label (0, 1, 2, 4 as in BraTS)
        UCSF-PDGM-0004_ADC.nii.gz, _DWI, _SWI, _ASL, _FLAIR_bias, _brain_segmentation, ...
                                                    (ignored)

Case id = the folder name without ``_nifti`` (``UCSF-PDGM-0004``). The files may be
``.nii`` or ``.nii.gz``, and their number may have another width than the folder's (the
metadata sheet writes ``UCSF-PDGM-004``): any ``UCSF-PDGM-<digits>_`` prefix is accepted.
Case folders in ``root`` or one level below (e.g. ``PKG - UCSF-PDGM-v3/UCSF-PDGM-v3/``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from calfseg.data.sources.nifti import LABEL, NamedFilesLayout

_FILE_PREFIX = re.compile(r"UCSF-PDGM-\d+_")


class UcsfPdgmSource(NamedFilesLayout):
    name = "ucsf-pdgm"
    description = "UCSF-PDGM-NNNN_nifti/UCSF-PDGM-NNNN_{FLAIR,T1,T1c,T2,tumor_segmentation}.nii.gz"
    case_dir: ClassVar[re.Pattern[str]] = re.compile(r"(?P<id>UCSF-PDGM-\d+)_nifti")
    tokens: ClassVar[dict[str, str]] = {
        "FLAIR": "flair",
        "T1": "t1",
        "T1c": "t1c",
        "T2": "t2",
        "tumor_segmentation": LABEL,
    }

    def prefix(self, folder: Path, case_id: str) -> str:
        return f"{case_id}_"

    def prefix_pattern(self, folder: Path, case_id: str) -> re.Pattern[str]:
        return _FILE_PREFIX
