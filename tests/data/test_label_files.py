"""calfseg.data.scan.labels: the label files of a dataset folder, as its layout knows them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calfseg.data.files.masks import MaskFileError
from calfseg.data.scan.labels import layout_label_files
from calfseg.data.scan.masks import scan_masks

from .sources.fakes import brats2015_case, brats2021_case, kaggle_case


def test_brats2015_gives_the_label_files_not_the_brain_masks(tmp_path: Path) -> None:
    for i in (1, 2):
        brats2015_case(tmp_path, f"pat{i}", seed=i)
    found = layout_label_files(tmp_path)
    assert found is not None and found.layout == "brats2015" and found.problems == []
    assert found.files == [tmp_path / f"pat{i}" / "OTMultiClass.nii.gz" for i in (1, 2)]


def test_brats2021_gives_the_seg_files(tmp_path: Path) -> None:
    brats2021_case(tmp_path, "BraTS2021_00000")
    found = layout_label_files(tmp_path)
    assert found is not None and [p.name for p in found.files] == ["BraTS2021_00000_seg.nii.gz"]


def test_lgg_kaggle_gives_the_mask_slices(tmp_path: Path) -> None:
    kaggle_case(tmp_path, "TCGA_CS_4941_19960909", slices=3)
    found = layout_label_files(tmp_path)
    assert found is not None and found.layout == "lgg-kaggle"
    assert len(found.files) == 3 and all("_mask" in p.name for p in found.files)


def test_an_unknown_folder_or_layout_none_falls_back_to_the_plain_search(tmp_path: Path) -> None:
    np.save(tmp_path / "m.npy", np.eye(3, dtype=np.uint8))
    assert layout_label_files(tmp_path) is None
    brats2015_case(tmp_path, "pat1")
    assert layout_label_files(tmp_path, "none") is None


def test_a_case_without_its_label_stops_or_is_listed_as_skipped(tmp_path: Path) -> None:
    brats2015_case(tmp_path, "pat1")
    brats2015_case(tmp_path, "pat2")
    (tmp_path / "pat2" / "OTMultiClass.nii.gz").unlink()
    with pytest.raises(MaskFileError, match="pat2"):
        scan_masks(tmp_path)
    scan = scan_masks(tmp_path, on_error="skip")
    assert [f.path.name for f in scan.files] == ["OTMultiClass.nii.gz"]
    assert scan.found == 2 and len(scan.skipped) == 1 and "pat2" in scan.skipped[0].reason
