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
from calfseg.train import TrainConfig, fit, load_checkpoint, save_checkpoint
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


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link"])
def test_an_output_that_is_the_input_is_refused_and_the_scan_kept(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(1).random((16, 16, 3)), np.eye(4)), scan)
    before = scan.read_bytes()
    out = scan
    if how == "symlink":
        out = tmp_path / "link.nii.gz"
        out.symlink_to(scan)
    elif how == "hard link":
        out = tmp_path / "hard.nii.gz"
        out.hardlink_to(scan)
    code = main(["predict", str(checkpoint), str(scan), str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "is the INPUT file" in err and "Traceback" not in err
    assert scan.read_bytes() == before
    with pytest.raises(ValueError, match="is the MODEL file"):
        predict_file(checkpoint, scan, checkpoint, device="cpu")


def test_the_mask_is_written_whole_and_leaves_no_temporary_file(
    checkpoint: Path, tmp_path: Path
) -> None:
    scan = tmp_path / "scan.nii.gz"
    affine = np.diag([0.9, 1.1, 2.5, 1.0])
    nib.save(nib.Nifti1Image(np.random.default_rng(2).random((16, 16, 3)), affine), scan)
    out = predict_file(checkpoint, scan, tmp_path / "mask.nii.gz", device="cpu")
    mask = nib.load(out)
    assert mask.shape == (16, 16, 3) and np.allclose(mask.affine, affine)
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
    assert gzip.decompress(out.read_bytes())  # gzip, as the suffix says
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.nii.gz", "scan.nii.gz"]


def test_a_model_with_nan_weights_is_refused_not_predicted_as_background(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = load_checkpoint(checkpoint)
    state.pop("format")
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = state["model"][name].clone().fill_(float("nan"))
    broken = tmp_path / "diverged.pt"
    save_checkpoint(broken, state)
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(tmp_path / "in.png")
    for argv in (
        ["predict", str(broken), str(tmp_path / "in.png"), str(tmp_path / "m.png")],
        ["export", str(broken), str(tmp_path / "exported")],
    ):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == EXIT_FAILURE and "hold NaN or infinity" in err and name in err
    assert not (tmp_path / "m.png").exists() and not (tmp_path / "exported").exists()
