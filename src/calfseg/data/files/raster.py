"""The one decoder of raster files (NumPy, PNG, TIFF) into a 2D array or a page stack, behind
both :func:`calfseg.data.files.images.read_image` (intensities) and
:func:`calfseg.data.files.masks.read_mask` (labels), so that a file's pixels are found the
same way whichever of the two reads it.

What every caller gets: ``(H, W)``, or ``(H, W, pages)`` with the pages on the LAST axis
(like NIfTI volumes), one value per pixel:

- ``.npy``: memory-mapped as stored (no pickles); shape checks are the caller's.
- ``.png``: pillow. ``palette="indices"`` keeps a palette image's indices (a mask's labels);
  ``palette="colours"`` expands it to its colours (an image's intensities).
- ``.tif`` / ``.tiff``: tifffile, first series; length-1 axes other than Y and X dropped,
  a page axis moved last; more than one page axis is refused.
- Samples per pixel: grey with alpha gives the grey channel; a colour picture (RGB, RGBA,
  colour TIFF) whose channels are all equal gives one of them; true colour is refused (the
  message says why, in the caller's words); extra samples of a grey TIFF (alpha) are dropped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from calfseg.errors import DataValueError
from calfseg.extras import require

RASTER_SUFFIXES: tuple[str, ...] = (".npy", ".png", ".tif", ".tiff")
Palette = Literal["indices", "colours"]
_GREY_PHOTOMETRIC = (0, 1)  # TIFF MINISWHITE, MINISBLACK: extra samples are not colour
_GREY_WITH_ALPHA = ("LA", "La", "PA")


class RasterError(DataValueError):
    """A raster file's pixels cannot be reduced to one value per pixel (``reason``)."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def read_raster(
    path: str | os.PathLike[str],
    *,
    palette: Palette,
    colour: str = "with differing colour channels",
) -> np.ndarray:
    """The pixels of a ``.npy``, ``.png``, ``.tif`` or ``.tiff`` file (module docstring).

    Args:
        palette: what a palette PNG gives: its ``"indices"`` or its ``"colours"``.
        colour: the end of the message for true colour, e.g. ``"...: not a label mask"``.

    Raises:
        RasterError: true colour, or a TIFF with more than one page axis.
        calfseg.extras.MissingExtraError: pillow or tifffile is not installed.
        Anything the format's reader raises on a damaged file (callers name the file).
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".npy"):
        return np.load(path, mmap_mode="r", allow_pickle=False)
    if name.endswith(".png"):
        return _png(path, palette, colour)
    if name.endswith((".tif", ".tiff")):
        return _tiff(path, colour)
    raise RasterError(path, f"not a raster file (supported: {', '.join(RASTER_SUFFIXES)})")


def _png(path: Path, palette: Palette, colour: str) -> np.ndarray:
    image_module: Any = require("PIL.Image", "reading PNG files")
    with image_module.open(path) as image:
        if palette == "colours" and image.mode in ("P", "PA"):
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        image.load()
        mode = image.mode
        array = np.asarray(image)
    if array.ndim == 3:
        if mode in _GREY_WITH_ALPHA:  # one value channel and alpha
            return array[..., 0]
        return _one_channel(path, array[..., :3], f"PNG mode {mode}", colour)
    return array


def _tiff(path: Path, colour: str) -> np.ndarray:
    tifffile: Any = require("tifffile", "reading TIFF files")
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        array = np.asarray(series.asarray())
        axes = str(series.axes)
        is_colour = int(tif.pages[0].photometric) not in _GREY_PHOTOMETRIC
    if len(axes) != array.ndim:  # unexpected metadata: the plain shape
        return array
    keep = [i for i, a in enumerate(axes) if a in "YX" or array.shape[i] != 1]
    array = array.reshape([array.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if "S" in axes:  # samples of a pixel: colour channels, or grey plus extra samples
        samples = np.moveaxis(array, axes.index("S"), -1)
        if is_colour:
            array = _one_channel(path, samples[..., :3], "colour TIFF", colour)
        else:
            array = samples[..., 0]
        axes = axes.replace("S", "")
    stack = [i for i, a in enumerate(axes) if a not in "YX"]
    if len(stack) > 1:
        raise RasterError(path, f"TIFF with axes {axes!r}: expected one page axis at most")
    return np.moveaxis(array, stack[0], -1) if stack else array


def _one_channel(path: Path, rgb: np.ndarray, what: str, colour: str) -> np.ndarray:
    """A grey picture saved as colour has equal channels: keep one; refuse true colour."""
    first = rgb[..., 0]
    if all(np.array_equal(first, rgb[..., c]) for c in range(1, rgb.shape[-1])):
        return first
    raise RasterError(path, f"{what} {colour}")
