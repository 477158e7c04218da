"""read_nifti: canonical orientation, spacing, dtypes."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from calfseg.data.sources.base import CaseError
from calfseg.data.sources.nifti import read_nifti

from .fakes import LPS, image_data, label_data, to_ras, write_nifti


def test_lps_file_is_flipped_to_ras_with_unchanged_shape(tmp_path):
    stored = write_nifti(tmp_path / "a.nii.gz", image_data(1))
    volume = read_nifti("c1", tmp_path / "a.nii.gz", label=False)
    assert volume.array.dtype == np.float32
    np.testing.assert_array_equal(volume.array, to_ras(stored))
    assert nib.aff2axcodes(volume.affine) == ("R", "A", "S")
    assert volume.spacing == (1.0, 1.0, 2.0)
    # The canonical affine maps the same voxel to the same world point.
    np.testing.assert_allclose(volume.affine @ [7, 5, 0, 1], LPS @ [0, 0, 0, 1])


def test_permuted_axes_are_reordered_and_spacing_follows(tmp_path):
    # Stored axis 0 runs anterior (2 mm), axis 1 inferior (3 mm), axis 2 left (1.5 mm).
    affine = np.array(
        [[0.0, 0.0, -1.5, 0.0], [2.0, 0.0, 0.0, 0.0], [0.0, -3.0, 0.0, 0.0], [0, 0, 0, 1]]
    )
    stored = write_nifti(tmp_path / "p.nii", image_data(2, (5, 4, 3)), affine)
    volume = read_nifti("c1", tmp_path / "p.nii", label=False)
    expected = np.transpose(stored, (2, 0, 1))[::-1, :, ::-1]
    np.testing.assert_array_equal(volume.array, expected)
    assert volume.spacing == (1.5, 2.0, 3.0)
    assert nib.aff2axcodes(volume.affine) == ("R", "A", "S")


def test_arrays_are_fortran_ordered_so_axial_slices_are_contiguous(tmp_path):
    write_nifti(tmp_path / "a.nii.gz", image_data(1))
    volume = read_nifti("c1", tmp_path / "a.nii.gz", label=False)
    assert volume.array.flags.f_contiguous
    assert volume.array[..., 1].flags.contiguous or volume.array[..., 1].flags.f_contiguous


def test_scaled_integer_image_is_read_as_float32(tmp_path):
    image = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4) + 1, np.eye(4))
    image.header.set_slope_inter(0.5, 10.0)
    nib.save(image, str(tmp_path / "s.nii.gz"))
    volume = read_nifti("c1", tmp_path / "s.nii.gz", label=False)
    assert volume.array.dtype == np.float32
    assert volume.array[0, 0, 0] == pytest.approx(10.5)


def test_float_labels_close_to_integers_become_integers(tmp_path):
    stored = label_data().astype(np.float32) + np.float32(1e-4)
    stored[stored < 0.5] = 0
    write_nifti(tmp_path / "l.nii.gz", stored)
    volume = read_nifti("c1", tmp_path / "l.nii.gz", label=True)
    assert np.issubdtype(volume.array.dtype, np.integer)
    np.testing.assert_array_equal(volume.array, to_ras(label_data()))


def test_2d_file_becomes_one_slice(tmp_path):
    write_nifti(tmp_path / "s.nii.gz", image_data(3, (8, 6)), np.eye(4))
    assert read_nifti("c1", tmp_path / "s.nii.gz", label=False).array.shape == (8, 6, 1)


def test_4d_file_with_several_volumes_is_refused(tmp_path):
    write_nifti(tmp_path / "t.nii.gz", image_data(3, (4, 4, 4, 2)))
    with pytest.raises(CaseError, match=r"case c1 .*t\.nii\.gz.*3D volume"):
        read_nifti("c1", tmp_path / "t.nii.gz", label=False)


def test_missing_file_is_a_case_error(tmp_path):
    with pytest.raises(CaseError, match=r"case c1 .*gone\.nii\.gz.*cannot read"):
        read_nifti("c1", tmp_path / "gone.nii.gz", label=False)


def test_truncated_gzip_of_a_larger_file_fails_in_the_data(tmp_path):
    # Large enough that the header survives and the data read hits the end of the stream.
    write_nifti(tmp_path / "big.nii.gz", image_data(8, (32, 32, 16)))
    path = tmp_path / "big.nii.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(
        CaseError, match=r"case c1 \(.*big\.nii\.gz\): corrupt or truncated gzip file \(EOFError"
    ):
        read_nifti("c1", path, label=False)


@pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.int16, np.float64])
def test_labels_of_any_stored_dtype_come_back_compact(tmp_path, dtype):
    stored = label_data().astype(dtype)
    nib.save(nib.Nifti1Image(stored, LPS, dtype=dtype), str(tmp_path / "l.nii.gz"))
    volume = read_nifti("c1", tmp_path / "l.nii.gz", label=True)
    assert volume.array.dtype == np.uint8
    np.testing.assert_array_equal(volume.array, to_ras(label_data()))
