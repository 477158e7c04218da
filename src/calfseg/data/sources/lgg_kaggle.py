"""LGG segmentation dataset of Kaggle (Buda et al., TCGA lower-grade gliomas)::

    kaggle_3m/
        TCGA_CS_4941_19960909/
            TCGA_CS_4941_19960909_1.tif        RGB slice 1: channel 0 pre-contrast -> t1,
                                                 1 FLAIR -> flair, 2 post-contrast -> t1c
            TCGA_CS_4941_19960909_1_mask.tif   its mask, 0 / 255 in one channel
            TCGA_CS_4941_19960909_2.tif ...
        data.csv, README.md   (ignored)

``root`` is ``kaggle_3m/`` or a folder holding it. Case id = the patient folder name. Slices
are ordered by the integer ``K`` (2 before 10) and stacked on the last axis, giving
``(H, W, K)`` volumes indexed [row, column, slice]: the images have no geometry, so the
orientation is the one of the pictures and the spacing is unknown, reported as
(1, 1, 1) with ``CaseFiles.info["spacing"] = "unknown"``. Masks are read as labels 0 / 1.
A slice without its mask, a mask without its slice, or a gap in ``K`` is a problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from calfseg.data.files.masks import MaskFileError, read_mask
from calfseg.data.sources.base import CaseError, CaseFiles, CaseVolumes, SourceReader
from calfseg.data.sources.naming import (
    file_names,
    find_case_dirs,
    has_case_dir,
    name_matcher,
    select_modalities,
)
from calfseg.data.sources.nifti import unique_ids
from calfseg.data.sources.volumes import CaseBuilder, Volume, raise_problems, read_failure
from calfseg.extras import require

CHANNELS: dict[str, int] = {"t1": 0, "flair": 1, "t1c": 2}
_CASE_DIR = re.compile(r"TCGA_[A-Z0-9]{2}_[A-Z0-9]{4}_\d{8}")
_SLICE = re.compile(r"(?P<case>.+)_(?P<k>\d+)(?P<mask>_mask)?\.tiff?", re.IGNORECASE)


def _slices(case: CaseFiles) -> list[tuple[int, Path, Path]]:
    """(K, image, mask) of each slice, in K order, from the case's files."""
    images: dict[int, Path] = {}
    masks: dict[int, Path] = {}
    for path in case.files:
        match = _SLICE.fullmatch(path.name)
        if match is not None:
            (masks if match["mask"] else images)[int(match["k"])] = path
    return [(k, images[k], masks[k]) for k in sorted(images) if k in masks]


class LggKaggleSource(SourceReader):
    name = "lgg-kaggle"
    description = "kaggle_3m/TCGA_XX_NNNN_YYYYMMDD/TCGA_..._K.tif + TCGA_..._K_mask.tif"
    modalities_offered: ClassVar[tuple[str, ...]] = ("flair", "t1", "t1c")

    def __init__(self, *, modalities: Iterable[str] | None = None) -> None:
        self.modalities = (
            self.modalities_offered
            if modalities is None
            else select_modalities(modalities, self.name, self.modalities_offered)
        )

    @classmethod
    def detect(cls, root: Path) -> bool:
        return has_case_dir(Path(root), name_matcher(_CASE_DIR))

    def find_cases(self, root: Path) -> list[CaseFiles]:
        cases = [self._case(d) for d in find_case_dirs(Path(root), name_matcher(_CASE_DIR))]
        return unique_ids(cases)

    def _case(self, folder: Path) -> CaseFiles:
        images: dict[int, Path] = {}
        masks: dict[int, Path] = {}
        for name in file_names(folder):
            match = _SLICE.fullmatch(name)
            if match is not None and match["case"] == folder.name:
                (masks if match["mask"] else images)[int(match["k"])] = folder / name
        problems = []
        if not images:
            problems.append(f"no image slice {folder.name}_K.tif in {folder.name}")
        if images and not masks:
            problems.append(f"no label file {folder.name}_K_mask.tif in {folder.name}")
        else:
            for k in sorted(set(images) - set(masks)):
                problems.append(f"no mask file {images[k].stem}_mask.tif for {images[k].name}")
            for k in sorted(set(masks) - set(images)):
                problems.append(f"no image file for the mask {masks[k].name}")
        present = sorted(set(images) | set(masks))
        gaps = sorted(set(range(1, present[-1] + 1)) - set(present)) if present else []
        if gaps:
            listed = ", ".join(str(k) for k in gaps[:10]) + (" ..." if len(gaps) > 10 else "")
            problems.append(f"slices missing in {folder.name}: K = {listed}")
        files: list[Path] = []
        for k in present:
            files.extend(p for p in (images.get(k), masks.get(k)) if p is not None)
        return CaseFiles(
            case_id=folder.name,
            dataset=self.name,
            images={m: folder for m in self.modalities},
            label=folder if masks else None,
            files=tuple(files),
            problems=tuple(problems),
            info={"spacing": "unknown"},
        )

    def load(self, case: CaseFiles) -> CaseVolumes:
        raise_problems(case)
        slices = _slices(case)
        if not slices:
            raise CaseError(case.case_id, "no slices with masks")
        tifffile: Any = require("tifffile", "reading TIFF slices")
        first = slices[0][1]
        volumes: dict[str, np.ndarray] = {}
        label = np.empty(0, dtype=np.uint8)
        for index, (_, image_path, mask_path) in enumerate(slices):
            rgb = self._read_rgb(case.case_id, image_path, tifffile)
            mask = self._read_mask(case.case_id, mask_path)
            if index == 0:
                shape = (*rgb.shape[:2], len(slices))
                volumes = {m: np.empty(shape, np.float32, order="F") for m in self.modalities}
                label = np.empty(shape, np.uint8, order="F")
            elif rgb.shape[:2] != label.shape[:2]:
                raise CaseError(
                    case.case_id,
                    f"slice {image_path.name} has shape {rgb.shape[:2]}, slice {first.name} "
                    f"has {label.shape[:2]}",
                    image_path,
                )
            if mask.shape != rgb.shape[:2]:
                raise CaseError(
                    case.case_id,
                    f"mask {mask_path.name} has shape {mask.shape}, its slice "
                    f"{image_path.name} has {rgb.shape[:2]}",
                    mask_path,
                )
            for modality, array in volumes.items():
                array[..., index] = rgb[..., CHANNELS[modality]]
            label[..., index] = mask > 0
        builder = CaseBuilder(case, Volume(label, slices[0][2]))
        for modality, array in volumes.items():
            builder.add(modality, Volume(array, first))
        return builder.finish()

    @staticmethod
    def _read_rgb(case_id: str, path: Path, tifffile: Any) -> np.ndarray:
        try:
            array = np.asarray(tifffile.imread(path))
        except MemoryError:
            raise
        except Exception as err:
            raise read_failure(case_id, path, err) from err
        if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
            array = np.moveaxis(array, 0, -1)  # stored planar
        if array.ndim != 3 or array.shape[-1] not in (3, 4):
            raise CaseError(
                case_id, f"expected an RGB slice (H, W, 3), got shape {array.shape}", path
            )
        return array

    @staticmethod
    def _read_mask(case_id: str, path: Path) -> np.ndarray:
        try:
            mask = read_mask(path)
        except MaskFileError as err:
            raise CaseError(case_id, err.reason, path) from err
        if mask.ndim != 2:
            raise CaseError(case_id, f"expected a 2D mask, got shape {mask.shape}", path)
        return mask
