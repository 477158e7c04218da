"""brats2021: BraTS2021_NNNNN folders; and the bad-input checks shared by NIfTI layouts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from calfseg.data.sources import Brats2021Source, CaseError

from .fakes import LPS, brats2021_case, image_data, to_ras, write_nifti

CASE = "BraTS2021_00012"


def test_finds_cases_and_normalises_t1ce(tmp_path):
    brats2021_case(tmp_path, "BraTS2021_00012")
    brats2021_case(tmp_path, "BraTS2021_00003")
    (tmp_path / "notes").mkdir()
    cases = Brats2021Source().find_cases(tmp_path)
    assert [c.case_id for c in cases] == ["BraTS2021_00003", "BraTS2021_00012"]
    assert set(cases[0].images) == {"flair", "t1", "t1c", "t2"}
    assert cases[0].images["t1c"].name == "BraTS2021_00003_t1ce.nii.gz"
    assert len(cases[0].files) == 5 and not cases[0].problems


def test_load_maps_each_file_to_its_modality(tmp_path):
    written, label = brats2021_case(tmp_path, CASE, seed=4)
    volumes = Brats2021Source().load(Brats2021Source().find_cases(tmp_path)[0])
    for modality in ("flair", "t1", "t1c", "t2"):
        np.testing.assert_array_equal(volumes.images[modality], to_ras(written[modality]))
    np.testing.assert_array_equal(volumes.label, to_ras(label))


def test_brats2020_folders_are_read_too(tmp_path):
    brats2021_case(tmp_path, "BraTS20_Training_001")
    assert [c.case_id for c in Brats2021Source().find_cases(tmp_path)] == ["BraTS20_Training_001"]


def test_modalities_option_lists_and_reads_only_those(tmp_path):
    brats2021_case(tmp_path, CASE)
    source = Brats2021Source(modalities=["T2", "FLAIR"])
    (case,) = source.find_cases(tmp_path)
    assert list(case.images) == ["t2", "flair"] and len(case.files) == 3
    assert set(source.load(case).images) == {"t2", "flair"}
    with pytest.raises(ValueError, match="no modality 'adc'"):
        Brats2021Source(modalities=["adc"])


# -- bad inputs: each is a CaseError naming the case and the file ------------------------


def _case_path(tmp_path, token):
    return tmp_path / CASE / f"{CASE}_{token}.nii.gz"


def _load(tmp_path):
    source = Brats2021Source()
    (case,) = source.find_cases(tmp_path)
    return case, source


@pytest.mark.parametrize(
    ("token", "message"),
    [("t2", f"no t2 file {CASE}_t2.nii.gz"), ("seg", f"no label file {CASE}_seg.nii.gz")],
)
def test_missing_file_is_a_problem_and_load_refuses(tmp_path, token, message):
    brats2021_case(tmp_path, CASE)
    _case_path(tmp_path, token).unlink()
    case, source = _load(tmp_path)
    assert any(message in p for p in case.problems)
    with pytest.raises(CaseError, match=f"case {CASE}: .*{re.escape(message)}"):
        source.load(case)


def _corrupt(tmp_path, token, kind):
    path = _case_path(tmp_path, token)
    if kind == "shape":
        write_nifti(path, image_data(7, (8, 6, 5)))
    elif kind == "affine":
        shifted = LPS.copy()
        shifted[0, 3] += 0.5
        write_nifti(path, image_data(7), shifted)
    elif kind == "fraction":
        labels = np.zeros((8, 6, 4), np.float32)
        labels[1, 1, 1] = 0.5
        write_nifti(path, labels)
    elif kind == "empty":
        write_nifti(path, np.zeros((8, 6, 4), np.float32))
    elif kind == "truncated":
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "not-gzip":
        path.write_bytes(b"this is not a gzip stream" * 20)
    return path


@pytest.mark.parametrize(
    ("kind", "token", "reason"),
    [
        (
            "shape",
            "t1",
            r"shape \(8, 6, 5\) of .*_t1\.nii\.gz differs from shape \(8, 6, 4\) "
            r"of the label .*_seg\.nii\.gz",
        ),
        ("affine", "t2", r"affine of .*_t2\.nii\.gz differs from that of .*_seg\.nii\.gz"),
        ("fraction", "seg", r"non-integer values \(e\.g\. 0\.5\)"),
        ("empty", "flair", r"empty volume"),
        ("truncated", "t1ce", r"corrupt or truncated gzip file \(EOFError"),
        ("not-gzip", "flair", r"corrupt or truncated gzip file \(BadGzipFile"),
        ("truncated", "seg", r"corrupt or truncated gzip file"),
    ],
    ids=[
        "shape",
        "affine",
        "fractional-label",
        "empty",
        "truncated",
        "not-gzip",
        "truncated-label",
    ],
)
def test_bad_file_gives_case_error_naming_case_and_file(tmp_path, kind, token, reason):
    brats2021_case(tmp_path, CASE)
    path = _corrupt(tmp_path, token, kind)
    case, source = _load(tmp_path)
    assert not case.problems  # listing reads no file: the damage shows at load
    with pytest.raises(CaseError) as caught:
        source.load(case)
    assert caught.value.case_id == CASE
    assert caught.value.path == path
    assert str(caught.value).startswith(f"case {CASE} ({path}): ")
    assert re.search(reason, str(caught.value))
