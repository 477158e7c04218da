"""nnU-Net raw datasets (v2) and Medical Segmentation Decathlon tasks: ``--layout nnunet``.

A root holding ``dataset.json``, ``imagesTr/`` and ``labelsTr/`` (the names are what
detection looks at)::

    Dataset002_Prostate/                      Task01_BrainTumour/
      dataset.json   (channel_names, labels)    dataset.json   (modality, labels, training)
      imagesTr/CASE_0000.nii.gz, CASE_0001...   imagesTr/BRATS_001.nii.gz   (4D: X, Y, Z, C)
      labelsTr/CASE.nii.gz                      labelsTr/BRATS_001.nii.gz

2D datasets store PNG files (``CASE_0000.png``, grey) or NIfTI files with a singleton axis;
both become volumes of one slice. Channel names are normalised like every layout's
modalities (``FLAIR`` -> ``flair``, ``T1Gd`` -> ``t1c``; other names lower-cased, e.g.
``adc``). The label volume is returned as stored; ``calf prepare`` then takes every label
> 0 as the foreground, or the values of ``--labels``. Its values must be among those
dataset.json declares (a label file with others is a case error naming them), and
dataset.json must declare labels calf-seg can map (:mod:`calfseg.data.sources.nnunet_json`).
Only the training cases (``imagesTr``) are read: ``imagesTs`` has no labels.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from calfseg.data.sources.base import CaseError, CaseFiles, CaseVolumes, SourceReader
from calfseg.data.sources.files import read_image_volume, read_label_volume
from calfseg.data.sources.naming import select_modalities
from calfseg.data.sources.nifti import read_nifti
from calfseg.data.sources.nnunet_json import (
    DATASET_JSON,
    DatasetDescription,
    read_dataset_json,
)
from calfseg.data.sources.volumes import (
    CaseBuilder,
    Volume,
    compact_labels,
    label_values,
    raise_problems,
    read_failure,
)
from calfseg.errors import DataValueError
from calfseg.extras import require

IMAGES, LABELS = "imagesTr", "labelsTr"
_CHANNEL_FILE = re.compile(r"(?P<case>.+)_(?P<channel>\d{4})$")
# CaseFiles.info keys: the case's dataset.json flavour, and the channel order of a 4D file.
FLAVOUR, CHANNELS = "flavour", "channels"


def _is_hidden(name: str) -> bool:
    """macOS resource forks (``._X.nii.gz``, shipped with the Decathlon) and dot files."""
    return name.startswith(".")


def _stem(name: str, ending: str) -> str | None:
    return name[: -len(ending)] if name.endswith(ending) and len(name) > len(ending) else None


class NnUNetSource(SourceReader):
    """nnU-Net v2 raw datasets and Decathlon tasks (option ``modalities``: which channels,
    by their dataset.json names; default all)."""

    name: ClassVar[str] = "nnunet"
    description: ClassVar[str] = (
        "nnU-Net raw / Decathlon: dataset.json, imagesTr/CASE_0000.nii.gz (or .png, or one 4D "
        "NIfTI per case), labelsTr/CASE.nii.gz"
    )

    def __init__(self, *, modalities: Iterable[str] | None = None) -> None:
        self.modalities = None if modalities is None else tuple(modalities)

    @classmethod
    def detect(cls, root: Path) -> bool:
        root = Path(root)
        return (
            (root / DATASET_JSON).is_file()
            and (root / IMAGES).is_dir()
            and (root / LABELS).is_dir()
        )

    def find_cases(self, root: Path) -> list[CaseFiles]:
        root = Path(root)
        if not self.detect(root):
            raise DataValueError(
                f"{root} is not an nnU-Net raw dataset: it needs {DATASET_JSON}, {IMAGES}/ and "
                f"{LABELS}/"
            )
        description = read_dataset_json(root)
        chosen = (
            description.channels
            if self.modalities is None
            else select_modalities(self.modalities, self.name, description.channels)
        )
        if description.flavour == "msd":
            return self._msd_cases(root, description, chosen)
        return self._v2_cases(root, description, chosen)

    # -- listing ------------------------------------------------------------------------------

    def _info(self, description: DatasetDescription) -> dict[str, str]:
        return {
            FLAVOUR: description.flavour,
            CHANNELS: ",".join(description.channels),
            "labels": ",".join(f"{v}={n}" for v, n in description.labels.items()),
        }

    def _v2_cases(
        self, root: Path, description: DatasetDescription, chosen: tuple[str, ...]
    ) -> list[CaseFiles]:
        ending = description.file_ending
        by_case: dict[str, dict[int, Path]] = {}
        for name in sorted(os.listdir(root / IMAGES)):
            stem = _stem(name, ending)
            match = _CHANNEL_FILE.fullmatch(stem) if stem and not _is_hidden(name) else None
            if match:
                channels = by_case.setdefault(match.group("case"), {})
                channels[int(match.group("channel"))] = root / IMAGES / name
        cases = []
        for case_id, files in sorted(by_case.items()):
            problems = []
            images: dict[str, Path] = {}
            for modality in chosen:
                index = description.channels.index(modality)
                if index in files:
                    images[modality] = files[index]
                else:
                    problems.append(
                        f"no channel {index} ({modality}) file {case_id}_{index:04d}{ending}"
                    )
            extra = sorted(set(files) - set(range(len(description.channels))))
            if extra:
                problems.append(
                    f"channel file(s) {', '.join(f'{i:04d}' for i in extra)} beyond the "
                    f"{len(description.channels)} channel(s) dataset.json declares"
                )
            cases.append(self._case(root, case_id, images, ending, problems, description))
        return cases

    def _msd_cases(
        self, root: Path, description: DatasetDescription, chosen: tuple[str, ...]
    ) -> list[CaseFiles]:
        if description.training:
            image_files = [root / image for image, _label in description.training]
        else:
            image_files = [
                root / IMAGES / n
                for n in sorted(os.listdir(root / IMAGES))
                if n.endswith(".nii.gz") and not _is_hidden(n)
            ]
        cases = []
        for path in sorted(image_files, key=lambda p: p.name):
            case_id = _stem(path.name, ".nii.gz") or path.name
            problems = [] if path.is_file() else [f"no image file {path.name} in {IMAGES}/"]
            images = dict.fromkeys(chosen, path)
            cases.append(self._case(root, case_id, images, ".nii.gz", problems, description))
        return cases

    def _case(
        self,
        root: Path,
        case_id: str,
        images: dict[str, Path],
        ending: str,
        problems: list[str],
        description: DatasetDescription,
    ) -> CaseFiles:
        expected = root / LABELS / f"{case_id}{ending}"
        label = expected if expected.is_file() else None
        if label is None:
            problems.append(f"no label file {LABELS}/{case_id}{ending}")
        files = tuple(dict.fromkeys(images.values())) + ((label,) if label else ())
        return CaseFiles(
            case_id=case_id,
            dataset=root.name,
            images=images,
            label=label,
            files=files,
            problems=tuple(problems),
            info=self._info(description),
        )

    # -- loading ------------------------------------------------------------------------------

    def load(self, case: CaseFiles) -> CaseVolumes:
        raise_problems(case)
        if case.label is None:
            raise CaseError(case.case_id, "no label file")
        label = _read_label(case.case_id, case.label)
        _check_declared(case, label)
        builder = CaseBuilder(case, label)
        if case.info.get(FLAVOUR) == "msd":
            channels = case.info[CHANNELS].split(",")
            path = next(iter(case.images.values()))
            volumes = _read_channels(case.case_id, path, len(channels))
            for modality in case.images:
                builder.add(modality, volumes[channels.index(modality)])
        else:
            for modality, path in case.images.items():
                builder.add(modality, _read_image(case.case_id, path))
        return builder.finish()


def _check_declared(case: CaseFiles, label: Volume) -> None:
    declared = {int(part.split("=", 1)[0]) for part in case.info["labels"].split(",")}
    found = {int(v) for v in np.unique(label.array)}
    undeclared = sorted(found - declared)
    if undeclared:
        raise CaseError(
            case.case_id,
            f"label value(s) {', '.join(map(str, undeclared))} are not among the labels "
            f"dataset.json declares ({case.info['labels']})",
            label.path,
        )


def _read_label(case_id: str, path: Path) -> Volume:
    volume = read_label_volume(case_id, path)
    array = label_values(case_id, np.asarray(volume.array), path)
    volume.array = compact_labels(array[..., np.newaxis] if array.ndim == 2 else array)
    return volume


def _read_image(case_id: str, path: Path) -> Volume:
    volume = read_image_volume(case_id, path)
    if volume.array.ndim == 2:
        volume.array = volume.array[..., np.newaxis]
    return volume


def _read_channels(case_id: str, path: Path, count: int) -> list[Volume]:
    """The channels of a Decathlon 4D NIfTI ``(X, Y, Z, C)`` as canonical 3D volumes (a 3D
    file is one channel)."""
    nibabel: Any = require("nibabel", "reading NIfTI files")
    try:
        image = nibabel.load(os.fspath(path))
        shape = image.shape
    except Exception as err:  # nibabel raises anything on a bad file
        raise read_failure(case_id, path, err) from err
    found = shape[3] if len(shape) == 4 else 1
    if len(shape) not in (3, 4) or found != count:
        raise CaseError(
            case_id,
            f"shape {shape}: expected {count} channel(s) on the 4th axis, as dataset.json's "
            f"modality declares",
            path,
        )
    if count == 1:
        return [read_nifti(case_id, path, label=False)]
    data = image.get_fdata(dtype=np.float32)
    header_3d = image.header.copy()
    header_3d.set_data_shape(shape[:3])
    volumes = []
    for c in range(count):
        single = nibabel.Nifti1Image(np.ascontiguousarray(data[..., c]), image.affine, header_3d)
        volumes.append(_canonical(case_id, path, single, nibabel))
    return volumes


def _canonical(case_id: str, path: Path, image: Any, nibabel: Any) -> Volume:
    canonical = nibabel.as_closest_canonical(image)
    zooms = canonical.header.get_zooms()
    return Volume(
        array=np.asfortranarray(np.asanyarray(canonical.dataobj, dtype=np.float32)),
        path=path,
        affine=np.asarray(canonical.affine, dtype=np.float64),
        spacing=(float(zooms[0]), float(zooms[1]), float(zooms[2])),
    )
