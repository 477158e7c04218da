"""LGG-1p19qDeletion: the authors' PNG slices and a NIfTI conversion, T2 only by default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calfseg.data.sources import CaseError, Lgg1p19qSource, detect_layout, open_source

from .fakes import lgg_1p19q_nifti, lgg_1p19q_slices, to_ras


def test_authors_slices_pair_by_number_and_stack_in_numeric_order(tmp_path: Path):
    # 11 slices: the masks' names sort 1, 10, 11, 2, ... as text; the volume must not.
    lgg_1p19q_slices(tmp_path / "LGG", "LGG-104", slices=11)
    reader, message = open_source(tmp_path)
    assert message == "layout: lgg-1p19q (detected)"
    (case,) = reader.find_cases(tmp_path)
    assert case.case_id == "LGG-104" and case.patient == "LGG-104" and not case.problems
    assert case.info == {"format": "slices", "spacing": "unknown"}
    assert len(case.files) == 22  # every slice and every mask, for change detection
    volumes = reader.load(case)
    assert list(volumes.images) == ["t2"]  # the authors used T2 only
    t2 = volumes.images["t2"]
    assert t2.shape == (6, 7, 11) and t2.dtype == np.float32
    for k in range(1, 12):  # slice K sits at index K - 1 with the pixels written for K
        assert t2[0, 0, k - 1] == 10 + k and t2[-1, -1, k - 1] == 0
        expected = np.zeros((6, 7), dtype=bool)
        expected[0, : k % 5] = True
        np.testing.assert_array_equal(volumes.label[..., k - 1] > 0, expected)
    assert volumes.spacing == (1.0, 1.0, 1.0)


def test_other_modalities_only_when_asked(tmp_path: Path):
    lgg_1p19q_slices(tmp_path, "LGG-203", slices=3, t1=True)
    (case,) = Lgg1p19qSource().find_cases(tmp_path)
    assert list(case.images) == ["t2"]
    reader = Lgg1p19qSource(modalities=["T2", "T1"])
    volumes = reader.load(reader.find_cases(tmp_path)[0])
    assert sorted(volumes.images) == ["t1", "t2"]
    np.testing.assert_array_equal(volumes.images["t1"], volumes.images["t2"] + 90)
    with pytest.raises(ValueError, match="has no modality 'dwi'"):
        Lgg1p19qSource(modalities=["dwi"])


def test_unpaired_or_twice_numbered_slices_are_problems(tmp_path: Path):
    lgg_1p19q_slices(tmp_path, "LGG-210", slices=3)
    (tmp_path / "LGG-210" / "Segmentation" / "tumor_slice_3.png").unlink()
    (tmp_path / "LGG-210" / "T2" / "t2_slice_2.png").write_bytes(b"")  # 2 again, unpadded
    reader = Lgg1p19qSource()
    (case,) = reader.find_cases(tmp_path)
    problems = " | ".join(case.problems)
    assert "no mask for slice 3 (T2/t2_slice_03.png)" in problems
    assert "slice 2 twice in T2: t2_slice_02.png and t2_slice_2.png" in problems
    with pytest.raises(CaseError, match=r"case LGG-210: .*no mask for slice 3"):
        reader.load(case)


@pytest.mark.parametrize("prefixed", [False, True])
def test_nifti_conversion_is_read_in_canonical_orientation(tmp_path: Path, prefixed: bool):
    written, stored_label = lgg_1p19q_nifti(tmp_path, "LGG-216", seed=3, prefixed=prefixed)
    reader, _ = open_source(tmp_path)
    (case,) = reader.find_cases(tmp_path)
    assert not case.problems and case.info == {"format": "nifti"}
    volumes = reader.load(case)
    np.testing.assert_array_equal(volumes.images["t2"], to_ras(written["t2"]))
    np.testing.assert_array_equal(volumes.label, to_ras(stored_label))
    assert volumes.spacing == (1.0, 1.0, 2.0)


def test_tcia_dicom_download_says_to_convert_first(tmp_path: Path):
    series = tmp_path / "LGG-218" / "06-23-1993-NA-MRI HEAD-08431" / "3.000000-AX T2 OBL-93306"
    series.mkdir(parents=True)
    (series / "1-01.dcm").write_bytes(b"DICM")
    assert detect_layout(tmp_path) == "lgg-1p19q"
    (case,) = Lgg1p19qSource().find_cases(tmp_path)
    assert "DICOM files must be converted first" in case.problems[0]
    assert any("no t2 file T2.nii.gz in LGG-218" in p for p in case.problems)


def test_missing_mask_folder_contents_and_t2_folder(tmp_path: Path):
    folder = tmp_path / "LGG-219"
    (folder / "Segmentation").mkdir(parents=True)
    (case,) = Lgg1p19qSource().find_cases(tmp_path)
    assert "no mask slices in LGG-219/Segmentation" in case.problems
    assert "no T2 folder of slices in LGG-219" in case.problems
    assert case.label is None


def test_two_folders_of_one_modality_are_a_problem(tmp_path: Path):
    lgg_1p19q_slices(tmp_path, "LGG-220", slices=2)
    (tmp_path / "LGG-220" / "T2w").mkdir()
    (case,) = Lgg1p19qSource().find_cases(tmp_path)
    assert "several t2 folders in LGG-220: T2, T2w" in case.problems


def test_calf_analyze_finds_the_mask_slices_as_labels(tmp_path: Path):
    from calfseg.data.scan.labels import layout_label_files

    lgg_1p19q_slices(tmp_path, "LGG-222", slices=3)
    found = layout_label_files(tmp_path)
    assert found is not None and found.layout == "lgg-1p19q" and not found.problems
    assert [p.name for p in found.files] == [f"tumor_slice_{k}.png" for k in (1, 2, 3)]
