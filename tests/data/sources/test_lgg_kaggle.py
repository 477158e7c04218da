"""lgg-kaggle: TCGA folders of RGB TIFF slices and their masks."""

from __future__ import annotations

import numpy as np
import pytest

from calfseg.data.sources import CaseError, LggKaggleSource

from .fakes import kaggle_case

CASE = "TCGA_CS_4941_19960909"


def test_root_may_be_kaggle_3m_or_its_parent(tmp_path):
    kaggle_case(tmp_path / "kaggle_3m", CASE, slices=2)
    (tmp_path / "kaggle_3m" / "data.csv").write_text("Patient\n")
    for root in (tmp_path, tmp_path / "kaggle_3m"):
        assert LggKaggleSource.detect(root)
        (case,) = LggKaggleSource().find_cases(root)
        assert case.case_id == CASE and set(case.images) == {"flair", "t1", "t1c"}
        assert len(case.files) == 4 and case.info == {"spacing": "unknown"}


def test_slices_are_stacked_in_numeric_order_of_k(tmp_path):
    kaggle_case(tmp_path, CASE, slices=12)
    source = LggKaggleSource()
    (case,) = source.find_cases(tmp_path)
    assert [p.name for p in case.files[:6:2]] == [f"{CASE}_{k}.tif" for k in (1, 2, 3)]
    volumes = source.load(case)
    assert volumes.images["t1"].shape == (6, 7, 12)
    k = np.arange(1, 13, dtype=np.float32)
    np.testing.assert_array_equal(volumes.images["t1"][0, 0], k)  # 1, 2, ..., 10, 11, 12
    np.testing.assert_array_equal(volumes.images["flair"][3, 4], 100 + k)
    np.testing.assert_array_equal(volumes.images["t1c"][5, 6], 200 + k)
    assert volumes.label.dtype == np.uint8 and set(np.unique(volumes.label)) == {0, 1}
    np.testing.assert_array_equal(volumes.label[0].sum(axis=0), k.astype(int) % 7)
    assert volumes.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(volumes.affine, np.eye(4))


def test_missing_mask_and_gap_are_problems(tmp_path):
    kaggle_case(tmp_path, CASE, slices=5)
    (tmp_path / CASE / f"{CASE}_3_mask.tif").unlink()
    (tmp_path / CASE / f"{CASE}_4.tif").unlink()
    (tmp_path / CASE / f"{CASE}_4_mask.tif").unlink()
    (case,) = LggKaggleSource().find_cases(tmp_path)
    assert case.problems == (
        f"no mask file {CASE}_3_mask.tif for {CASE}_3.tif",
        f"slices missing in {CASE}: K = 4",
    )
    with pytest.raises(CaseError, match=f"case {CASE}: no mask file {CASE}_3_mask.tif"):
        LggKaggleSource().load(case)


def test_grey_slice_is_refused_naming_the_file(tmp_path):
    import tifffile

    kaggle_case(tmp_path, CASE, slices=3)
    path = tmp_path / CASE / f"{CASE}_2.tif"
    tifffile.imwrite(path, np.ones((6, 7), np.uint8))
    (case,) = LggKaggleSource().find_cases(tmp_path)
    with pytest.raises(CaseError, match=rf"case {CASE} \(.*_2\.tif\): expected an RGB slice"):
        LggKaggleSource().load(case)


def test_t2_is_not_offered():
    with pytest.raises(ValueError, match="has no modality 't2'"):
        LggKaggleSource(modalities=["t2"])
