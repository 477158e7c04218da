"""Mask files on disk: find them, read each as a validated integer label array, pick the
foreground.

Formats and the layout :func:`read_mask` returns (2D ``(H, W)`` or 3D with slices on the
LAST axis):

- ``.npy``: numpy, memory-mapped, as stored.
- ``.nii`` / ``.nii.gz``: nibabel, ``np.asanyarray(img.dataobj)``, as stored (no
  reorientation; for the usual ``(X, Y, Z)`` storage the last axis is axial). Trailing
  length-1 axes beyond the third are dropped.
- ``.png``: pillow. Palette images give their indices (the labels); grey images stored as
  RGB(A) give one channel; colour images are refused.
- ``.tif`` / ``.tiff``: tifffile, first series. A multi-page stack ``(pages, H, W)`` is
  returned as ``(H, W, pages)`` (a view), so that one page is one slice like for NIfTI.

NumPy, PNG and TIFF pixels are decoded by :func:`calfseg.data.files.raster.read_raster`,
the decoder behind image files too.

A label mask holds integer labels. An integer (or bool) file is a mask whatever its number
of labels: whole-body CT segmentations have 100+ labels, brain atlases 116 regions, and the
foreground is chosen with ``labels`` (``--label``/``--labels``). Float files are accepted when
every value is a whole number (BraTS stores its labels as float32), within 1e-3 to absorb
the rounding of NIfTI scale factors; a fractional value or NaN means the file is an image,
and so do more than ``max_labels`` distinct whole numbers in a FLOAT file (a scan stored
as rounded floats). Both are refused with a :class:`MaskFileError` naming the file and
what overrides the check. PNG and TIFF are the exception to "integer means labels": they
store grey photographs as integers too, so a PNG/TIFF with more than ``max_labels``
distinct grey values is refused as an image (palette PNGs, whose values are indices, and
``--max-labels`` override this); a folder of PNG scans and masks would otherwise be
counted as masks without a word.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from calfseg.data.files.raster import RasterError, read_raster
from calfseg.errors import DataValueError, OptionError
from calfseg.extras import MissingExtraError, require

MASK_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".npy", ".png", ".tif", ".tiff")
DEFAULT_MAX_LABELS = 16
# Distinct values are counted with a histogram when the value range is at most this wide.
_HISTOGRAM_RANGE = 1 << 16
_CHUNK = 1 << 22
# Float labels this close to a whole number are rounded to it: NIfTI files saved with a
# scale factor (scl_slope/scl_inter) read back as e.g. 0.99999997 instead of 1.
_INTEGER_TOLERANCE = 1e-3
_NIFTI = (".nii", ".nii.gz")
_TRUE_COLOUR = "with differing colour channels: not a label mask"
# Formats that hold grey photographs as integers: their integer data is checked too.
_RASTER = (".png", ".tif", ".tiff")


class MaskFileError(DataValueError):
    """A mask file (or a folder of them) cannot be used; the message names the path."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def mask_suffix(path: str | os.PathLike[str]) -> str | None:
    """The mask suffix of a file name (case-insensitive), or None if it is not a mask file."""
    name = Path(path).name.lower()
    return next((s for s in MASK_SUFFIXES if name.endswith(s)), None)


def find_mask_files(path: str | os.PathLike[str], mask_glob: str | None = None) -> list[Path]:
    """Mask files at ``path``: the file itself, or every mask file below a folder.

    Folders are searched recursively; hidden files and folders (name starting with ``.``)
    are left out. ``mask_glob`` keeps only the files whose name matches it
    (``fnmatch``, case-sensitive); a glob containing ``/`` is matched against the path
    relative to ``path`` instead. The result is sorted, so the order does not depend on the
    file system. An empty list means nothing matched.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        MaskFileError: ``path`` is a file whose suffix is not a mask format.
    """
    root = Path(path)
    if root.is_file():
        if mask_suffix(root) is None:
            raise MaskFileError(
                root, f"not a mask file (supported suffixes: {', '.join(MASK_SUFFIXES)})"
            )
        candidates = [root]
        base = root.parent
    elif root.is_dir():
        candidates = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            candidates.extend(
                Path(folder, f) for f in files if not f.startswith(".") and mask_suffix(f)
            )
        base = root
    else:
        raise FileNotFoundError(f"no such file or folder: {root}")
    if mask_glob is not None:
        candidates = [p for p in candidates if _matches(p, base, mask_glob)]
    return sorted(candidates, key=lambda p: p.relative_to(base).as_posix())


def _matches(path: Path, base: Path, pattern: str) -> bool:
    target = path.relative_to(base).as_posix() if "/" in pattern else path.name
    return fnmatch.fnmatchcase(target, pattern)


def read_mask(path: str | os.PathLike[str], *, max_labels: int = DEFAULT_MAX_LABELS) -> np.ndarray:
    """Read a mask file as an integer label array, 2D or 3D with slices on the last axis.

    Integer files keep their dtype (``.npy`` stays memory-mapped) and any number of labels;
    bool becomes uint8; float files with whole-number values become the smallest integer
    dtype that holds them, and may hold at most ``max_labels`` distinct values.

    Raises:
        MaskFileError: unreadable or corrupt file, unsupported shape or dtype, non-integer
            values, or a float file with more than ``max_labels`` distinct values ("looks
            like an image").
        calfseg.extras.MissingExtraError: the reader's package is not installed.
    """
    path = Path(path)
    suffix = mask_suffix(path)
    if suffix is None:
        raise MaskFileError(path, f"not a mask file (supported: {', '.join(MASK_SUFFIXES)})")
    try:
        if suffix in _NIFTI:
            nibabel: Any = require("nibabel", "reading NIfTI masks")
            raw = np.asanyarray(nibabel.load(str(path)).dataobj)
        else:
            raw = read_raster(path, palette="indices", colour=_TRUE_COLOUR)
    except MissingExtraError:
        raise
    except RasterError as err:
        raise MaskFileError(path, err.reason) from err
    except Exception as err:  # readers raise anything from OSError to zlib.error on bad files
        raise MaskFileError(path, f"cannot read the file ({type(err).__name__}: {err})") from err
    return _as_label_array(raw, path, max_labels, integer_is_label=suffix not in _RASTER)


def foreground(label_array: np.ndarray, labels: Iterable[int] | None = None) -> np.ndarray:
    """Bool foreground of a label array: ``> 0`` by default, else membership in ``labels``.

    Raises:
        ValueError: without ``labels``, a value below 0. "Every label > 0" would make such a
            mask background without a word (a mask coded -1..-4 would hold no tumour); the
            values that are foreground must then be named (``--labels``).
    """
    if labels is None:
        array = np.asarray(label_array)
        if array.size and array.dtype.kind in "if":  # signed integers and floats
            lowest = array.min()
            if lowest < 0:
                raise DataValueError(
                    f"label values below 0 (lowest {lowest:g}): the foreground is every label "
                    "> 0 by default; name the foreground values (calf prepare --labels=-1,-2, "
                    "calf analyze --label=-1,-2)"
                )
        return array > 0
    wanted = sorted({int(v) for v in labels})
    if not wanted:
        raise OptionError("labels must name at least one label value")
    if len(wanted) == 1:
        return np.asarray(label_array) == wanted[0]
    return np.isin(label_array, wanted)


# -- validation ---------------------------------------------------------------------------


def _as_label_array(
    raw: np.ndarray, path: Path, max_labels: int, *, integer_is_label: bool = True
) -> np.ndarray:
    """``raw`` as a 2D/3D integer label array. Integer data is a label map whatever its
    number of labels when ``integer_is_label``; float data (and, without it, integer data)
    may hold at most ``max_labels`` distinct whole numbers."""
    array = np.asarray(raw)
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise MaskFileError(
            path, f"expected a 2D mask or a 3D volume, got shape {tuple(np.shape(raw))}"
        )
    if array.size == 0:
        raise MaskFileError(path, f"holds no pixels (shape {array.shape})")
    if array.dtype == np.bool_:
        return array.view(np.uint8)
    what = "values"
    if np.issubdtype(array.dtype, np.integer):
        if integer_is_label:
            return array  # a label map, whatever its number of labels
        what = "grey values"
    elif np.issubdtype(array.dtype, np.floating):
        array = _float_to_labels(array, path)
        what = "whole-number float values"
    else:
        raise MaskFileError(path, f"has dtype {array.dtype}, not integer labels")
    # Many whole-number floats are more likely a scan than labels (a CT in Hounsfield units
    # saved as float), and so are many grey levels in a PNG/TIFF.
    if _count_distinct(array, max_labels) > max_labels:
        store = "a NIfTI/NPY of integers" if integer_is_label is False else "integers"
        raise MaskFileError(
            path,
            f"looks like an image, not a mask: more than {max_labels} distinct {what}; "
            f"if it is a label map, raise the limit with --max-labels N (max_labels= in "
            f"Python) or store it as {store} (accepted with any number of labels)",
        )
    return array


def _float_to_labels(array: np.ndarray, path: Path) -> np.ndarray:
    if not np.isfinite(array).all():
        raise MaskFileError(path, "contains NaN or infinite values: not a label mask")
    rounded = np.rint(array)
    fractional = np.abs(array - rounded) > _INTEGER_TOLERANCE
    if fractional.any():
        example = float(np.ravel(array)[int(np.argmax(np.ravel(fractional)))])
        raise MaskFileError(
            path,
            f"has non-integer values (e.g. {example:.9g}): labels must be whole numbers; "
            "this looks like an image, not a mask",
        )
    lo, hi = float(rounded.min()), float(rounded.max())
    if lo < np.iinfo(np.int32).min or hi > np.iinfo(np.int32).max:
        raise MaskFileError(path, f"label values out of range [{lo:g}, {hi:g}]")
    dtype = np.result_type(np.min_scalar_type(int(lo)), np.min_scalar_type(int(hi)))
    return rounded.astype(dtype)


def _count_distinct(array: np.ndarray, limit: int) -> int:
    """Exact count when it matters, i.e. when the value range is wider than ``limit``."""
    lo, hi = int(array.min()), int(array.max())
    if hi - lo + 1 <= limit:
        return hi - lo + 1  # an upper bound, and already within the limit
    if hi - lo < _HISTOGRAM_RANGE:
        seen = np.zeros(hi - lo + 1, dtype=bool)
        flat = np.ravel(array)
        for start in range(0, flat.size, _CHUNK):
            chunk = flat[start : start + _CHUNK].astype(np.int64) - lo
            seen |= np.bincount(chunk, minlength=seen.size).astype(bool)
        return int(seen.sum())
    return int(np.unique(array).size)
