"""BraTS 2023 (and later) naming, the one the paper's BraTS cases used::

    BraTS-GLI-00000-000/
        BraTS-GLI-00000-000-t2f.nii.gz   -> flair
        BraTS-GLI-00000-000-t1n.nii.gz   -> t1
        BraTS-GLI-00000-000-t1c.nii.gz   -> t1c
        BraTS-GLI-00000-000-t2w.nii.gz   -> t2
        BraTS-GLI-00000-000-seg.nii.gz   -> label (0, 1 necrosis, 2 oedema, 3 enhancing)

The other 2023 challenges (``BraTS-MEN-``, ``-MET-``, ``-PED-``, ``-SSA-``) name their files
the same way and are read too. Case folders in ``root`` or one level below; case id =
folder name. Validation folders without ``-seg`` are listed with a problem.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from calfseg.data.sources.nifti import LABEL, NamedFilesLayout


class Brats2023Source(NamedFilesLayout):
    name = "brats2023"
    description = "BraTS-GLI-NNNNN-NNN/BraTS-GLI-NNNNN-NNN-{t2f,t1n,t1c,t2w,seg}.nii.gz"
    case_dir: ClassVar[re.Pattern[str]] = re.compile(r"(?P<id>BraTS-[A-Z]{2,4}-\d{5}-\d{3})")
    tokens: ClassVar[dict[str, str]] = {
        "t2f": "flair",
        "t1n": "t1",
        "t1c": "t1c",
        "t2w": "t2",
        "seg": LABEL,
    }

    def prefix(self, folder: Path, case_id: str) -> str:
        return f"{folder.name}-"
