"""Which files of a dataset folder are its lesion labels, as the layout readers of
``calf prepare`` know them (``calf analyze FOLDER``).

A dataset folder holds scans, brain masks, licences and labels side by side; a plain search
for mask-like files would count a BraTS ``brainmask.nii.gz`` as a lesion mask. When the
folder matches exactly one known layout (:func:`calfseg.data.sources.detect_layout`), the
layout's reader lists the cases, and each case names its label:

- NIfTI layouts (BraTS, UCSF-PDGM, UPENN-GBM, ...): the case's one label file;
- ``folder`` (a CSV manifest): every file of the ``mask`` column;
- ``lgg-kaggle``: the ``*_mask.tif`` slices of the case folder;
- ``lgg-1p19q`` slices: every file of the ``Segmentation/`` folder.

Listing reads file names only, never file contents.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

LAYOUT_AUTO = "auto"
LAYOUT_NONE = "none"  # no layout: every mask-like file below the folder


@dataclass(frozen=True)
class LayoutLabels:
    """The label files of a dataset folder, found through its layout reader."""

    layout: str
    files: list[Path]
    # Cases listed without a usable label file, as "case: reason".
    problems: list[str] = field(default_factory=list)


def layout_label_files(
    root: str | os.PathLike[str], layout: str = LAYOUT_AUTO
) -> LayoutLabels | None:
    """The label files of the dataset folder ``root``, or None when ``layout`` is
    ``"auto"`` and the folder matches no known layout, or several (then every mask-like
    file is searched, as before).

    Raises:
        ValueError: a named ``layout`` that is unknown or cannot read ``root`` (the message
            names the known layouts).
    """
    from calfseg.data.sources import detect_layout, get_source

    root = Path(root)
    if layout == LAYOUT_NONE or not root.is_dir():
        return None
    if layout == LAYOUT_AUTO:
        try:
            layout = detect_layout(root)
        except ValueError:  # no layout, or several: fall back to the plain search
            return None
    reader = get_source(layout)
    files: list[Path] = []
    problems: list[str] = []
    for case in reader.find_cases(root):
        labels = _case_labels(layout, root, case)
        if not labels:
            reason = "; ".join(case.problems) or "no label file"
            problems.append(f"{case.case_id}: {reason}")
        files.extend(labels)
    return LayoutLabels(layout, list(dict.fromkeys(files)), problems)


def _case_labels(layout: str, root: Path, case: object) -> list[Path]:
    from calfseg.data.sources.base import CaseFiles

    assert isinstance(case, CaseFiles)
    if layout == "folder":
        return _manifest_masks(root, case.case_id)
    if case.label is None:
        return []
    if case.label.is_dir() and case.label not in case.images.values():  # lgg-1p19q slices
        return [f for f in case.files if f.parent == case.label]  # a folder of masks only
    if case.label.is_dir():  # 2D slices in the case folder (lgg-kaggle): the *_mask files
        return [f for f in case.files if f.parent == case.label and "_mask" in f.name]
    return [case.label]


def _manifest_masks(root: Path, case_id: str) -> list[Path]:
    from calfseg.data.sources.folder import find_manifest, read_manifest

    rows = read_manifest(find_manifest(root)).get(case_id, [])
    return [row.mask for row in rows if row.mask is not None]
