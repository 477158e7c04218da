"""``calf predict`` preprocesses a file exactly as ``calf prepare`` stores it for training:
the same reader and the same preprocessing code, down to the bit of the float32 input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from calfseg.data import SliceDataset, prepare
from calfseg.train.predict import Predictor, training_preprocessing


class _Recorder(nn.Module):
    """A stand-in network that remembers what it was given and predicts nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return torch.full((x.shape[0], 1, *x.shape[-2:]), -1.0)


def _grey(seed: int, shape: tuple[int, int] = (20, 26)) -> np.ndarray:
    """Grey values with structure (not constant) and both ends of the range present."""
    rng = np.random.default_rng(seed)
    grey = rng.integers(10, 240, size=shape).astype(np.uint8)
    grey[0, 0], grey[-1, -1] = 0, 255
    return grey


def _save(grey: np.ndarray, mode: str, path: Path) -> None:
    """``grey`` stored in the PNG ``mode`` a scanner export might use."""
    if mode == "L":
        Image.fromarray(grey).save(path)
    elif mode == "RGB":  # grey saved as colour: three equal channels
        Image.fromarray(np.stack([grey] * 3, axis=-1)).save(path)
    elif mode == "LA":  # grey with an alpha channel that is not the intensity
        alpha = np.full_like(grey, 200)
        Image.fromarray(np.stack([grey, alpha], axis=-1), mode="LA").save(path)
    elif mode == "P":  # palette of grey colours: the indices are not the intensities
        Image.fromarray(grey).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    else:
        raise AssertionError(mode)


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("L", {}),
        ("RGB", {}),
        ("LA", {"keep_aspect": True}),
        ("P", {"normalise": "zscore-brain", "image_dtype": "float16"}),
        ("RGB", {"normalise": "minmax-volume", "keep_aspect": True}),
    ],
)
def test_predict_sees_the_training_sample_bit_for_bit(
    tmp_path: Path, mode: str, options: dict[str, object]
):
    src = tmp_path / "src"
    src.mkdir()
    _save(_grey(0), mode, src / "slice.png")
    mask = np.zeros((20, 26), dtype=np.uint8)
    mask[5:9, 6:12] = 1
    Image.fromarray(mask).save(src / "mask.png")
    (src / "manifest.csv").write_text("case_id,image,mask,modality\np01,slice.png,mask.png,flair\n")
    prepare(src, tmp_path / "cache", size=16, **options)
    training = SliceDataset(tmp_path / "cache", split=None)
    assert len(training) == 1
    trained_on = training[0][0]  # (1, 16, 16) float32, what the network learnt from

    predictor = Predictor.__new__(Predictor)  # the preprocessing of a model of this cache
    predictor.device = torch.device("cpu")
    predictor.model = _Recorder()
    predictor.batch_size = 4
    meta = training.meta
    predictor.preprocessing = training_preprocessing(
        meta["options"], meta["size"][0], meta["image_dtype"]
    )
    predictor.predict_image(src / "slice.png", tmp_path / "mask_out.png")

    (seen,) = predictor.model.inputs
    assert seen.dtype == torch.float32 and seen.shape == (1, 1, 16, 16)
    assert torch.equal(seen[0], trained_on)
    with Image.open(tmp_path / "mask_out.png") as written:
        assert written.size == (26, 20)  # back at the file's size


def test_true_colour_is_refused_by_predict_as_by_prepare(tmp_path: Path):
    colour = np.stack([_grey(0), _grey(1), _grey(2)], axis=-1)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    predictor = Predictor.__new__(Predictor)
    predictor.preprocessing = training_preprocessing(None, 16, "uint8")
    with pytest.raises(ValueError, match=r"colour\.png: PNG mode RGB with differing colour"):
        predictor.predict_image(tmp_path / "colour.png", tmp_path / "out.png")
