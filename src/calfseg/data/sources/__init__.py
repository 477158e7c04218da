"""Dataset sources: one reader per layout on disk, found by name or by auto-detection.

    reader, message = open_source("data/BraTS2021")      # "layout: brats2021 (detected)"
    for case in reader.find_cases(Path("data/BraTS2021")):
        volumes = reader.load(case)                        # CaseVolumes, canonical RAS

See ``docs/sources.md`` for each layout's tree, the manifest format and the errors.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from calfseg.data.sources.base import (
    MODALITIES,
    CaseError,
    CaseFiles,
    CaseVolumes,
    SourceReader,
)
from calfseg.data.sources.brats2015 import Brats2015Source
from calfseg.data.sources.brats2021 import Brats2021Source
from calfseg.data.sources.brats2023 import Brats2023Source
from calfseg.data.sources.folder import FolderSource
from calfseg.data.sources.lgg_1p19q import Lgg1p19qSource
from calfseg.data.sources.lgg_kaggle import LggKaggleSource
from calfseg.data.sources.nnunet import NnUNetSource
from calfseg.data.sources.ucsf_pdgm import UcsfPdgmSource
from calfseg.data.sources.upenn_gbm import UpennGbmSource
from calfseg.errors import DataValueError, OptionError, unknown_choice

SOURCES: dict[str, type[SourceReader]] = {
    cls.name: cls
    for cls in (
        Brats2015Source,
        Brats2021Source,
        Brats2023Source,
        UcsfPdgmSource,
        UpennGbmSource,
        LggKaggleSource,
        Lgg1p19qSource,
        NnUNetSource,
        FolderSource,
    )
}
AUTO = "auto"


def _known() -> str:
    return ", ".join(SOURCES)


def get_source(name: str, **options: Any) -> SourceReader:
    """The reader of layout ``name``, built with ``options`` (e.g. ``labels="manual"`` for
    upenn-gbm, ``manifest=...`` for folder, ``modalities=[...]`` for all).

    Raises:
        ValueError: unknown layout, or an option the layout does not take.
    """
    cls = SOURCES.get(name)
    if cls is None:
        raise unknown_choice("layout", name, SOURCES, valid="known layouts")
    accepted = [
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) or "no options"
        raise OptionError(
            f"layout {name!r} does not take the option(s) {', '.join(unknown)} (it takes: {takes})"
        )
    return cls(**options)


def detect_layout(root: str | Path) -> str:
    """The one layout whose ``detect`` accepts ``root`` (file names only, nothing is read).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no layout matches (the message lists them and points to a CSV manifest),
            or several do (the message names them).
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"no such file or folder: {root}")
    matches = [name for name, cls in SOURCES.items() if cls.detect(root)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        lines = "\n".join(f"  {name}: {cls.description}" for name, cls in SOURCES.items())
        raise DataValueError(
            f"cannot tell the layout of {root}: it matches none of the known layouts:\n{lines}\n"
            "Name the layout with --layout NAME, or describe the data in a CSV manifest "
            "(case_id,image,mask[,modality]) and use --layout folder --manifest FILE."
        )
    raise DataValueError(
        f"{root} matches several layouts ({', '.join(matches)}); name one with --layout"
    )


def open_source(root: str | Path, layout: str = AUTO, **options: Any) -> tuple[SourceReader, str]:
    """The reader for ``root`` and a one-line message saying which layout was chosen
    (``"layout: brats2021 (detected)"`` or ``"layout: folder (given)"``)."""
    if layout == AUTO:
        name, how = detect_layout(root), "detected"
    else:
        name, how = layout, "given"
    return get_source(name, **options), f"layout: {name} ({how})"


__all__ = [
    "MODALITIES",
    "SOURCES",
    "Brats2015Source",
    "Brats2021Source",
    "Brats2023Source",
    "CaseError",
    "CaseFiles",
    "CaseVolumes",
    "FolderSource",
    "Lgg1p19qSource",
    "LggKaggleSource",
    "NnUNetSource",
    "SourceReader",
    "UcsfPdgmSource",
    "UpennGbmSource",
    "detect_layout",
    "get_source",
    "open_source",
]
