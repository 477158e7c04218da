"""calf predict on bad files: a truncated NIfTI names the file; an output suffix that is not
a lossless mask format is refused (no PNG bytes in a .jpg)."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from calfseg.cli import main
from calfseg.cli.common import EXIT_FAILURE
from calfseg.train import TrainConfig, fit
from calfseg.train.predict import predict_file


@pytest.fixture(scope="module")
def checkpoint(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("predict_errors")
    config = TrainConfig.tiny(
        cache, epochs=1, max_steps=1, device="cpu", loss="bce", val_split=None, tensorboard=False
    )
    fit(config, run, progress=False)
    return run / "last.pt"


def test_truncated_nifti_names_the_file(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = tmp_path / "whole.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((16, 16, 4)), np.eye(4)), whole)
    cut = tmp_path / "cut.nii.gz"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert gzip.decompress(data)  # the whole file is fine; only the cut one is broken
    code = main(["predict", str(checkpoint), str(cut), str(tmp_path / "m.nii.gz")])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURE and f"{cut}: cannot read the file" in err
    assert "Traceback" not in err


def test_jpeg_output_is_refused_with_the_supported_suffixes(
    checkpoint: Path, tmp_path: Path
) -> None:
    Image.fromarray((np.arange(256).reshape(16, 16) % 251).astype(np.uint8)).save(
        tmp_path / "in.png"
    )
    with pytest.raises(ValueError, match=r"out\.jpg: .*\.png, \.tif, \.tiff"):
        predict_file(checkpoint, tmp_path / "in.png", tmp_path / "out.jpg", device="cpu")
    assert not (tmp_path / "out.jpg").exists()


def test_tiff_output_is_a_real_tiff(checkpoint: Path, tmp_path: Path) -> None:
    Image.fromarray((np.arange(256).reshape(16, 16) % 251).astype(np.uint8)).save(
        tmp_path / "in.png"
    )
    out = predict_file(checkpoint, tmp_path / "in.png", tmp_path / "out.tif", device="cpu")
    assert out.read_bytes()[:4] in (b"II*\x00", b"MM\x00*")  # the TIFF magic, not PNG's
    with Image.open(out) as image:
        assert image.format == "TIFF" and set(np.unique(np.asarray(image))) <= {0, 255}
