"""Mask files: finding them, each reader, validation of labels, foreground selection."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from calfseg.data.files.masks import (
    MaskFileError,
    find_mask_files,
    foreground,
    read_mask,
)
from calfseg.extras import MissingExtraError

LABELS_2D = np.array([[0, 1, 1], [2, 0, 4]], dtype=np.uint8)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, LABELS_2D)
    else:
        path.write_bytes(b"")
    return path


def _save_nifti(path: Path, array: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))
    return path


def _save_png_palette(path: Path, array: np.ndarray) -> Path:
    image = Image.frombytes("P", (array.shape[1], array.shape[0]), array.tobytes())
    image.putpalette(list(range(256)) * 3)
    image.save(path)
    return path


# -- find_mask_files ----------------------------------------------------------------------


def test_find_mask_files_recurses_sorts_and_skips_hidden_and_other_suffixes(
    tmp_path: Path,
) -> None:
    for name in ["b/seg.nii.gz", "a/x.PNG", "a/y.tif", "c.npy", "d.tiff", "e.nii"]:
        _touch(tmp_path / name)
    for name in ["notes.txt", "a/x.json", ".hidden.npy", ".cache/z.npy", "f.npz"]:
        _touch(tmp_path / name)
    found = [p.relative_to(tmp_path).as_posix() for p in find_mask_files(tmp_path)]
    assert found == ["a/x.PNG", "a/y.tif", "b/seg.nii.gz", "c.npy", "d.tiff", "e.nii"]


def test_find_mask_files_glob_matches_the_file_name(tmp_path: Path) -> None:
    for name in ["p1/img.nii.gz", "p1/seg.nii.gz", "p2/img.nii.gz", "p2/my_seg.nii.gz"]:
        _touch(tmp_path / name)
    found = find_mask_files(tmp_path, mask_glob="*seg*.nii.gz")
    assert [p.name for p in found] == ["seg.nii.gz", "my_seg.nii.gz"]


def test_find_mask_files_glob_with_a_slash_matches_the_relative_path(tmp_path: Path) -> None:
    for name in ["labels/a.png", "images/a.png"]:
        _touch(tmp_path / name)
    found = find_mask_files(tmp_path, mask_glob="labels/*")
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["labels/a.png"]


def test_find_mask_files_accepts_a_single_file_and_rejects_other_suffixes(
    tmp_path: Path,
) -> None:
    mask = _touch(tmp_path / "m.npy")
    assert find_mask_files(mask) == [mask]
    other = _touch(tmp_path / "m.txt")
    with pytest.raises(MaskFileError, match=r"m\.txt: not a mask file"):
        find_mask_files(other)
    with pytest.raises(FileNotFoundError, match="missing"):
        find_mask_files(tmp_path / "missing")


def test_find_mask_files_gives_an_empty_list_when_nothing_matches(tmp_path: Path) -> None:
    _touch(tmp_path / "a.npy")
    assert find_mask_files(tmp_path, mask_glob="*seg*") == []


# -- readers ------------------------------------------------------------------------------


def test_read_npy_keeps_integer_dtype_and_layout(tmp_path: Path) -> None:
    volume = np.zeros((4, 5, 3), dtype=np.int16)
    volume[1:3, 1:4, 2] = 7
    np.save(tmp_path / "v.npy", volume)
    out = read_mask(tmp_path / "v.npy")
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, volume)


def test_read_npy_bool_becomes_uint8(tmp_path: Path) -> None:
    np.save(tmp_path / "b.npy", LABELS_2D > 0)
    out = read_mask(tmp_path / "b.npy")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, (LABELS_2D > 0).astype(np.uint8))


def test_read_nifti_float_labels_become_integers_as_stored(tmp_path: Path) -> None:
    volume = np.zeros((6, 5, 4), dtype=np.float32)
    volume[1:3, 2:4, 1] = 4.0
    volume[0, 0, 3] = 1.0
    out = read_mask(_save_nifti(tmp_path / "v.nii.gz", volume))
    assert out.shape == (6, 5, 4)  # as stored: no reorientation
    assert np.issubdtype(out.dtype, np.integer)
    np.testing.assert_array_equal(out, volume.astype(np.uint8))
    plain = read_mask(_save_nifti(tmp_path / "v.nii", volume))
    np.testing.assert_array_equal(plain, out)


def test_read_nifti_rounds_labels_distorted_by_a_scale_factor(tmp_path: Path) -> None:
    volume = np.zeros((4, 4, 2), dtype=np.float64)
    volume[1:3, 1:3, 0] = 0.99999997  # what an int32 file with scl_slope reads back as
    out = read_mask(_save_nifti(tmp_path / "scaled.nii.gz", volume))
    assert out.max() == 1 and int(out.sum()) == 4


def test_read_nifti_drops_trailing_singleton_axes(tmp_path: Path) -> None:
    volume = np.zeros((5, 4, 3, 1), dtype=np.uint8)
    volume[0, 0, 0, 0] = 1
    assert read_mask(_save_nifti(tmp_path / "v4.nii.gz", volume)).shape == (5, 4, 3)


def test_read_png_grey_palette_and_grey_rgb(tmp_path: Path) -> None:
    Image.fromarray(LABELS_2D).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "grey.png"), LABELS_2D)
    np.testing.assert_array_equal(
        read_mask(_save_png_palette(tmp_path / "pal.png", LABELS_2D)), LABELS_2D
    )
    rgb = np.repeat(LABELS_2D[..., None], 3, axis=2)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png"), LABELS_2D)


def test_read_png_refuses_a_colour_image(tmp_path: Path) -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    with pytest.raises(MaskFileError, match=r"colour\.png: .*differing colour channels"):
        read_mask(tmp_path / "colour.png")


def test_read_tiff_2d_and_stack_with_pages_moved_last(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "m.tif", LABELS_2D)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.tif"), LABELS_2D)
    stack = np.zeros((3, 4, 5), dtype=np.uint8)  # (pages, H, W)
    stack[1, :2, :2] = 1
    stack[2, :, :] = 2
    tifffile.imwrite(tmp_path / "s.tiff", stack, photometric="minisblack")
    out = read_mask(tmp_path / "s.tiff")
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(np.moveaxis(out, -1, 0), stack)


# -- validation ---------------------------------------------------------------------------


def test_truncated_nifti_names_the_file(tmp_path: Path) -> None:
    volume = np.random.default_rng(0).integers(0, 3, size=(30, 30, 20)).astype(np.uint8)
    path = _save_nifti(tmp_path / "cut.nii.gz", volume)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(MaskFileError, match=r"cut\.nii\.gz: cannot read the file"):
        read_mask(path)


def test_garbage_gzip_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header at all"))
    with pytest.raises(MaskFileError, match=r"junk\.nii\.gz: cannot read"):
        read_mask(path)


def test_non_integer_values_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.array([[0.0, 0.5], [1.0, 2.0]], dtype=np.float32))
    with pytest.raises(MaskFileError, match=r"f\.npy: has non-integer values \(e\.g\. 0\.5\)"):
        read_mask(tmp_path / "f.npy")


def test_nan_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "n.npy", np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(MaskFileError, match="NaN"):
        read_mask(tmp_path / "n.npy")


def test_many_distinct_values_look_like_an_image(tmp_path: Path) -> None:
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(image).save(tmp_path / "photo.png")
    with pytest.raises(MaskFileError, match=r"photo\.png: looks like an image, not a mask"):
        read_mask(tmp_path / "photo.png")
    assert read_mask(tmp_path / "photo.png", max_labels=64).shape == (8, 8)


def test_sparse_label_values_are_counted_not_ranged(tmp_path: Path) -> None:
    labels = np.zeros((4, 4), dtype=np.int32)
    labels[0, :3] = [1, 1000, 60000]  # wide range, few distinct values
    np.save(tmp_path / "sparse.npy", labels)
    np.testing.assert_array_equal(read_mask(tmp_path / "sparse.npy"), labels)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros(5, dtype=np.uint8), "expected a 2D mask or a 3D volume"),
        (np.zeros((2, 2, 2, 2), dtype=np.uint8), "expected a 2D mask or a 3D volume"),
        (np.zeros((0, 3), dtype=np.uint8), "holds no pixels"),
        (np.zeros((2, 2), dtype=np.complex64), "not integer labels"),
    ],
)
def test_bad_shapes_and_dtypes_are_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(MaskFileError, match=message):
        read_mask(tmp_path / "bad.npy")


def test_missing_nibabel_raises_the_extra_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save_nifti(tmp_path / "v.nii.gz", np.zeros((2, 2, 2), dtype=np.uint8))
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'calf-seg\[io\]'"):
        read_mask(path)


# -- foreground ---------------------------------------------------------------------------


def test_foreground_defaults_to_positive_labels() -> None:
    labels = np.array([[5, 0, 1], [2, 3, 4]])
    np.testing.assert_array_equal(foreground(labels), labels > 0)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.float32])
def test_negative_labels_are_refused_unless_the_foreground_is_named(dtype) -> None:
    coded = np.array([[0, -1, -2], [-3, -4, 0]], dtype=dtype)  # a mask coded below 0
    with pytest.raises(ValueError, match=r"label values below 0 \(lowest -4\).*--labels=-1,-2"):
        foreground(coded)
    np.testing.assert_array_equal(foreground(coded, [-1, -4]), np.isin(coded, [-1, -4]))


def test_foreground_selects_the_given_labels() -> None:
    np.testing.assert_array_equal(foreground(LABELS_2D, [1, 4]), np.isin(LABELS_2D, [1, 4]))
    np.testing.assert_array_equal(foreground(LABELS_2D, [2]), LABELS_2D == 2)
    with pytest.raises(ValueError, match="at least one label"):
        foreground(LABELS_2D, [])


def test_integer_label_map_with_hundreds_of_labels_is_a_mask(tmp_path: Path) -> None:
    seg = (np.arange(20 * 20 * 3).reshape(20, 20, 3) % 300).astype(np.int16)  # 300 labels
    np.save(tmp_path / "seg.npy", seg)
    np.testing.assert_array_equal(read_mask(tmp_path / "seg.npy"), seg)


def test_float_data_with_many_whole_numbers_is_refused_naming_the_override(
    tmp_path: Path,
) -> None:
    ct = np.arange(-500, 500, dtype=np.float32).reshape(20, 50)  # Hounsfield-like, integral
    np.save(tmp_path / "ct.npy", ct)
    with pytest.raises(MaskFileError, match=r"ct\.npy: looks like an image.*--max-labels N"):
        read_mask(tmp_path / "ct.npy")
    assert read_mask(tmp_path / "ct.npy", max_labels=1000).shape == (20, 50)


def test_grey_png_with_many_levels_is_still_an_image(tmp_path: Path) -> None:
    """PNG/TIFF store photographs as integers: their grey levels are still counted."""
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "photo.png")
    with pytest.raises(MaskFileError, match=r"grey values; .*--max-labels"):
        read_mask(tmp_path / "photo.png")
