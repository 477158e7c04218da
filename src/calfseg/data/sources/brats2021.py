"""BraTS 2021 (RSNA-ASNR-MICCAI), and BraTS 2020 whose naming is the same::

    BraTS2021_00000/
        BraTS2021_00000_flair.nii.gz   -> flair
        BraTS2021_00000_t1.nii.gz      -> t1
        BraTS2021_00000_t1ce.nii.gz    -> t1c
        BraTS2021_00000_t2.nii.gz      -> t2
        BraTS2021_00000_seg.nii.gz     -> label (0, 1 necrosis, 2 oedema, 4 enhancing)

BraTS 2020 folders are ``BraTS20_Training_001`` (or ``_Validation_``). The case folders may
sit in ``root`` or one level below it (e.g. ``root/..._TrainingData/``). Case id = folder.
"""

from __future__ import annotations

import re
from typing import ClassVar

from calfseg.data.sources.nifti import LABEL, NamedFilesLayout


class Brats2021Source(NamedFilesLayout):
    name = "brats2021"
    description = "BraTS2021_NNNNN/BraTS2021_NNNNN_{flair,t1,t1ce,t2,seg}.nii.gz"
    case_dir: ClassVar[re.Pattern[str]] = re.compile(
        r"(?P<id>BraTS2021_\d{5}|BraTS20_(?:Training|Validation)_\d{3})"
    )
    tokens: ClassVar[dict[str, str]] = {
        "flair": "flair",
        "t1": "t1",
        "t1ce": "t1c",
        "t2": "t2",
        "seg": LABEL,
    }
