"""Image files on disk (PNG, TIFF, NumPy) read as float32 intensity arrays: the one reader
behind ``calf prepare`` (the ``folder`` and ``lgg-1p19q`` layouts) and ``calf predict``, so
that a file is turned into numbers the same way for training and for prediction.

The pixels are decoded by :func:`calfseg.data.files.raster.read_raster`, the decoder
:func:`calfseg.data.files.masks.read_mask` uses too. Layout returned: 2D ``(H, W)`` as
stored, or 3D with slices on the LAST axis (like NIfTI volumes; NIfTI itself is read by
:func:`calfseg.data.sources.nifti.read_nifti`, which adds the geometry and the canonical
orientation).

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

import numpy as np

from calfseg.data.files.raster import RASTER_SUFFIXES, RasterError, read_raster
from calfseg.errors import DataValueError

IMAGE_SUFFIXES: tuple[str, ...] = RASTER_SUFFIXES
# Why true colour is refused for an image (averaging the channels would invent an intensity).
_TRUE_COLOUR = "with differing colour channels: give one grey image per modality"


class ImageFileError(DataValueError):
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
    try:
        array = read_raster(path, palette="colours", colour=_TRUE_COLOUR)
    except MemoryError:
        raise
    except RasterError as err:
        raise ImageFileError(path, err.reason) from err
    except Exception as err:  # format readers raise anything on a bad file
        raise ImageFileError(path, f"cannot read the file ({type(err).__name__}: {err})") from err
    if array.ndim not in (2, 3):
        raise ImageFileError(path, f"expected a 2D or 3D image, got shape {array.shape}")
    return np.array(array, dtype=np.float32)  # a copy: .npy files are memory-mapped
