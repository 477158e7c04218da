"""Tiny synthetic datasets in nnU-Net's raw layout (v2 2D PNG, v2 multi-channel NIfTI) and
in the Medical Segmentation Decathlon's layout (4D NIfTI), written by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIZE = 64


def disc_label(rng: np.random.Generator, size: int = SIZE, classes: int = 2) -> np.ndarray:
    """A label image: one disc of class 1 with a random radius and centre, and (with
    ``classes`` = 3) a smaller disc of class 2 inside it."""
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.integers(size // 4, 3 * size // 4, size=2)
    radius = int(rng.integers(3, size // 4))
    label = np.zeros((size, size), np.uint8)
    label[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 1
    if classes == 3:
        label[(yy - cy) ** 2 + (xx - cx) ** 2 <= (radius // 2) ** 2] = 2
    return label


def image_of(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A grey uint8 image in which the label's classes are brighter, plus noise."""
    noise = rng.normal(0, 12, label.shape)
    return np.clip(60 + 70 * label.astype(float) + noise, 0, 255).astype(np.uint8)


def write_v2_png(raw: Path, dataset_id: int, *, cases: int = 10, seed: int = 0) -> Path:
    """``Dataset{id:03d}_Discs`` with 2D grey PNG images (one channel) and labels 0/1/2."""
    from PIL import Image

    folder = raw / f"Dataset{dataset_id:03d}_Discs"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    rng = np.random.default_rng(seed)
    for i in range(cases):
        label = disc_label(rng, classes=3)
        Image.fromarray(image_of(label, rng)).save(folder / "imagesTr" / f"disc_{i:03d}_0000.png")
        Image.fromarray(label).save(folder / "labelsTr" / f"disc_{i:03d}.png")
    dataset = {
        "channel_names": {"0": "grey"},
        "labels": {"background": 0, "outer": 1, "inner": 2},
        "numTraining": cases,
        "file_ending": ".png",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return folder


def _save_nifti(array: np.ndarray, path: Path, spacing: tuple[float, ...]) -> None:
    import nibabel

    affine = np.diag([*spacing[:3], 1.0])
    nibabel.save(nibabel.Nifti1Image(array, affine), str(path))


def volume_case(rng: np.random.Generator, depth: int = 4) -> tuple[np.ndarray, list[np.ndarray]]:
    """A small 3D label (16 x 16 x depth) and two image channels that differ."""
    label = np.stack([disc_label(rng, 16) for _ in range(depth)], axis=-1)
    first = image_of(label, rng).astype(np.float32)
    second = (255 - first).astype(np.float32)
    return label, [first, second]


def write_v2_nifti(folder: Path, *, cases: int = 3, seed: int = 1) -> Path:
    """A v2 dataset in ``folder`` with two channels per case (``_0000``, ``_0001``) as 3D
    NIfTI."""
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(cases):
        label, channels = volume_case(rng)
        for c, image in enumerate(channels):
            _save_nifti(image, folder / "imagesTr" / f"case{i}_{c:04d}.nii.gz", (1.0, 1.0, 2.0))
        _save_nifti(label, folder / "labelsTr" / f"case{i}.nii.gz", (1.0, 1.0, 2.0))
    dataset = {
        "channel_names": {"0": "T2", "1": "ADC"},
        "labels": {"background": 0, "lesion": 1},
        "numTraining": cases,
        "file_ending": ".nii.gz",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset))
    return folder


def write_msd(folder: Path, *, cases: int = 3, seed: int = 2) -> Path:
    """A Decathlon task in ``folder``: one 4D NIfTI per case (channels last), ``modality``
    and ``labels`` keyed by strings, and a ``training`` list."""
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    rng = np.random.default_rng(seed)
    training = []
    for i in range(cases):
        label, channels = volume_case(rng)
        name = f"tiny_{i:03d}.nii.gz"
        _save_nifti(np.stack(channels, axis=-1), folder / "imagesTr" / name, (1.0, 1.0, 2.0, 1.0))
        _save_nifti(label, folder / "labelsTr" / name, (1.0, 1.0, 2.0))
        # The Decathlon ships macOS "._" resource files beside the volumes: not cases.
        (folder / "imagesTr" / f"._{name}").write_bytes(b"\0")
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    dataset = {
        "name": "Tiny",
        "modality": {"0": "FLAIR", "1": "T1w"},
        "labels": {"0": "background", "1": "tumour"},
        "numTraining": cases,
        "training": training,
        "test": [],
    }
    (folder / "dataset.json").write_text(json.dumps(dataset))
    return folder
