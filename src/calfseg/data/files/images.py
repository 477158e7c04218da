"""Image files on disk (PNG, TIFF, NumPy) read as float32 intensity arrays: the one reader
behind ``calf prepare`` (the ``folder`` and ``lgg-1p19q`` layouts) and ``calf predict``, so
that a file is turned into numbers the same way for training and for prediction.

Layout returned: 2D ``(H, W)`` as stored, or 3D with slices on the LAST axis (like NIfTI
volumes; NIfTI itself is read by :func:`calfseg.data.sources.nifti.read_nifti`, which adds
the geometry and the canonical orientation).

- ``.npy``: numpy, as stored, cast to float32 (no pickles).
- ``.png``: pillow. Palette images are expanded to their colours first. A grey picture
  saved as colour (RGB/RGBA with equal channels) gives one channel; grey with alpha gives
  the grey channel; true colour is refused (one grey image per modality is wanted: averaging
  the channels would invent an intensity the scanner never measured).
- ``.tif`` / ``.tiff``: tifffile, first series; a page stack ``(pages, H, W)`` comes back as
  ``(H, W, pages)``; samples per pixel follow the PNG rules.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from calfseg.extras import require

IMAGE_SUFFIXES: tuple[str, ...] = (".npy", ".png", ".tif", ".tiff")
_GREY_PHOTOMETRIC = (0, 1)  # TIFF MINISWHITE, MINISBLACK


class ImageFileError(ValueError):
    """An image file cannot be used; the message names the path and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def image_suffix(path: str | os.PathLike[str]) -> str | None:
    """The image suffix of a file name (case-insensitive), or None."""
    name = Path(path).name.lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a PNG, TIFF or NPY image as float32, 2D or 3D with slices on the last axis.

    Raises:
        ImageFileError: an unsupported suffix, an unreadable or corrupt file, true colour,
            or a shape that is neither 2D nor 3D.
        calfseg.extras.MissingExtraError: pillow or tifffile is not installed.
    """
    path = Path(path)
    suffix = image_suffix(path)
    if suffix is None:
        raise ImageFileError(path, f"not an image file (supported: {', '.join(IMAGE_SUFFIXES)})")
    reader = {".npy": _read_npy, ".png": _read_png}.get(suffix, _read_tiff)
    try:
        array = reader(path)
    except MemoryError:
        raise
    except ImageFileError:
        raise
    except Exception as err:  # format readers raise anything on a bad file
        raise ImageFileError(path, f"cannot read the file ({type(err).__name__}: {err})") from err
    if array.ndim not in (2, 3):
        raise ImageFileError(path, f"expected a 2D or 3D image, got shape {array.shape}")
    return array.astype(np.float32, copy=False)


def _read_npy(path: Path) -> np.ndarray:
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    return np.array(array, dtype=np.float32)


def _read_png(path: Path) -> np.ndarray:
    image_module: Any = require("PIL.Image", "reading PNG images")
    with image_module.open(path) as image:
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
        array = np.asarray(image)
    if array.ndim == 3:
        if mode in ("LA", "La"):
            return array[..., 0]
        return _one_channel(path, array[..., :3], f"PNG mode {mode}")
    return array


def _read_tiff(path: Path) -> np.ndarray:
    tifffile: Any = require("tifffile", "reading TIFF images")
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        array = np.asarray(series.asarray())
        axes = str(series.axes)
        colour = int(tif.pages[0].photometric) not in _GREY_PHOTOMETRIC
    if len(axes) != array.ndim:  # unexpected metadata: the plain shape
        return array
    keep = [i for i, a in enumerate(axes) if a in "YX" or array.shape[i] != 1]
    array = array.reshape([array.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if "S" in axes:
        samples = np.moveaxis(array, axes.index("S"), -1)
        array = _one_channel(path, samples[..., :3], "colour TIFF") if colour else samples[..., 0]
        axes = axes.replace("S", "")
    stack = [i for i, a in enumerate(axes) if a not in "YX"]
    if len(stack) > 1:
        raise ImageFileError(path, f"TIFF with axes {axes!r}: expected one page axis at most")
    return np.moveaxis(array, stack[0], -1) if stack else array


def _one_channel(path: Path, rgb: np.ndarray, what: str) -> np.ndarray:
    """A grey picture saved as colour has equal channels: keep one; refuse true colour."""
    first = rgb[..., 0]
    if all(np.array_equal(first, rgb[..., c]) for c in range(1, rgb.shape[-1])):
        return first
    raise ImageFileError(
        path, f"{what} with differing colour channels: give one grey image per modality"
    )
