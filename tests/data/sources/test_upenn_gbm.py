"""upenn-gbm: images_structural + automated_segm / images_segm."""

from __future__ import annotations

import numpy as np
import pytest

from calfseg.data.sources import CaseError, UpennGbmSource

from .fakes import to_ras, upenn_scan


@pytest.fixture
def upenn(tmp_path):
    root = tmp_path / "NIfTI-files"
    upenn_scan(root, "UPENN-GBM-00001_11", seed=1, manual=True)
    upenn_scan(root, "UPENN-GBM-00002_11", seed=2)
    upenn_scan(root, "UPENN-GBM-00003_11", seed=3)
    upenn_scan(root, "UPENN-GBM-00003_21", seed=4)
    upenn_scan(root, "UPENN-GBM-00004_11", seed=5, automated=False)
    return tmp_path


def test_case_ids_keep_the_time_point_only_for_patients_with_several(upenn):
    cases = UpennGbmSource().find_cases(upenn)
    assert [c.case_id for c in cases] == [
        "UPENN-GBM-00001",
        "UPENN-GBM-00002",
        "UPENN-GBM-00003_11",
        "UPENN-GBM-00003_21",
        "UPENN-GBM-00004",
    ]
    assert cases[0].images["t1c"].name == "UPENN-GBM-00001_11_T1GD.nii.gz"
    assert set(cases[0].images) == {"flair", "t1", "t1c", "t2"}


def test_automated_labels_by_default(upenn):
    cases = UpennGbmSource().find_cases(upenn)
    assert [c.info.get("label") for c in cases] == ["automated"] * 4 + [None]
    assert cases[0].label is not None and cases[0].label.parent.name == "automated_segm"
    volumes = UpennGbmSource().load(cases[0])
    assert set(np.unique(volumes.label)) == {0, 1, 4}
    assert (
        "no label file automated_segm/UPENN-GBM-00004_11_automated_approx_segm"
        in (cases[4].problems[0])
    )
    with pytest.raises(CaseError, match="UPENN-GBM-00004: no label file"):
        UpennGbmSource().load(cases[4])


def test_manual_labels_where_present_else_automated(upenn):
    source = UpennGbmSource(labels="manual")
    cases = source.find_cases(upenn)
    assert [c.info.get("label") for c in cases[:2]] == ["manual", "automated"]
    assert cases[0].label is not None and cases[0].label.name == "UPENN-GBM-00001_11_segm.nii.gz"
    manual = source.load(cases[0])
    assert set(np.unique(manual.label)) == {0, 2, 4}  # the manual file, not the automated
    assert "images_segm/UPENN-GBM-00004_11_segm.nii.gz or automated_segm/" in cases[4].problems[0]


def test_load_gives_the_structural_images(upenn):
    written = upenn_scan(upenn / "other", "UPENN-GBM-00009_11", seed=9)
    (case,) = UpennGbmSource().find_cases(upenn / "other")
    volumes = UpennGbmSource().load(case)
    for modality, stored in written.items():
        np.testing.assert_array_equal(volumes.images[modality], to_ras(stored))


def test_unknown_label_choice_is_refused():
    with pytest.raises(ValueError, match=r"unknown labels .*; valid names: automated, manual"):
        UpennGbmSource(labels="best")


def test_time_points_of_one_patient_share_the_patient_id(upenn):
    cases = UpennGbmSource().find_cases(upenn)
    assert [c.patient for c in cases] == [
        "UPENN-GBM-00001",
        "UPENN-GBM-00002",
        "UPENN-GBM-00003",
        "UPENN-GBM-00003",
        "UPENN-GBM-00004",
    ]
