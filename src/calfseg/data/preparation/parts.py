"""The work-in-progress files of a cache being prepared, under ``CACHE/.parts/``.

- ``<stem>/`` one finished case: ``images.npy``, ``masks.npy`` and ``case.json`` (its
  columns, spacing, files and the options key). Written as a temporary folder and renamed,
  so a part either exists whole or not at all.
- ``<stem>.skip.json`` a case that failed under ``--on-error skip``, with the reason.
- ``shard-K-of-N.json`` a finished shard: its options and the cases it covered.

``<stem>`` is the case id made file-safe plus a short hash of (dataset, case id). A part is
reused only when its options key and its source files' sizes and mtimes match.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calfseg.atomic import atomic_write_json
from calfseg.data.cache import PARTS_DIR
from calfseg.data.preparation.file_state import FileState, same_files
from calfseg.data.preprocess import CaseSlices
from calfseg.errors import DataValueError

PART_FORMAT = "calfseg.cache-part/1"
SKIP_FORMAT = "calfseg.cache-skip/1"
SHARD_FORMAT = "calfseg.cache-shard/1"
_RECORD = "case.json"
_SHARD_NAME = re.compile(r"^shard-(\d+)-of-(\d+)\.json$")


def parts_dir(cache: Path) -> Path:
    return cache / PARTS_DIR


def case_stem(dataset: str, case_id: str) -> str:
    """A file name for a case: readable, and unique even where ids differ only in
    characters that are not file-safe."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", case_id).strip("._")[:80] or "case"
    digest = hashlib.sha1(f"{dataset}\0{case_id}".encode()).hexdigest()[:10]
    return f"{safe}-{digest}"


# -- finished cases -----------------------------------------------------------------------


@dataclass(frozen=True)
class CaseRecord:
    """What ``case.json`` holds about one prepared case (arrays aside)."""

    case_id: str
    dataset: str
    key: str
    files: tuple[FileState, ...]
    spacing: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    label_source: str | None
    modality: tuple[str, ...]
    slice_index: tuple[int, ...]
    area: tuple[int, ...]
    patient_id: str = ""  # the split group; "" means the case id

    @property
    def patient(self) -> str:
        return self.patient_id or self.case_id

    @property
    def n_rows(self) -> int:
        return len(self.modality)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PART_FORMAT,
            "case_id": self.case_id,
            "dataset": self.dataset,
            "key": self.key,
            "files": [f.to_dict() for f in self.files],
            "spacing": list(self.spacing),
            "pixel_spacing": list(self.pixel_spacing),
            "label_source": self.label_source,
            "modality": list(self.modality),
            "slice_index": list(self.slice_index),
            "area": list(self.area),
            "patient_id": self.patient,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseRecord:
        if data.get("format") != PART_FORMAT:
            raise DataValueError(f"not a case part (format {data.get('format')!r})")
        return cls(
            case_id=str(data["case_id"]),
            dataset=str(data["dataset"]),
            key=str(data["key"]),
            files=tuple(FileState.from_dict(f) for f in data["files"]),
            spacing=tuple(float(v) for v in data["spacing"]),
            pixel_spacing=(float(data["pixel_spacing"][0]), float(data["pixel_spacing"][1])),
            label_source=data.get("label_source"),
            modality=tuple(str(v) for v in data["modality"]),
            slice_index=tuple(int(v) for v in data["slice_index"]),
            area=tuple(int(v) for v in data["area"]),
            patient_id=str(data.get("patient_id") or data["case_id"]),
        )


def write_part(cache: Path, record: CaseRecord, slices: CaseSlices) -> Path:
    """Write one finished case as ``.parts/<stem>/``, replacing an older part of it."""
    root = parts_dir(cache)
    root.mkdir(parents=True, exist_ok=True)
    final = root / case_stem(record.dataset, record.case_id)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    try:
        np.save(tmp / "images.npy", slices.images)
        np.save(tmp / "masks.npy", slices.masks)
        (tmp / _RECORD).write_text(json.dumps(record.to_dict()) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (root / f"{final.name}.skip.json").unlink(missing_ok=True)
    return final


def read_part_record(cache: Path, dataset: str, case_id: str) -> CaseRecord | None:
    """The record of a case's part, or None when there is no readable part."""
    path = parts_dir(cache) / case_stem(dataset, case_id) / _RECORD
    try:
        return CaseRecord.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def part_is_current(record: CaseRecord | None, key: str, files: Sequence[FileState] | None) -> bool:
    """The part was made with these options from these files (``files`` None: trust it)."""
    if record is None or record.key != key:
        return False
    return files is None or same_files(record.files, files)


def load_part_arrays(cache: Path, record: CaseRecord) -> tuple[np.ndarray, np.ndarray]:
    """The part's images and masks as read-only memory maps (checked against the record)."""
    folder = parts_dir(cache) / case_stem(record.dataset, record.case_id)
    images = np.load(folder / "images.npy", mmap_mode="r")
    masks = np.load(folder / "masks.npy", mmap_mode="r")
    if images.shape[0] != record.n_rows or masks.shape[0] != record.n_rows:
        raise DataValueError(f"{folder}: {images.shape[0]} rows, its record lists {record.n_rows}")
    return images, masks


# -- failed cases -------------------------------------------------------------------------


@dataclass(frozen=True)
class SkipRecord:
    """A case left out under ``--on-error skip``."""

    case_id: str
    dataset: str
    key: str
    reason: str
    files: tuple[FileState, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SKIP_FORMAT,
            "case_id": self.case_id,
            "dataset": self.dataset,
            "key": self.key,
            "reason": self.reason,
            "files": [f.to_dict() for f in self.files],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SkipRecord:
        if data.get("format") != SKIP_FORMAT:
            raise DataValueError(f"not a skip record (format {data.get('format')!r})")
        files = tuple(FileState.from_dict(f) for f in data.get("files", ()))
        return cls(
            str(data["case_id"]), str(data["dataset"]), str(data["key"]), data["reason"], files
        )


def write_skip(cache: Path, record: SkipRecord) -> None:
    root = parts_dir(cache)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        root / f"{case_stem(record.dataset, record.case_id)}.skip.json", record.to_dict()
    )


def read_skip(cache: Path, dataset: str, case_id: str) -> SkipRecord | None:
    path = parts_dir(cache) / f"{case_stem(dataset, case_id)}.skip.json"
    try:
        return SkipRecord.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- shards -------------------------------------------------------------------------------


def shard_marker_path(cache: Path, shard: int, shards: int) -> Path:
    return parts_dir(cache) / f"shard-{shard}-of-{shards}.json"


def write_shard_marker(cache: Path, shard: int, shards: int, data: dict[str, Any]) -> Path:
    path = shard_marker_path(cache, shard, shards)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"format": SHARD_FORMAT, "shard": [shard, shards], **data})
    return path


def read_shard_markers(cache: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """``(K, N, marker)`` for every readable shard marker, in name order."""
    root = parts_dir(cache)
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        match = _SHARD_NAME.match(path.name)
        if not match:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("format") == SHARD_FORMAT:
            yield int(match.group(1)), int(match.group(2)), data


def remove_parts(cache: Path) -> None:
    """Delete ``.parts/`` (after the cache is assembled, the parts are in it)."""
    shutil.rmtree(parts_dir(cache), ignore_errors=True)
