"""--layout nnunet: nnU-Net v2 raw datasets (several channels, 2D PNG) and Decathlon tasks
(4D volumes), auto-detected; dataset.json errors named."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
import pytest

from calfseg.data.sources import CaseError, NnUNetSource, detect_layout, open_source
from calfseg.data.sources.nnunet_json import DatasetJsonError
from tests.nnunet.raw_datasets import write_msd, write_v2_nifti, write_v2_png


def _canonical(path: Path) -> np.ndarray:
    """Independent reference: nibabel's canonical orientation of the file."""
    return np.asarray(nibabel.as_closest_canonical(nibabel.load(path)).dataobj)


def test_v2_dataset_with_two_channels(tmp_path: Path) -> None:
    root = write_v2_nifti(tmp_path / "Dataset002_TwoChannels", cases=3)
    reader, message = open_source(root)
    assert message == "layout: nnunet (detected)"
    cases = reader.find_cases(root)
    assert [c.case_id for c in cases] == ["case0", "case1", "case2"]
    case = cases[1]
    assert not case.problems and list(case.images) == ["t2", "adc"]
    volumes = reader.load(case)
    for modality, channel in (("t2", 0), ("adc", 1)):
        expected = _canonical(root / "imagesTr" / f"case1_{channel:04d}.nii.gz")
        np.testing.assert_array_equal(volumes.images[modality], expected)
    np.testing.assert_array_equal(volumes.label, _canonical(root / "labelsTr" / "case1.nii.gz"))
    assert volumes.spacing == (1.0, 1.0, 2.0)


def test_msd_task_with_4d_volumes(tmp_path: Path) -> None:
    root = write_msd(tmp_path / "Task01_Tiny", cases=3)
    assert detect_layout(root) == "nnunet"
    reader = NnUNetSource()
    cases = reader.find_cases(root)
    assert [c.case_id for c in cases] == ["tiny_000", "tiny_001", "tiny_002"]  # no "._" files
    volumes = reader.load(cases[2])
    assert list(volumes.images) == ["flair", "t1"]
    four_d = _canonical(root / "imagesTr" / "tiny_002.nii.gz")
    assert four_d.shape == (16, 16, 4, 2)
    np.testing.assert_array_equal(volumes.images["flair"], four_d[..., 0])
    np.testing.assert_array_equal(volumes.images["t1"], four_d[..., 1])
    assert not np.array_equal(volumes.images["flair"], volumes.images["t1"])
    np.testing.assert_array_equal(volumes.label, _canonical(root / "labelsTr" / "tiny_002.nii.gz"))


def test_msd_channels_can_be_chosen(tmp_path: Path) -> None:
    root = write_msd(tmp_path / "Task01_Tiny", cases=1)
    reader = NnUNetSource(modalities=["T1w"])
    (case,) = reader.find_cases(root)
    volumes = reader.load(case)
    np.testing.assert_array_equal(
        volumes.images["t1"], _canonical(root / "imagesTr" / "tiny_000.nii.gz")[..., 1]
    )
    assert list(volumes.images) == ["t1"]
    with pytest.raises(ValueError, match="has no modality 't2'; it has: flair, t1"):
        NnUNetSource(modalities=["t2"]).find_cases(root)


def test_2d_png_dataset_is_one_slice_per_case(tmp_path: Path) -> None:
    from PIL import Image

    root = write_v2_png(tmp_path, 7, cases=2)
    reader, _ = open_source(root)
    case = reader.find_cases(root)[0]
    volumes = reader.load(case)
    image = np.asarray(Image.open(root / "imagesTr" / "disc_000_0000.png"))
    label = np.asarray(Image.open(root / "labelsTr" / "disc_000.png"))
    assert volumes.images["grey"].shape == (64, 64, 1)
    np.testing.assert_array_equal(volumes.images["grey"][..., 0], image.astype(np.float32))
    np.testing.assert_array_equal(volumes.label[..., 0], label)
    assert set(np.unique(volumes.label)) == {0, 1, 2}


def test_missing_channel_and_label_are_case_problems(tmp_path: Path) -> None:
    root = write_v2_nifti(tmp_path / "Dataset002_X", cases=2)
    (root / "imagesTr" / "case0_0001.nii.gz").unlink()
    (root / "labelsTr" / "case1.nii.gz").unlink()
    reader = NnUNetSource()
    first, second = reader.find_cases(root)
    assert first.problems == ("no channel 1 (adc) file case0_0001.nii.gz",)
    assert second.problems == ("no label file labelsTr/case1.nii.gz",)
    with pytest.raises(CaseError, match="no channel 1"):
        reader.load(first)


def _rewrite_labels(root: Path, labels: object) -> None:
    data = json.loads((root / "dataset.json").read_text())
    if labels is None:
        del data["labels"]
    else:
        data["labels"] = labels
    (root / "dataset.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (None, "has no 'labels'"),
        ({"background": 0, "tumour": 1.5}, "label 'tumour' has the value 1.5"),
        ({"background": 0, "tumour": "one"}, "label 'tumour' has the value 'one'"),
        ({"background": 0, "tumour": -1}, "label 'tumour' has the value -1"),
        ({"tumour": 1}, r"no label has the value 0 \(background\); the labels are tumour=1"),
        ({"background": 0, "tumour": 1, "ignore": 2}, "labels declare 'ignore': 2"),
        ({"background": 0}, "only the background"),
    ],
)
def test_labels_that_cannot_be_mapped_are_named(tmp_path: Path, labels, message) -> None:
    root = write_v2_nifti(tmp_path / "Dataset002_X", cases=1)
    _rewrite_labels(root, labels)
    with pytest.raises(DatasetJsonError, match=message):
        NnUNetSource().find_cases(root)


def test_region_labels_map_to_their_values(tmp_path: Path) -> None:
    root = write_v2_nifti(tmp_path / "Dataset002_X", cases=1)
    _rewrite_labels(root, {"background": 0, "whole": [1, 2], "core": [2]})
    (case,) = NnUNetSource().find_cases(root)
    assert case.info["labels"] == "0=background,1=whole,2=whole"
    NnUNetSource().load(case)  # label values 0 and 1 are declared


def test_label_values_beyond_the_declared_ones_are_a_case_error(tmp_path: Path) -> None:
    root = write_msd(tmp_path / "Task01_Tiny", cases=1)
    path = root / "labelsTr" / "tiny_000.nii.gz"
    image = nibabel.load(path)
    data = np.asarray(image.dataobj).copy()
    data[0, 0, 0] = 3
    nibabel.save(nibabel.Nifti1Image(data, image.affine), path)
    reader = NnUNetSource()
    (case,) = reader.find_cases(root)
    with pytest.raises(CaseError, match=r"label value\(s\) 3 are not among the labels"):
        reader.load(case)


def test_4d_volume_with_the_wrong_channel_count(tmp_path: Path) -> None:
    root = write_msd(tmp_path / "Task01_Tiny", cases=1)
    data = json.loads((root / "dataset.json").read_text())
    data["modality"] = {"0": "FLAIR", "1": "T1w", "2": "T2w"}
    (root / "dataset.json").write_text(json.dumps(data))
    reader = NnUNetSource()
    (case,) = reader.find_cases(root)
    with pytest.raises(CaseError, match="expected 3 channel"):
        reader.load(case)


def test_dataset_json_without_channels_is_named(tmp_path: Path) -> None:
    root = write_v2_nifti(tmp_path / "Dataset002_X", cases=1)
    data = json.loads((root / "dataset.json").read_text())
    del data["channel_names"]
    (root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(DatasetJsonError, match="neither 'channel_names'"):
        NnUNetSource().find_cases(root)


def test_channels_outside_the_papers_modalities_are_all_prepared_by_default(
    tmp_path: Path,
) -> None:
    from calfseg.data.cache import SliceCache
    from calfseg.data.preparation.entry import prepare

    root = write_v2_nifti(tmp_path / "Dataset003_Ct", cases=3)
    data = json.loads((root / "dataset.json").read_text())
    data["channel_names"] = {"0": "CT", "1": "MRI"}  # not brain-tumour MRI sequences
    (root / "dataset.json").write_text(json.dumps(data))
    prepare(root, tmp_path / "cache", size=16, progress=False)
    cache = SliceCache.open(tmp_path / "cache")
    assert sorted(set(cache.index["modality"].tolist())) == ["ct", "mri"]
