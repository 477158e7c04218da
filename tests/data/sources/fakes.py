"""Tiny fake dataset trees with the real file names, for the source readers' tests.

Volumes are 8 x 6 x 4 and stored like BraTS, LPS (x towards the left, y posterior), with
an offset and a 2 mm slice spacing, so that canonical RAS must flip the first two axes.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import tifffile

SHAPE = (8, 6, 4)
SPACING = (1.0, 1.0, 2.0)
LPS = np.array(
    [
        [-1.0, 0.0, 0.0, 10.0],
        [0.0, -1.0, 0.0, 20.0],
        [0.0, 0.0, 2.0, -5.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def to_ras(stored: np.ndarray) -> np.ndarray:
    """What canonical orientation must give for an array stored with the LPS affine."""
    return stored[::-1, ::-1, :]


def image_data(seed: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """Random positive float32 values (random, so a truncated gzip cuts into the data)."""
    return np.random.default_rng(seed).uniform(1.0, 100.0, shape).astype(np.float32)


def label_data(shape: tuple[int, ...] = SHAPE, value: int = 1) -> np.ndarray:
    label = np.zeros(shape, dtype=np.uint8)
    label[1:4, 2:5, 1:3] = value
    label[shape[0] - 1, 1, 0] = 4
    return label


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray = LPS) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return data


def nifti_case(folder: Path, images: dict[str, str], label: str | None, seed: int = 0):
    """Write ``images`` (file name -> modality) and ``label`` in ``folder``; return the
    stored arrays by modality and the stored label."""
    written = {}
    for index, (name, modality) in enumerate(images.items()):
        written[modality] = write_nifti(folder / name, image_data(seed * 10 + index))
    stored_label = label_data()
    if label is not None:
        write_nifti(folder / label, stored_label.astype(np.float32))  # BraTS: float labels
    return written, stored_label


# -- one builder per layout: a case folder with every modality and the label ---------------


def brats2015_case(root: Path, case_id: str, seed: int = 0, t2: bool = False):
    images = {"Flair_subtrMeanDivStd.nii.gz": "flair", "T1c_subtrMeanDivStd.nii.gz": "t1c"}
    if t2:
        images["T2_subtrMeanDivStd.nii.gz"] = "t2"
    written = nifti_case(root / case_id, images, "OTMultiClass.nii.gz", seed)
    write_nifti(root / case_id / "brainmask.nii.gz", label_data())
    (root / case_id / "License_CC_BY_NC_SA_3.0.txt").write_text("licence")
    return written


def brats2021_case(root: Path, case_id: str, seed: int = 0):
    tokens = {"flair": "flair", "t1": "t1", "t1ce": "t1c", "t2": "t2"}
    images = {f"{case_id}_{t}.nii.gz": m for t, m in tokens.items()}
    return nifti_case(root / case_id, images, f"{case_id}_seg.nii.gz", seed)


def brats2023_case(root: Path, case_id: str, seed: int = 0):
    tokens = {"t2f": "flair", "t1n": "t1", "t1c": "t1c", "t2w": "t2"}
    images = {f"{case_id}-{t}.nii.gz": m for t, m in tokens.items()}
    return nifti_case(root / case_id, images, f"{case_id}-seg.nii.gz", seed)


def ucsf_case(root: Path, case_id: str, seed: int = 0):
    folder = root / f"{case_id}_nifti"
    tokens = {"FLAIR": "flair", "T1": "t1", "T1c": "t1c", "T2": "t2"}
    images = {f"{case_id}_{t}.nii.gz": m for t, m in tokens.items()}
    written = nifti_case(folder, images, f"{case_id}_tumor_segmentation.nii.gz", seed)
    for other in ("ADC", "DWI", "SWI", "FLAIR_bias", "brain_segmentation"):
        write_nifti(folder / f"{case_id}_{other}.nii.gz", image_data(99, (2, 2, 2)))
    return written


def upenn_scan(root: Path, scan: str, seed: int = 0, automated=True, manual=False):
    """One scan folder; the automated label has value 1, the manual one value 2."""
    tokens = {"FLAIR": "flair", "T1": "t1", "T1GD": "t1c", "T2": "t2"}
    images = {f"{scan}_{t}.nii.gz": m for t, m in tokens.items()}
    written, _ = nifti_case(root / "images_structural" / scan, images, None, seed)
    if automated:
        name = f"{scan}_automated_approx_segm.nii.gz"
        write_nifti(root / "automated_segm" / name, label_data(value=1))
    if manual:
        write_nifti(root / "images_segm" / f"{scan}_segm.nii.gz", label_data(value=2))
    return written


def kaggle_case(root: Path, case_id: str, slices: int = 12, size: int = 6) -> None:
    """RGB slices whose channel values encode K (t1 = K, flair = 100 + K, t1c = 200 + K);
    the mask (0 / 255) of slice K covers the first K mod 7 pixels of its first row."""
    folder = root / case_id
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(1, slices + 1):
        rgb = np.zeros((size, size + 1, 3), dtype=np.uint8)
        rgb[..., 0], rgb[..., 1], rgb[..., 2] = k, 100 + k, 200 + k
        tifffile.imwrite(folder / f"{case_id}_{k}.tif", rgb, photometric="rgb")
        mask = np.zeros((size, size + 1), dtype=np.uint8)
        mask[0, : k % (size + 1)] = 255
        tifffile.imwrite(folder / f"{case_id}_{k}_mask.tif", mask)


def lgg_1p19q_slices(root: Path, case_id: str, slices: int = 11, size: int = 6, t1: bool = False):
    """The authors' layout: ``T2/t2_slice_01.png`` (zero-padded, as their DICOM names) and
    ``Segmentation/tumor_slice_1.png`` (not padded). Slice K's T2 pixels are 10 + K (T1:
    100 + K); its mask (0 / 255) covers the first K mod 5 pixels of its first row."""
    from PIL import Image

    folder = root / case_id
    for sub in ("T2", "Segmentation", *(("T1",) if t1 else ())):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for k in range(1, slices + 1):
        grey = np.full((size, size + 1), 10 + k, dtype=np.uint8)
        grey[-1, -1] = 0  # not constant, like a real slice
        Image.fromarray(grey).save(folder / "T2" / f"t2_slice_{k:02d}.png")
        if t1:
            Image.fromarray(grey + 90).save(folder / "T1" / f"t1_slice_{k:02d}.png")
        mask = np.zeros((size, size + 1), dtype=np.uint8)
        mask[0, : k % 5] = 255
        Image.fromarray(mask).save(folder / "Segmentation" / f"tumor_slice_{k}.png")


def lgg_1p19q_nifti(root: Path, case_id: str, seed: int = 0, prefixed: bool = False):
    """A NIfTI conversion: ``T2.nii.gz`` + ``Segmentation.nii.gz``, or with the patient
    prefix ``LGG-NNN_T2.nii.gz`` + ``LGG-NNN_seg.nii.gz``."""
    head = f"{case_id}_" if prefixed else ""
    label = f"{head}seg.nii.gz" if prefixed else "Segmentation.nii.gz"
    return nifti_case(root / case_id, {f"{head}T2.nii.gz": "t2"}, label, seed)
