"""ucsf-pdgm: UCSF-PDGM-NNNN_nifti folders."""

from __future__ import annotations

import numpy as np

from calfseg.data.sources import UcsfPdgmSource

from .fakes import to_ras, ucsf_case


def test_case_id_drops_nifti_and_other_maps_are_ignored(tmp_path):
    ucsf_case(tmp_path, "UCSF-PDGM-0004")
    (case,) = UcsfPdgmSource().find_cases(tmp_path)
    assert case.case_id == "UCSF-PDGM-0004"
    assert {m: p.name for m, p in case.images.items()} == {
        "flair": "UCSF-PDGM-0004_FLAIR.nii.gz",
        "t1": "UCSF-PDGM-0004_T1.nii.gz",
        "t1c": "UCSF-PDGM-0004_T1c.nii.gz",
        "t2": "UCSF-PDGM-0004_T2.nii.gz",
    }
    assert case.label is not None and case.label.name == "UCSF-PDGM-0004_tumor_segmentation.nii.gz"
    assert len(case.files) == 5 and not case.problems


def test_load_and_files_numbered_with_another_width(tmp_path):
    written, label = ucsf_case(tmp_path, "UCSF-PDGM-0007", seed=6)
    folder = tmp_path / "UCSF-PDGM-0007_nifti"
    for path in folder.iterdir():  # the files say 007, the folder 0007
        path.rename(folder / path.name.replace("UCSF-PDGM-0007", "UCSF-PDGM-007"))
    volumes = UcsfPdgmSource().load(UcsfPdgmSource().find_cases(tmp_path)[0])
    assert volumes.case_id == "UCSF-PDGM-0007"
    for modality, stored in written.items():
        np.testing.assert_array_equal(volumes.images[modality], to_ras(stored))
    np.testing.assert_array_equal(volumes.label, to_ras(label))
