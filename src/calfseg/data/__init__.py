"""Data layer: mask files on disk (find, read, validate) and, later, dataset sources,
preprocessing cache, splits and filters."""

from calfseg.data.mask_files import (
    DEFAULT_MAX_LABELS,
    MASK_SUFFIXES,
    MaskFileError,
    find_mask_files,
    foreground,
    read_mask,
)

__all__ = [
    "DEFAULT_MAX_LABELS",
    "MASK_SUFFIXES",
    "MaskFileError",
    "find_mask_files",
    "foreground",
    "read_mask",
]
