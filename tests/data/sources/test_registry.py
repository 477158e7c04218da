"""The registry: names, auto-detection, open_source."""

from __future__ import annotations

from pathlib import Path

import pytest

from calfseg.data.sources import (
    SOURCES,
    FolderSource,
    SourceReader,
    UpennGbmSource,
    detect_layout,
    get_source,
    open_source,
)
from tests.nnunet.raw_datasets import write_v2_nifti

from .fakes import (
    brats2015_case,
    brats2021_case,
    brats2023_case,
    image_data,
    kaggle_case,
    label_data,
    lgg_1p19q_slices,
    ucsf_case,
    upenn_scan,
    write_nifti,
)


def _folder_tree(root: Path) -> None:
    write_nifti(root / "img.nii.gz", image_data(1))
    write_nifti(root / "seg.nii.gz", label_data())
    (root / "manifest.csv").write_text("case_id,image,mask\np1,img.nii.gz,seg.nii.gz\n")


BUILDERS = {
    "brats2015": lambda root: brats2015_case(root, "brats_2013_pat0001_1"),
    "brats2021": lambda root: brats2021_case(root, "BraTS2021_00000"),
    "brats2023": lambda root: brats2023_case(root, "BraTS-GLI-00000-000"),
    "ucsf-pdgm": lambda root: ucsf_case(root, "UCSF-PDGM-0004"),
    "upenn-gbm": lambda root: upenn_scan(root, "UPENN-GBM-00001_11"),
    "lgg-kaggle": lambda root: kaggle_case(root / "kaggle_3m", "TCGA_CS_4941_19960909", 2),
    "lgg-1p19q": lambda root: lgg_1p19q_slices(root / "LGG", "LGG-104", slices=2),
    "nnunet": lambda root: write_v2_nifti(root, cases=1),
    "folder": _folder_tree,
}


def test_every_layout_is_registered_and_described():
    assert list(SOURCES) == list(BUILDERS)
    for name, cls in SOURCES.items():
        assert issubclass(cls, SourceReader) and cls.name == name and cls.description


@pytest.mark.parametrize("layout", list(BUILDERS))
def test_detection_picks_the_layout_of_each_tree(tmp_path, layout):
    BUILDERS[layout](tmp_path)
    assert detect_layout(tmp_path) == layout
    reader, message = open_source(tmp_path)
    assert message == f"layout: {layout} (detected)"
    cases = reader.find_cases(tmp_path)
    assert len(cases) == 1 and not cases[0].problems
    assert reader.load(cases[0]).images


def test_unknown_tree_fails_pointing_to_a_manifest(tmp_path):
    (tmp_path / "scans" / "one").mkdir(parents=True)
    (tmp_path / "scans" / "one" / "image.nii.gz").write_bytes(b"")
    with pytest.raises(ValueError) as caught:
        detect_layout(tmp_path)
    message = str(caught.value)
    assert "matches none of the known layouts" in message
    assert all(f"  {name}: " in message for name in SOURCES)
    assert "--layout folder --manifest FILE" in message


def test_ambiguous_tree_names_the_candidates(tmp_path):
    brats2021_case(tmp_path, "BraTS2021_00000")
    _folder_tree(tmp_path)
    with pytest.raises(ValueError, match=r"matches several layouts \(brats2021, folder\)"):
        detect_layout(tmp_path)


def test_missing_root_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        detect_layout(tmp_path / "absent")


def test_get_source_by_name_with_options(tmp_path):
    reader = get_source("upenn-gbm", labels="manual")
    assert isinstance(reader, UpennGbmSource) and reader.labels == "manual"
    reader, message = open_source(tmp_path, "folder", manifest=tmp_path / "m.csv")
    assert isinstance(reader, FolderSource) and message == "layout: folder (given)"


def test_get_source_refuses_unknown_names_and_options():
    match = r"unknown layout 'brats' \(did you mean 'brats20\d\d'\?\); known layouts: brats2015, "
    with pytest.raises(ValueError, match=match):
        get_source("brats")
    with pytest.raises(ValueError, match=r"'brats2021' does not take the option\(s\) labels"):
        get_source("brats2021", labels="manual")
