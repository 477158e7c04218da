"""The slice cache: preprocessed 2D samples in plain files, and :class:`SliceCache` to read it.

A cache is a folder (written by ``calf prepare``, see docs/prepare.md)::

    meta.json         {"format": "calfseg.cache/1", "complete": true, ...}   written last
    images.npy        (N, C, H, W) uint8 (0..255 meaning [0, 1]) or float16 in [0, 1]
    masks.npy         (N, H, W) uint8 0/1
    index.csv         row,case_id,dataset,modality,slice_index,area,has_tumour,split,
                      spacing_x,spacing_y,spacing_z,patient_id  (patient_id: the split
                      group; spacing_x, spacing_y: mm per pixel after resizing; spacing_z:
                      mm between slices k and k + 1 of the source volume)
    fingerprint.json  AreaMoments of the train split's areas (calf analyze, CALFLoss.fit)

Anyone can read it with numpy, csv and json alone; this module adds validation and typed
columns. A folder without ``meta.json``, or whose meta is not ``complete``, is not a cache
(it is being written, or was interrupted): opening it raises :class:`CacheError`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calfseg.errors import DataValueError, check_choice

CACHE_FORMAT = "calfseg.cache/1"
META_FILE = "meta.json"
IMAGES_FILE = "images.npy"
MASKS_FILE = "masks.npy"
INDEX_FILE = "index.csv"
FINGERPRINT_FILE = "fingerprint.json"
PARTS_DIR = ".parts"

# index.csv: column name -> numpy dtype of the parsed column ("U" = str).
INDEX_COLUMNS: dict[str, str] = {
    "row": "int64",
    "case_id": "U",
    "dataset": "U",
    "modality": "U",
    "slice_index": "int64",
    "area": "int64",
    "has_tumour": "bool",
    "split": "U",
    "spacing_x": "float64",
    "spacing_y": "float64",
    "spacing_z": "float64",
}
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
# meta.json keys that say when and by which version a cache was written, not what it holds.
_VOLATILE_META = ("created", "calfseg_version")
IMAGE_DTYPES: tuple[str, ...] = ("uint8", "float16")


class CacheError(DataValueError):
    """A folder that is not a finished calfseg cache, or one whose files disagree."""


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The meta of a finished cache at ``path``, or None when there is none (no folder, no
    ``meta.json``, unreadable JSON, a foreign format or an unfinished cache)."""
    try:
        meta = json.loads((Path(path) / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        return None
    return meta if meta.get("complete") is True else None


def is_cache(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder that ``calf prepare`` writes or has written: its
    meta.json declares the cache format (finished or not), or it holds ``.parts/``."""
    if (Path(path) / PARTS_DIR).is_dir():
        return True
    try:
        meta = json.loads((Path(path) / META_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == CACHE_FORMAT


@dataclass(frozen=True)
class SliceCache:
    """A finished cache opened read-only: ``images`` and ``masks`` are memory maps, ``index``
    maps each index.csv column to a numpy array (see ``INDEX_COLUMNS``)."""

    path: Path
    meta: dict[str, Any]
    images: np.ndarray
    masks: np.ndarray
    index: dict[str, np.ndarray]

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> SliceCache:
        """Open the cache at ``path``; :class:`CacheError` if it is not a finished one."""
        root = Path(path)
        meta = _load_meta(root)
        images, masks = open_memmaps(root)
        index = read_index(root / INDEX_FILE)
        cache = cls(root, meta, images, masks, index)
        cache._check()
        return cache

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> list[str]:
        return list(self.meta["channels"])

    @property
    def digest(self) -> str:
        """What this cache holds, as 16 hex digits: see :func:`cache_digest`."""
        return cache_digest(self.path)

    def rows(self, split: str | None = None) -> np.ndarray:
        """Row indices (int64) of one split, or of every row when ``split`` is None."""
        if split is None:
            return np.arange(len(self), dtype=np.int64)
        check_choice("split", split, SPLIT_NAMES)
        return np.flatnonzero(self.index["split"] == split).astype(np.int64)

    def _check(self) -> None:
        n = int(self.meta["n_slices"])
        h, w = (int(v) for v in self.meta["size"])
        c = len(self.meta["channels"])
        expected = {
            IMAGES_FILE: ((n, c, h, w), self.images.shape),
            MASKS_FILE: ((n, h, w), self.masks.shape),
            INDEX_FILE: ((n,), self.index["row"].shape),
        }
        for name, (want, got) in expected.items():
            if tuple(want) != tuple(got):
                raise CacheError(f"{self.path / name}: shape {tuple(got)}, meta.json says {want}")
        dtype = self.meta["image_dtype"]
        if dtype not in IMAGE_DTYPES or self.images.dtype != np.dtype(dtype):
            raise CacheError(
                f"{self.path / IMAGES_FILE}: {self.images.dtype}, meta says {dtype} "
                f"(one of {IMAGE_DTYPES})"
            )
        if self.masks.dtype != np.uint8:
            raise CacheError(f"{self.path / MASKS_FILE}: {self.masks.dtype}, expected uint8")
        if not np.array_equal(self.index["row"], np.arange(n)):
            raise CacheError(f"{self.path / INDEX_FILE}: rows must be numbered 0 .. {n - 1}")


def cache_digest(path: str | os.PathLike[str]) -> str:
    """A short digest (16 hex digits of SHA-256) of what a finished cache holds.

    It covers ``meta.json`` (source, preprocessing options, splits, counts, the cases and
    their files) without its timestamp and version, and the bytes of ``index.csv`` (every
    slice's case, area, tumour flag and split). Re-preparing with other options, labels or
    splits changes it; an idempotent re-run of ``calf prepare`` keeps it. The pixel arrays
    are not read (gigabytes): they are a function of the source files and the options,
    which the digest covers. Raises :class:`CacheError` if ``path`` is not a finished cache.
    """
    root = Path(path)
    meta = {k: v for k, v in _load_meta(root).items() if k not in _VOLATILE_META}
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    try:
        digest.update((root / INDEX_FILE).read_bytes())
    except OSError as err:
        raise _not_a_cache(root, f"cannot read {INDEX_FILE} ({err})") from err
    return digest.hexdigest()[:16]


def open_memmaps(root: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """The cache's ``images`` and ``masks`` as read-only memory maps (no validation: use
    :meth:`SliceCache.open` first; this is for reopening them in a DataLoader worker)."""
    root = Path(root)
    try:
        return (
            np.load(root / IMAGES_FILE, mmap_mode="r", allow_pickle=False),
            np.load(root / MASKS_FILE, mmap_mode="r", allow_pickle=False),
        )
    except (OSError, ValueError) as err:
        raise _not_a_cache(root, f"cannot read its arrays ({err})") from err


def _load_meta(root: Path) -> dict[str, Any]:
    if not root.is_dir():
        raise _not_a_cache(root, "no such folder")
    meta_path = root / META_FILE
    if not meta_path.is_file():
        hint = " (interrupted or still being written)" if (root / PARTS_DIR).is_dir() else ""
        raise _not_a_cache(root, f"no {META_FILE}{hint}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise _not_a_cache(root, f"{META_FILE} is not readable JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise _not_a_cache(root, f"{META_FILE} has format {found!r}, expected {CACHE_FORMAT!r}")
    if meta.get("complete") is not True:
        raise _not_a_cache(root, f"{META_FILE} is not marked complete")
    missing = [k for k in ("channels", "size", "image_dtype", "n_slices") if k not in meta]
    if missing:
        raise _not_a_cache(root, f"{META_FILE} lacks {', '.join(missing)}")
    return meta


def _not_a_cache(root: Path, why: str) -> CacheError:
    return CacheError(f"not a finished calfseg cache: {root} ({why})")


def read_index(path: Path) -> dict[str, np.ndarray]:
    """index.csv as typed numpy columns (``INDEX_COLUMNS``; extra columns as strings)."""
    try:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            columns = list(zip(*reader, strict=True)) or [() for _ in header]
    # ValueError: rows of unequal length (zip strict)
    except (OSError, StopIteration, UnicodeDecodeError, ValueError) as err:
        raise CacheError(f"{path}: cannot read the index ({err or 'empty file'})") from err
    missing = [name for name in INDEX_COLUMNS if name not in header]
    if missing:
        raise CacheError(
            f"{path}: no column(s) {', '.join(missing)} (a cache of an earlier calf-seg? "
            "prepare it again)"
        )
    index: dict[str, np.ndarray] = {}
    for name, values in zip(header, columns, strict=True):
        kind = INDEX_COLUMNS.get(name, "U")
        try:
            if kind == "U":
                index[name] = np.array(values, dtype=str)
            elif kind == "bool":
                index[name] = np.array(values, dtype=np.int64) != 0
            else:
                index[name] = np.array(values, dtype=kind)
        except ValueError as err:
            raise CacheError(f"{path}: column {name!r}: {err}") from err
    return index
