"""brats2015: DeepMedic's BraTS 2015 folders (Flair_*, T1c_*, OTMultiClass)."""

from __future__ import annotations

import numpy as np
import pytest

from calfseg.data.sources import Brats2015Source, CaseError

from ...shared_data import BRATS2015_SUBSET
from .fakes import brats2015_case, to_ras


def test_finds_cases_with_flair_t1c_and_optional_t2(tmp_path):
    brats2015_case(tmp_path, "brats_2013_pat0002_1", seed=2, t2=True)
    brats2015_case(tmp_path, "brats_2013_pat0001_1", seed=1)
    cases = Brats2015Source().find_cases(tmp_path)
    assert [c.case_id for c in cases] == ["brats_2013_pat0001_1", "brats_2013_pat0002_1"]
    assert set(cases[0].images) == {"flair", "t1c"}
    assert set(cases[1].images) == {"flair", "t1c", "t2"}
    assert cases[0].label is not None and cases[0].label.name == "OTMultiClass.nii.gz"
    assert len(cases[0].files) == 3 and not cases[0].problems  # brainmask, licence left out


def test_load_gives_canonical_float32_images_and_integer_labels(tmp_path):
    written, label = brats2015_case(tmp_path, "p1", seed=3)
    volumes = Brats2015Source().load(Brats2015Source().find_cases(tmp_path)[0])
    assert volumes.dataset == "brats2015" and volumes.case_id == "p1"
    for modality, stored in written.items():
        assert volumes.images[modality].dtype == np.float32
        np.testing.assert_array_equal(volumes.images[modality], to_ras(stored))
    np.testing.assert_array_equal(volumes.label, to_ras(label))
    assert volumes.label.dtype == np.uint8
    assert volumes.spacing == (1.0, 1.0, 2.0)


def test_case_folders_may_sit_one_level_down(tmp_path):
    brats2015_case(tmp_path / "HGG", "hgg_case")
    brats2015_case(tmp_path / "LGG", "lgg_case")
    assert Brats2015Source.detect(tmp_path)
    assert [c.case_id for c in Brats2015Source().find_cases(tmp_path)] == ["hgg_case", "lgg_case"]


def test_missing_t1c_is_a_problem_and_load_names_the_file(tmp_path):
    brats2015_case(tmp_path, "p1")
    (tmp_path / "p1" / "T1c_subtrMeanDivStd.nii.gz").unlink()
    (case,) = Brats2015Source().find_cases(tmp_path)
    assert case.problems == ("no t1c file T1c_*.nii.gz in p1",)
    with pytest.raises(CaseError, match=r"case p1: no t1c file T1c_\*\.nii\.gz"):
        Brats2015Source().load(case)


@pytest.mark.skipif(not BRATS2015_SUBSET.is_dir(), reason="shared BraTS 2015 subset missing")
def test_loads_a_real_brats2015_case():
    source = Brats2015Source()
    assert Brats2015Source.detect(BRATS2015_SUBSET)
    cases = source.find_cases(BRATS2015_SUBSET)
    assert len(cases) == 6 and all(not c.problems for c in cases)
    volumes = source.load(cases[0])
    assert set(volumes.images) == {"flair", "t1c"}
    # Stored LPS: canonical RAS flips x and y, so the shape is unchanged.
    assert volumes.label.shape == (240, 240, 155)
    assert all(v.shape == (240, 240, 155) for v in volumes.images.values())
    assert set(np.unique(volumes.label)) <= {0, 1, 2, 3, 4}
    assert volumes.spacing == (1.0, 1.0, 1.0)
