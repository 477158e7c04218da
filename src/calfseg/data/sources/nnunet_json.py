"""The ``dataset.json`` of an nnU-Net raw dataset (v2) or a Medical Segmentation Decathlon
task: its channels, its labels and how its image files are named.

- nnU-Net v2: ``{"channel_names": {"0": "T2", "1": "ADC"}, "labels": {"background": 0,
  "lesion": 1, ...}, "file_ending": ".nii.gz", "numTraining": N}``; one file per channel,
  ``imagesTr/CASE_0000.nii.gz``, ``CASE_0001.nii.gz``, ...; a label ``labelsTr/CASE.nii.gz``.
  Labels map a name to a value, or to a list of values for a region (region-based
  training); ``"ignore"`` names an ignore label.
- Decathlon (MSD): ``{"modality": {"0": "FLAIR", ...}, "labels": {"0": "background",
  "1": "edema", ...}, "training": [{"image": "./imagesTr/X.nii.gz", "label": ...}]}``; one
  4D NIfTI per case (channels on the last axis) when there are several modalities.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calfseg.data.sources.naming import normalise_modality
from calfseg.errors import DataValueError

DATASET_JSON = "dataset.json"


@dataclass(frozen=True)
class DatasetDescription:
    """What calf-seg needs from a dataset.json.

    ``flavour``: ``"v2"`` (nnU-Net v2) or ``"msd"`` (Decathlon). ``channels``: normalised
    modality names in channel order. ``labels``: label value -> name (regions are reported
    by the values they are made of). ``file_ending``: of every image and label file.
    ``training``: the Decathlon's ``(image, label)`` paths relative to the root (empty for v2).
    """

    flavour: str
    channels: tuple[str, ...]
    labels: dict[int, str]
    file_ending: str
    training: tuple[tuple[str, str], ...] = ()


class DatasetJsonError(DataValueError):
    """A dataset.json that calf-seg cannot use; the message names the file and the keys."""


def _label_value(path: Path, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DatasetJsonError(
            f"{path}: label {name!r} has the value {value!r}, which is not a whole number; "
            "calf-seg maps label values >= 0 to background (0) and foreground (> 0)"
        )
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0 or str(number) != str(value).strip():
        raise DatasetJsonError(
            f"{path}: label {name!r} has the value {value!r}; label values must be whole "
            "numbers >= 0"
        )
    return number


def _labels(path: Path, raw: Any, msd: bool) -> dict[int, str]:
    """value -> name, checked: whole numbers >= 0, a background 0, no ignore label."""
    if not isinstance(raw, dict) or not raw:
        raise DatasetJsonError(
            f"{path} has no 'labels' (or an empty one): calf-seg needs them to tell background "
            'from foreground, e.g. "labels": {"background": 0, "tumour": 1}'
        )
    labels: dict[int, str] = {}
    if msd:  # "value": "name"
        for key, name in raw.items():
            labels[_label_value(path, str(name), key)] = str(name)
    else:  # "name": value, or "name": [values] for a region
        if "ignore" in raw:
            raise DatasetJsonError(
                f"{path}: labels declare 'ignore': {raw['ignore']!r}; calf-seg has no ignore "
                "label (its voxels would count as foreground). Remove the ignore label or "
                "relabel those voxels"
            )
        for name, value in raw.items():
            for v in value if isinstance(value, list) else [value]:
                labels.setdefault(_label_value(path, str(name), v), str(name))
    if 0 not in labels:
        raise DatasetJsonError(
            f"{path}: no label has the value 0 (background); the labels are "
            + ", ".join(f"{n}={v}" for v, n in sorted(labels.items()))
        )
    if len(labels) < 2:
        raise DatasetJsonError(f"{path}: the labels declare only the background, no foreground")
    return dict(sorted(labels.items()))


def _channels(path: Path, raw: Any, key: str) -> tuple[str, ...]:
    if not isinstance(raw, dict) or not raw:
        raise DatasetJsonError(f"{path}: '{key}' must map channel numbers to names, got {raw!r}")
    try:
        order = sorted(raw, key=int)
    except ValueError as err:
        raise DatasetJsonError(f"{path}: '{key}' keys must be channel numbers: {err}") from err
    if [int(k) for k in order] != list(range(len(order))):
        raise DatasetJsonError(f"{path}: '{key}' must number the channels 0..{len(order) - 1}")
    names = tuple(normalise_modality(str(raw[k])) for k in order)
    if len(set(names)) != len(names):
        raise DatasetJsonError(f"{path}: two channels have the same name: {', '.join(names)}")
    return names


def read_dataset_json(root: Path) -> DatasetDescription:
    """Parse ``root/dataset.json``.

    Raises:
        DatasetJsonError: missing or unreadable file; neither ``channel_names`` (v2) nor
            ``modality`` (Decathlon); missing, empty or unmappable ``labels`` (values that are
            not whole numbers >= 0, no background 0, an ignore label), each named.
    """
    path = root / DATASET_JSON
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetJsonError(f"{path}: cannot read it as JSON ({err})") from err
    if not isinstance(data, dict):
        raise DatasetJsonError(f"{path}: expected a JSON object")
    if "channel_names" in data:
        return DatasetDescription(
            flavour="v2",
            channels=_channels(path, data["channel_names"], "channel_names"),
            labels=_labels(path, data.get("labels"), msd=False),
            file_ending=str(data.get("file_ending", ".nii.gz")),
        )
    if "modality" in data:
        training = tuple(
            (str(item["image"]), str(item["label"]))
            for item in data.get("training", [])
            if isinstance(item, dict) and "image" in item and "label" in item
        )
        return DatasetDescription(
            flavour="msd",
            channels=_channels(path, data["modality"], "modality"),
            labels=_labels(path, data.get("labels"), msd=True),
            file_ending=".nii.gz",
            training=training,
        )
    raise DatasetJsonError(
        f"{path} has neither 'channel_names' (nnU-Net v2) nor 'modality' (Decathlon): "
        "cannot tell the channels of the images"
    )
