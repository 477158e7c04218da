"""Assemble finished cases into a cache folder, atomically.

The arrays, index and fingerprint are written into ``CACHE/.assembly/`` first; then the
old ``meta.json`` (if any) is removed, the new files are renamed into place and the new
``meta.json`` with ``"complete": true`` is written last. A reader therefore sees either the
previous finished cache, or no finished cache, or the new one, never a mixture.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from calfseg import __version__
from calfseg.atomic import atomic_write_json, reserve_blocks
from calfseg.data.cache import (
    CACHE_FORMAT,
    FINGERPRINT_FILE,
    IMAGES_FILE,
    INDEX_COLUMNS,
    INDEX_FILE,
    MASKS_FILE,
    META_FILE,
    SPLIT_NAMES,
)
from calfseg.data.preparation.parts import CaseRecord
from calfseg.errors import DataValueError
from calfseg.fingerprint import Fingerprint
from calfseg.stats import AreaMoments

ASSEMBLY_DIR = ".assembly"


@dataclass(frozen=True)
class CaseRows:
    """One case's rows, wherever they are read from (a part, or the previous cache)."""

    record: CaseRecord
    images: np.ndarray  # (R, C, H, W)
    masks: np.ndarray  # (R, H, W)


def index_columns(cases: Sequence[CaseRecord], split: np.ndarray) -> dict[str, np.ndarray]:
    """The index.csv columns of the concatenated cases (``split``: one name per row)."""

    def per_row(values: list[Any], dtype: Any) -> np.ndarray:
        return np.array(values, dtype=dtype)

    rows = [r.n_rows for r in cases]
    area = per_row([a for r in cases for a in r.area], np.int64)
    return {
        "row": np.arange(int(sum(rows)), dtype=np.int64),
        "case_id": np.repeat(per_row([r.case_id for r in cases], object), rows),
        "dataset": np.repeat(per_row([r.dataset for r in cases], object), rows),
        "modality": per_row([m for r in cases for m in r.modality], object),
        "slice_index": per_row([k for r in cases for k in r.slice_index], np.int64),
        "area": area,
        "has_tumour": area > 0,
        "split": np.asarray(split, dtype=object),
        "spacing_x": np.repeat(per_row([r.pixel_spacing[0] for r in cases], np.float64), rows),
        "spacing_y": np.repeat(per_row([r.pixel_spacing[1] for r in cases], np.float64), rows),
        # the slicing axis is never resampled: the source's spacing along it
        "spacing_z": np.repeat(per_row([r.spacing[2] for r in cases], np.float64), rows),
        "patient_id": np.repeat(per_row([r.patient for r in cases], object), rows),
    }


def write_index(path: Path, columns: dict[str, np.ndarray]) -> None:
    """index.csv: the columns of ``INDEX_COLUMNS``, then any others given (``patient_id``),
    booleans as 0/1, floats as repr."""
    names = list(INDEX_COLUMNS) + [name for name in columns if name not in INDEX_COLUMNS]
    text_columns = []
    for name in names:
        values = columns[name]
        if values.dtype == np.bool_:
            text_columns.append(values.astype(np.int64).tolist())
        else:
            text_columns.append(values.tolist())
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(zip(*text_columns, strict=True))


def train_fingerprint(columns: dict[str, np.ndarray]) -> AreaMoments:
    """Area moments of the train split (what ``CALFLoss("dataset")`` fits on)."""
    return AreaMoments.from_areas(columns["area"][columns["split"] == "train"])


def split_counts(columns: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """Rows, tumour rows and cases per split."""
    counts = {}
    for name in SPLIT_NAMES:
        chosen = columns["split"] == name
        counts[name] = {
            "rows": int(chosen.sum()),
            "tumour_rows": int((chosen & columns["has_tumour"]).sum()),
            "cases": len(
                {
                    (d, c)
                    for d, c in zip(
                        columns["dataset"][chosen], columns["case_id"][chosen], strict=True
                    )
                }
            ),
        }
    return counts


def case_entries(cases: Sequence[CaseRecord]) -> list[dict[str, Any]]:
    """meta.json's ``cases``: rows [start, stop) and provenance of each case."""
    entries, start = [], 0
    for r in cases:
        entries.append(
            {
                "case_id": r.case_id,
                "dataset": r.dataset,
                "rows": [start, start + r.n_rows],
                "files": [f.to_dict() for f in r.files],
                "spacing": list(r.spacing),
                "pixel_spacing": list(r.pixel_spacing),
                "label_source": r.label_source,
                "patient_id": r.patient,
            }
        )
        start += r.n_rows
    return entries


def assemble_cache(
    cache: Path,
    cases: Sequence[CaseRows],
    split: np.ndarray,
    meta: dict[str, Any],
    *,
    arrays_unchanged: bool = False,
) -> dict[str, Any]:
    """Write the cache at ``cache`` from the rows of ``cases`` (in order) and return its meta.

    ``meta`` supplies the fields that describe how it was made (``options``, ``splits``,
    ``source``, ``skipped``, ``channels``, ``size``, ``image_dtype``, ...); this adds the
    format, counts, cases and version. ``arrays_unchanged``: the cache's images.npy and
    masks.npy already hold exactly these rows; only the index, fingerprint and meta are
    rewritten (a new split of the same data).
    """
    records = [c.record for c in cases]
    n = int(sum(r.n_rows for r in records))
    if n == 0:
        raise DataValueError("no slices to write: every case was skipped or empty")
    columns = index_columns(records, split)
    tmp = cache / ASSEMBLY_DIR
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    written = [INDEX_FILE, FINGERPRINT_FILE]
    if not arrays_unchanged:
        _write_arrays(tmp, cases, n, meta)
        written += [IMAGES_FILE, MASKS_FILE]
    write_index(tmp / INDEX_FILE, columns)
    fingerprint = train_fingerprint(columns)
    measured = {"source": "cache", "split": "train", "unit": "slices"}
    atomic_write_json(tmp / FINGERPRINT_FILE, Fingerprint(fingerprint, measured=measured).to_dict())

    full_meta = {
        "format": CACHE_FORMAT,
        "complete": True,
        "calfseg_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_slices": n,
        "n_cases": len(records),
        **meta,
        "counts": split_counts(columns),
        "cases": case_entries(records),
    }
    # From here until the last line the folder holds no finished cache.
    (cache / META_FILE).unlink(missing_ok=True)
    for name in written:
        os.replace(tmp / name, cache / name)
    atomic_write_json(cache / META_FILE, full_meta)
    shutil.rmtree(tmp, ignore_errors=True)
    return full_meta


def _write_arrays(tmp: Path, cases: Sequence[CaseRows], n: int, meta: dict[str, Any]) -> None:
    h, w = meta["size"]
    c = len(meta["channels"])
    images = np.lib.format.open_memmap(
        tmp / IMAGES_FILE, mode="w+", dtype=np.dtype(meta["image_dtype"]), shape=(n, c, h, w)
    )
    masks = np.lib.format.open_memmap(tmp / MASKS_FILE, mode="w+", dtype=np.uint8, shape=(n, h, w))
    # The maps are sparse files: reserve their blocks now, or a full disk is a SIGBUS later.
    reserve_blocks(tmp / IMAGES_FILE, "the cache's images")
    reserve_blocks(tmp / MASKS_FILE, "the cache's masks")
    start = 0
    for case in cases:
        stop = start + case.record.n_rows
        if case.images.shape[1:] != images.shape[1:] or case.masks.shape[1:] != masks.shape[1:]:
            raise DataValueError(
                f"case {case.record.case_id}: rows of shape {case.images.shape[1:]}, "
                f"the cache holds {images.shape[1:]}"
            )
        images[start:stop] = case.images
        masks[start:stop] = case.masks
        start = stop
    images.flush()
    masks.flush()
    del images, masks
