"""calfseg.data.files.raster: one decoder of PNG/TIFF/NPY pixels for images and masks alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from calfseg.data.files.images import ImageFileError, read_image
from calfseg.data.files.masks import MaskFileError, read_mask
from calfseg.data.files.raster import RasterError, read_raster

GREY = np.arange(12, dtype=np.uint8).reshape(3, 4)


def _palette_png(path: Path, indices: np.ndarray) -> Path:
    image = Image.fromarray(indices, mode="P")
    # index i shows as grey level 10 * i, so indices and colours differ
    image.putpalette([v for i in range(256) for v in (10 * i % 256,) * 3])
    image.save(path)
    return path


def test_a_palette_png_gives_indices_to_masks_and_colours_to_images(tmp_path: Path) -> None:
    path = _palette_png(tmp_path / "p.png", GREY)
    assert np.array_equal(read_raster(path, palette="indices"), GREY)
    assert np.array_equal(read_raster(path, palette="colours"), 10 * GREY)
    assert np.array_equal(read_mask(path), GREY)
    assert np.array_equal(read_image(path), (10 * GREY).astype(np.float32))


@pytest.mark.parametrize("mode", ["LA", "RGB", "RGBA"])
def test_grey_saved_with_alpha_or_as_colour_gives_the_grey_channel(tmp_path: Path, mode) -> None:
    path = tmp_path / f"{mode}.png"
    Image.fromarray(GREY, mode="L").convert(mode).save(path)
    for palette in ("indices", "colours"):
        assert np.array_equal(read_raster(path, palette=palette), GREY)
    assert np.array_equal(read_mask(path), GREY)
    assert np.array_equal(read_image(path), GREY.astype(np.float32))


def test_true_colour_is_refused_in_each_readers_words(tmp_path: Path) -> None:
    rgb = np.stack([GREY, GREY + 1, GREY], axis=-1)
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb, mode="RGB").save(path)
    with pytest.raises(RasterError, match="PNG mode RGB with differing colour channels"):
        read_raster(path, palette="colours")
    with pytest.raises(MaskFileError, match="not a label mask"):
        read_mask(path)
    with pytest.raises(ImageFileError, match="give one grey image per modality"):
        read_image(path)


def test_a_tiff_page_stack_comes_back_with_the_pages_last(tmp_path: Path) -> None:
    pages = np.stack([GREY % 3, (GREY + 1) % 3, (GREY + 2) % 3])  # (pages, H, W), 3 labels
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, pages, photometric="minisblack")
    want = np.moveaxis(pages, 0, -1)
    assert np.array_equal(read_raster(path, palette="indices"), want)
    assert np.array_equal(read_mask(path), want)
    assert np.array_equal(read_image(path), want.astype(np.float32))


def test_a_grey_tiff_with_an_extra_sample_gives_the_grey_values_to_both_readers(
    tmp_path: Path,
) -> None:
    # grey + alpha: before the shared decoder, masks took the two samples for two slices
    alpha = np.full_like(GREY, 255)
    path = tmp_path / "grey-alpha.tif"
    tifffile.imwrite(
        path,
        np.stack([GREY, alpha], axis=-1),
        photometric="minisblack",
        extrasamples=["unassalpha"],
    )
    assert np.array_equal(read_raster(path, palette="indices"), GREY)
    assert np.array_equal(read_mask(path), GREY)
    assert np.array_equal(read_image(path), GREY.astype(np.float32))


def test_a_tiff_with_two_page_axes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two-axes.tif"
    tifffile.imwrite(
        path,
        np.zeros((2, 3, 4, 5), dtype=np.uint8),
        photometric="minisblack",
        metadata={"axes": "TZYX"},
    )
    with pytest.raises(RasterError, match="expected one page axis at most"):
        read_raster(path, palette="indices")
    with pytest.raises(MaskFileError, match="expected one page axis at most"):
        read_mask(path)


def test_npy_is_memory_mapped_for_masks_and_copied_to_float32_for_images(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    np.save(path, GREY)
    raw = read_raster(path, palette="indices")
    assert isinstance(raw, np.memmap) and np.array_equal(raw, GREY)
    image = read_image(path)
    assert image.dtype == np.float32 and not isinstance(image, np.memmap)
    assert np.array_equal(image, GREY.astype(np.float32))


def test_an_unsupported_suffix_is_named(tmp_path: Path) -> None:
    with pytest.raises(RasterError, match=r"not a raster file \(supported: .npy, .png"):
        read_raster(tmp_path / "a.jpg", palette="indices")
