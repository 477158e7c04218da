"""folder: any data described by a CSV manifest (NIfTI, PNG, TIFF, NPY; 2D or 3D)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from calfseg.data.sources import CaseError, FolderSource

from .fakes import image_data, label_data, to_ras, write_nifti


def _manifest(path: Path, rows: list[str], header: str = "case_id,image,mask,modality") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def mixed(tmp_path):
    """Case a: three 2D PNG slices; case b: one 3D NPY volume; case c: NIfTI, two
    modalities sharing one mask; case d: a 3D TIFF page stack."""
    root = tmp_path / "data"
    (root / "png").mkdir(parents=True)
    slices, masks = [], []
    for k in range(3):
        grey = np.full((5, 4), 10 * (k + 1), np.uint8)
        grey[0, 0] = 1
        mask = np.zeros((5, 4), np.uint8)
        mask[1 : 2 + k, 1] = 255
        Image.fromarray(grey).save(root / "png" / f"a_{k}.png")
        Image.fromarray(mask).save(root / "png" / f"a_{k}_mask.png")
        slices.append(grey)
        masks.append(mask)
    npy_image, npy_mask = image_data(1, (5, 4, 3)), label_data((5, 4, 3))
    np.save(root / "b.npy", npy_image)
    np.save(root / "b_mask.npy", npy_mask)
    flair = write_nifti(root / "c" / "flair.nii.gz", image_data(2))
    t2 = write_nifti(root / "c" / "t2.nii.gz", image_data(3))
    seg = write_nifti(root / "c" / "seg.nii.gz", label_data())
    stack = (image_data(4, (3, 5, 4)) * 100).astype(np.uint16)  # pages first
    tifffile.imwrite(root / "d.tif", stack, photometric="minisblack")
    tifffile.imwrite(root / "d_mask.tif", (stack > 5000).astype(np.uint8), photometric="minisblack")
    manifest = _manifest(
        root / "manifest.csv",
        [
            "a,png/a_0.png,png/a_0_mask.png,",
            "c,c/flair.nii.gz,c/seg.nii.gz,FLAIR",
            "a,png/a_1.png,png/a_1_mask.png,",
            "b,b.npy,b_mask.npy,t2w",
            "c,c/t2.nii.gz,c/seg.nii.gz,T2",
            "a,png/a_2.png,png/a_2_mask.png,",
            f"d,{root / 'd.tif'},{root / 'd_mask.tif'},",
        ],
    )
    expected = {
        "a": (np.stack(slices, -1), (np.stack(masks, -1))),
        "b": (npy_image, npy_mask),
        "c": ({"flair": to_ras(flair), "t2": to_ras(t2)}, to_ras(seg)),
        "d": (np.moveaxis(stack, 0, -1), np.moveaxis(stack > 5000, 0, -1)),
    }
    return manifest, expected


def test_cases_group_rows_and_normalise_modalities(mixed):
    manifest, _ = mixed
    cases = FolderSource(manifest=manifest).find_cases(manifest.parent)
    assert [c.case_id for c in cases] == ["a", "b", "c", "d"]
    a, b, c, _ = cases
    assert list(a.images) == ["image"] and len(a.files) == 6
    assert list(b.images) == ["t2"]
    assert list(c.images) == ["flair", "t2"] and len(c.files) == 3
    assert a.info["spacing"] == "unknown" and "spacing" not in c.info
    assert not any(case.problems for case in cases)


def test_png_slices_are_stacked_in_manifest_order(mixed):
    manifest, expected = mixed
    source = FolderSource(manifest=manifest)
    volumes = source.load(source.find_cases(manifest)[0])
    images, masks = expected["a"]
    np.testing.assert_array_equal(volumes.images["image"], images)
    np.testing.assert_array_equal(volumes.label, masks)
    assert volumes.images["image"].dtype == np.float32 and volumes.label.shape == (5, 4, 3)
    assert volumes.spacing == (1.0, 1.0, 1.0)


def test_npy_tiff_and_nifti_volumes(mixed):
    manifest, expected = mixed
    source = FolderSource()
    cases = {c.case_id: c for c in source.find_cases(manifest.parent)}
    b = source.load(cases["b"])
    np.testing.assert_array_equal(b.images["t2"], expected["b"][0])
    np.testing.assert_array_equal(b.label, expected["b"][1])
    c = source.load(cases["c"])
    for modality, array in expected["c"][0].items():
        np.testing.assert_array_equal(c.images[modality], array)
    np.testing.assert_array_equal(c.label, expected["c"][1])
    assert c.spacing == (1.0, 1.0, 2.0)
    d = source.load(cases["d"])
    np.testing.assert_array_equal(d.images["image"], expected["d"][0])
    np.testing.assert_array_equal(d.label, expected["d"][1])


def test_root_may_be_the_csv_or_a_folder_with_one_manifest(mixed, tmp_path):
    manifest, _ = mixed
    for root in (manifest, manifest.parent, tmp_path):  # tmp_path holds data/manifest.csv
        assert FolderSource.detect(root)
        assert len(FolderSource().find_cases(root)) == 4
    _manifest(tmp_path / "other" / "manifest.csv", [])
    with pytest.raises(ValueError, match="several manifests"):
        FolderSource().find_cases(tmp_path)


def test_missing_files_and_mask_are_problems(tmp_path):
    write_nifti(tmp_path / "img.nii.gz", image_data(1))
    manifest = _manifest(
        tmp_path / "list.csv",
        ["p1,img.nii.gz,,", "p2,absent.nii.gz,img.nii.gz,", "p3,img.nii.gz,seg.bmp,"],
        header="Case_ID, Image ,MASK,modality",
    )
    p1, p2, p3 = FolderSource(manifest=manifest).find_cases(tmp_path)
    assert p1.problems == ("no mask file given for img.nii.gz (manifest line 2)",)
    assert p2.problems[0].startswith(f"image file not found: {tmp_path / 'absent.nii.gz'}")
    assert "unsupported mask file seg.bmp" in p3.problems[0]
    with pytest.raises(CaseError, match=r"case p2: image file not found: .*absent\.nii\.gz"):
        FolderSource(manifest=manifest).load(p2)


def test_modalities_with_different_masks_are_a_problem(tmp_path):
    for name in ("f.nii.gz", "t.nii.gz", "m1.nii.gz", "m2.nii.gz"):
        write_nifti(tmp_path / name, image_data(1))
    manifest = _manifest(
        tmp_path / "m.csv", ["p,f.nii.gz,m1.nii.gz,flair", "p,t.nii.gz,m2.nii.gz,t2"]
    )
    (case,) = FolderSource(manifest=manifest).find_cases(manifest)
    assert "the rows of modality t2 name other masks than those of flair" in case.problems[0]


def test_slices_of_different_shapes_are_refused(tmp_path):
    for k, shape in enumerate([(5, 4), (5, 3)]):
        np.save(tmp_path / f"s{k}.npy", np.ones(shape, np.float32))
        np.save(tmp_path / f"m{k}.npy", np.zeros(shape, np.uint8))
    manifest = _manifest(tmp_path / "m.csv", ["p,s0.npy,m0.npy,", "p,s1.npy,m1.npy,"])
    source = FolderSource(manifest=manifest)
    with pytest.raises(CaseError, match=r"case p \(.*m1\.npy\): slice m1\.npy has shape \(5, 3\)"):
        source.load(source.find_cases(manifest)[0])


def test_colour_png_image_is_refused(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "m.png")
    manifest = _manifest(tmp_path / "m.csv", ["p,c.png,m.png,"])
    source = FolderSource(manifest=manifest)
    with pytest.raises(CaseError, match=r"case p \(.*c\.png\): .*differing colour channels"):
        source.load(source.find_cases(manifest)[0])


def test_non_integer_mask_is_refused_naming_the_file(tmp_path):
    np.save(tmp_path / "i.npy", np.ones((4, 4, 2), np.float32))
    np.save(tmp_path / "m.npy", np.full((4, 4, 2), 0.5, np.float32))
    manifest = _manifest(tmp_path / "m.csv", ["p,i.npy,m.npy,"])
    source = FolderSource(manifest=manifest)
    with pytest.raises(CaseError, match=r"case p \(.*m\.npy\): has non-integer values"):
        source.load(source.find_cases(manifest)[0])


def test_manifest_without_required_columns_is_refused(tmp_path):
    manifest = _manifest(tmp_path / "m.csv", ["p,i.npy"], header="case_id,image")
    with pytest.raises(ValueError, match=r"m\.csv: the manifest lacks the column\(s\) mask"):
        FolderSource(manifest=manifest).find_cases(tmp_path)
