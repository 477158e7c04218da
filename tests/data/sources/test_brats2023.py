"""brats2023: BraTS-GLI-NNNNN-NNN folders (t2f, t1n, t1c, t2w, seg)."""

from __future__ import annotations

import numpy as np
import pytest

from calfseg.data.sources import Brats2023Source, CaseError

from .fakes import brats2023_case, to_ras


def test_finds_cases_and_normalises_modalities(tmp_path):
    brats2023_case(
        tmp_path / "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData", "BraTS-GLI-00002-000"
    )
    brats2023_case(
        tmp_path / "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData", "BraTS-GLI-00000-001"
    )
    cases = Brats2023Source().find_cases(tmp_path)
    assert [c.case_id for c in cases] == ["BraTS-GLI-00000-001", "BraTS-GLI-00002-000"]
    assert {m: p.name for m, p in cases[0].images.items()} == {
        "flair": "BraTS-GLI-00000-001-t2f.nii.gz",
        "t1": "BraTS-GLI-00000-001-t1n.nii.gz",
        "t1c": "BraTS-GLI-00000-001-t1c.nii.gz",
        "t2": "BraTS-GLI-00000-001-t2w.nii.gz",
    }


def test_load_maps_each_file_to_its_modality(tmp_path):
    written, label = brats2023_case(tmp_path, "BraTS-GLI-00005-000", seed=5)
    volumes = Brats2023Source().load(Brats2023Source().find_cases(tmp_path)[0])
    for modality, stored in written.items():
        np.testing.assert_array_equal(volumes.images[modality], to_ras(stored))
    np.testing.assert_array_equal(volumes.label, to_ras(label))


def test_paper_modalities_skip_t1(tmp_path):
    brats2023_case(tmp_path, "BraTS-MEN-00005-000")
    source = Brats2023Source(modalities=("t1c", "t2", "flair"))
    (case,) = source.find_cases(tmp_path)
    assert set(case.images) == {"t1c", "t2", "flair"}
    assert not any(p.name.endswith("-t1n.nii.gz") for p in case.files)


def test_validation_case_without_seg_is_listed_with_a_problem(tmp_path):
    brats2023_case(tmp_path, "BraTS-GLI-00001-000")
    (tmp_path / "BraTS-GLI-00001-000" / "BraTS-GLI-00001-000-seg.nii.gz").unlink()
    (case,) = Brats2023Source().find_cases(tmp_path)
    assert case.label is None
    with pytest.raises(
        CaseError, match=r"BraTS-GLI-00001-000: no label file BraTS-GLI-00001-000-seg"
    ):
        Brats2023Source().load(case)
