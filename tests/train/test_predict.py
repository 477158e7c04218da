"""Predicting masks for a NIfTI volume (affine and orientation kept) and a PNG."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from calfseg.train import TrainConfig, fit
from calfseg.train.predict import predict_file


@pytest.fixture(scope="module")
def checkpoint(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("predict_run")
    config = TrainConfig.tiny(
        cache, epochs=1, max_steps=2, device="cpu", loss="bce", val_split=None, tensorboard=False
    )
    fit(config, run, progress=False)
    return run / "last.pt"


def test_nifti_mask_keeps_the_affine_and_the_files_orientation(checkpoint: Path, tmp_path: Path):
    rng = np.random.default_rng(0)
    volume = rng.random((20, 24, 5)).astype(np.float32) * 100
    # A non-canonical file: axes flipped (LPS-like), so the reader must turn it back.
    affine = np.diag([-1.5, -1.0, 2.0, 1.0])
    affine[:3, 3] = [10.0, -4.0, 3.0]
    source = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), source)
    out = predict_file(checkpoint, source, tmp_path / "mask.nii.gz", device="cpu")
    mask = nib.load(out)
    assert np.allclose(mask.affine, affine) and mask.shape == volume.shape
    data = np.asarray(mask.dataobj)
    assert data.dtype == np.uint8 and set(np.unique(data)) <= {0, 1}
    # The same volume stored canonically gives the same mask, voxel for voxel in world space.
    canonical = nib.as_closest_canonical(nib.Nifti1Image(volume, affine))
    nib.save(canonical, tmp_path / "canonical.nii.gz")
    other = nib.load(predict_file(checkpoint, tmp_path / "canonical.nii.gz", tmp_path / "c.nii"))
    assert np.array_equal(
        np.asarray(nib.as_closest_canonical(mask).dataobj), np.asarray(other.dataobj)
    )


def test_png_in_gives_a_png_mask_of_the_same_size(checkpoint: Path, tmp_path: Path):
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((40, 36)) * 255).astype(np.uint8)).save(tmp_path / "s.png")
    out = predict_file(checkpoint, tmp_path / "s.png", tmp_path / "mask.png", device="cpu")
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (36, 40)
        assert set(np.unique(np.asarray(image))) <= {0, 255}


def test_unknown_input_type_is_refused(checkpoint: Path, tmp_path: Path):
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown image type"):
        predict_file(checkpoint, tmp_path / "x.jpg", tmp_path / "y.png", device="cpu")


def test_sixteen_bit_tiff_in_gives_a_png_mask(checkpoint: Path, tmp_path: Path):
    rng = np.random.default_rng(2)
    Image.fromarray((rng.random((32, 32)) * 4000).astype(np.uint16)).save(tmp_path / "s.tif")
    out = predict_file(checkpoint, tmp_path / "s.tif", tmp_path / "mask.png", device="cpu")
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (32, 32)
