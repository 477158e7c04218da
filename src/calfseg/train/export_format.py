"""The export format's reading side: where an export's two files are, whether a path is an
export, and reading ``model.safetensors`` + ``model.json`` with every entry checked.

The writing side is :mod:`calfseg.train.export`; the one model loader,
:mod:`calfseg.train.trained_model`, reads through this module (so the two never import each
other)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from calfseg.extras import require
from calfseg.train.checkpoint import CheckpointError, CheckpointFileError

EXPORT_FORMAT = "calfseg.model/1"
WEIGHTS_FILE = "model.safetensors"
RECORD_FILE = "model.json"
# What model.json must hold, and the type of each entry (checked before anything is used).
RECORD_ENTRIES: dict[str, tuple[type, ...]] = {
    "format": (str,),
    "architecture": (dict,),
    "preprocessing": (dict,),
    "loss": (dict,),
    "cache": (dict, type(None)),  # None: converted from a format-1 checkpoint
    "training": (dict,),
    "weights": (dict,),
}
ARCHITECTURE_ENTRIES = ("model", "preset", "encoder", "in_channels", "size")


def export_files(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(weights, record)`` of an export given as its folder or as either of its files."""
    where = Path(path)
    if where.is_dir():
        return where / WEIGHTS_FILE, where / RECORD_FILE
    if where.suffix == ".safetensors":
        return where, where.with_suffix(".json")
    return where.with_suffix(".safetensors"), where


def is_export(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an export: a folder holding either file, or a .safetensors
    or .json file."""
    where = Path(path)
    if where.is_dir():
        return (where / WEIGHTS_FILE).exists() or (where / RECORD_FILE).exists()
    return where.suffix in (".safetensors", ".json")


def read_export(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and the record of an export (its folder or either file).

    Raises :class:`CheckpointError` if the files do not exist and
    :class:`CheckpointFileError` if either is malformed: unreadable JSON, a missing or
    mistyped entry, weights whose SHA-256 is not the recorded one, or a file safetensors
    cannot parse. Nothing is unpickled."""
    weights, record_path = export_files(path)
    missing = [str(p) for p in (weights, record_path) if not p.is_file()]
    if missing:
        raise CheckpointError(
            f"no exported model at {path}: {' and '.join(missing)} not found (an export is a "
            f"folder holding {WEIGHTS_FILE} and {RECORD_FILE}, written by calf export)"
        )
    record = read_record(record_path)
    blob = weights.read_bytes()
    expected = record["weights"].get("sha256")
    if hashlib.sha256(blob).hexdigest() != expected:
        raise CheckpointFileError(
            f"{weights} does not match {record_path}: its SHA-256 is not the recorded "
            f"{expected!r} (a damaged or replaced file)"
        )
    st = require("safetensors.torch", "reading an exported model")
    try:
        tensors: dict[str, torch.Tensor] = st.load(blob)
    except Exception as err:  # safetensors raises its own error type on a malformed header
        raise CheckpointFileError(f"{weights} is not a readable safetensors file ({err})") from None
    _check_bound(record, _header_metadata(blob), record_path, weights)
    return tensors, record


BOUND_KEY = "calfseg.predicts_with"
BOUND_ENTRIES = ("architecture", "preprocessing")
"""The entries of ``model.json`` that decide how ``calf predict`` reads an image (the input
size and channels, the intensity options, the image dtype). A copy goes into the weights
file's own header, which the recorded SHA-256 covers, so an edited ``model.json`` cannot
change a prediction without a word."""


def bound_entries(record: dict[str, Any]) -> str:
    """The text of :data:`BOUND_ENTRIES` of ``record`` stored in the weights' header."""
    return json.dumps({k: record.get(k) for k in BOUND_ENTRIES}, sort_keys=True)


def _header_metadata(blob: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob (an 8-byte little-endian header length,
    then the JSON header); empty when there is none."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    metadata = header.get("__metadata__") or {}
    return metadata if isinstance(metadata, dict) else {}


def _check_bound(
    record: dict[str, Any], metadata: dict[str, str], record_path: Path, weights: Path
) -> None:
    """Refuse a ``model.json`` whose :data:`BOUND_ENTRIES` differ from the copy in the
    weights' header (exports written before the copy existed carry none: not checked)."""
    stored = metadata.get(BOUND_KEY)
    if stored is None:
        return
    written = json.loads(stored)
    changed = [k for k in BOUND_ENTRIES if json.loads(json.dumps(record.get(k))) != written.get(k)]
    if changed:
        details = "; ".join(f"{k}: {written.get(k)} -> {record.get(k)}" for k in changed)
        raise CheckpointFileError(
            f"{record_path} was edited after export: {details} (the weights in {weights.name} "
            "were exported with the first); a prediction with the edited entries would not be "
            "the model's. Export the checkpoint again (calf export)"
        )


def read_record(path: Path) -> dict[str, Any]:
    """``model.json``, checked: the format and each entry of :data:`RECORD_ENTRIES`."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CheckpointFileError(f"{path} is not readable JSON ({err})") from None
    if not isinstance(record, dict) or record.get("format") != EXPORT_FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise CheckpointFileError(
            f"{path} is not a calf-seg model record (format {found!r}; expected {EXPORT_FORMAT!r})"
        )
    wrong = [
        f"{key} (expected a JSON {'object' if dict in kinds else 'string'})"
        for key, kinds in RECORD_ENTRIES.items()
        if not isinstance(record.get(key), kinds)
    ]
    architecture = record.get("architecture") or {}
    wrong += [f"architecture.{k}" for k in ARCHITECTURE_ENTRIES if k not in architecture]
    if not isinstance((record.get("training") or {}).get("config"), dict):
        wrong.append("training.config (the TrainConfig, a JSON object)")
    if not isinstance((record.get("weights") or {}).get("sha256"), str):
        wrong.append("weights.sha256 (the weights file's SHA-256, a string)")
    if not wrong and not _is_size(architecture["size"]):
        wrong.append("architecture.size (expected [H, W], positive integers)")
    if wrong:
        raise CheckpointFileError(f"{path} is a malformed model record: {', '.join(wrong)}")
    return record


def _is_size(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    )
