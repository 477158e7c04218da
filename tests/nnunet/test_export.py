"""A calf-seg cache written as an nnU-Net raw dataset: the files, dataset.json, the split; and
the same folder read back by --layout nnunet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from calfseg.cli import main
from calfseg.data.cache import SliceCache
from calfseg.data.sources import open_source
from calfseg.errors import DataError, OptionError
from calfseg.nnunet.export import export_cache
from tests.data.cache_fixture import make_cache


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return make_cache(tmp_path / "cache", n_cases=5, slices_per_case=3, channels=("flair", "t2"))


def test_every_row_becomes_an_nnunet_case(cache: Path, tmp_path: Path) -> None:
    summary = export_cache(cache, tmp_path / "raw", 12, "Exported")
    folder = tmp_path / "raw" / "Dataset012_Exported"
    assert summary.folder == folder
    opened = SliceCache.open(cache)
    split = opened.index["split"]
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "flair", "1": "t2"}
    assert dataset["labels"] == {"background": 0, "tumour": 1}
    assert dataset["file_ending"] == ".png"
    assert dataset["numTraining"] == int((split != "test").sum())

    row = int(np.flatnonzero(split == "train")[0])
    case = f"{opened.index['case_id'][row]}_flair_z{opened.index['slice_index'][row]:03d}"
    for channel in (0, 1):
        written = np.asarray(Image.open(folder / "imagesTr" / f"{case}_{channel:04d}.png"))
        np.testing.assert_array_equal(written, opened.images[row, channel])
    label = np.asarray(Image.open(folder / "labelsTr" / f"{case}.png"))
    np.testing.assert_array_equal(label, opened.masks[row])

    assert len(list((folder / "labelsTr").glob("*.png"))) == dataset["numTraining"]
    assert len(list((folder / "labelsTs").glob("*.png"))) == int((split == "test").sum())
    (fold,) = json.loads((folder / "splits_final.json").read_text())
    assert len(fold["train"]) == int((split == "train").sum()) == summary.train
    assert len(fold["val"]) == int((split == "val").sum()) == summary.val
    assert not set(fold["train"]) & set(fold["val"])


def test_the_export_is_read_back_by_the_nnunet_layout(cache: Path, tmp_path: Path) -> None:
    export_cache(cache, tmp_path, 12, "Exported")
    reader, message = open_source(tmp_path / "Dataset012_Exported")
    assert message == "layout: nnunet (detected)"
    cases = reader.find_cases(tmp_path / "Dataset012_Exported")
    volumes = reader.load(cases[0])
    assert list(volumes.images) == ["flair", "t2"] and volumes.label.shape == (16, 16, 1)


def test_float16_images_are_rounded_to_uint8(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "c16", n_cases=3, slices_per_case=2, image_dtype="float16")
    summary = export_cache(cache, tmp_path / "raw", 1, "F")
    assert summary.rounded
    opened = SliceCache.open(cache)
    row = int(np.flatnonzero(opened.index["split"] == "train")[0])
    case = f"{opened.index['case_id'][row]}_flair_z{opened.index['slice_index'][row]:03d}"
    written = np.asarray(Image.open(summary.folder / "imagesTr" / f"{case}_0000.png"))
    expected = np.rint(opened.images[row, 0].astype(np.float64) * 255).astype(np.uint8)
    np.testing.assert_array_equal(written, expected)


def test_existing_folder_and_bad_names(cache: Path, tmp_path: Path) -> None:
    export_cache(cache, tmp_path, 3, "A")
    with pytest.raises(DataError, match="exists; choose another"):
        export_cache(cache, tmp_path, 3, "A")
    export_cache(cache, tmp_path, 3, "A", overwrite=True)
    with pytest.raises(OptionError, match="--id must be a dataset number from 1 to 999"):
        export_cache(cache, tmp_path, 1000, "A")
    with pytest.raises(OptionError, match="--name must be letters"):
        export_cache(cache, tmp_path, 4, "two words")


def test_cli_export_needs_an_output(cache: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("nnUNet_raw", raising=False)
    assert main(["nnunet", "export", str(cache), "--id", "5", "--name", "X"]) == 2
    assert "give --out, or set the environment variable nnUNet_raw" in capsys.readouterr().err


def test_cli_export_writes_under_nnunet_raw(cache: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    assert main(["nnunet", "export", str(cache), "--id", "5", "--name", "X"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'raw' / 'Dataset005_X'}" in out and "splits_final.json" in out
