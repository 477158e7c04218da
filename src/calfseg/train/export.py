"""Exported models: the weights as safetensors plus a JSON record, made for sharing.

``calf export RUN_OR_CHECKPOINT OUT`` writes the folder ``OUT``::

    OUT/model.safetensors   the network's state dict (safetensors: tensors and a JSON
                            header, no pickle: reading it runs nothing)
    OUT/model.json          what the network is and how it was trained (EXPORT_FORMAT)

``model.json`` holds ``format``, ``calfseg_version``, ``architecture`` (model, preset,
encoder, in_channels, size [H, W]), ``preprocessing`` (the training cache's ``calf
prepare`` options and image dtype, which ``calf predict`` applies), ``loss`` (name,
options), ``cache`` (its path, digest and train-split fingerprint S, K, branch, and its
meta entries: see :mod:`calfseg.train.cache_record`), ``training`` (the checkpoint's epoch,
the best epoch and its validation score ``dice/per_image``, the full TrainConfig) and
``weights`` (the file name and its SHA-256, checked on reading). The optimizer state and
the RNG internals are left out: they resume a run, they do not describe a model.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from calfseg.atomic import atomic_write, atomic_write_text
from calfseg.extras import require
from calfseg.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    require_model_keys,
)
from calfseg.train.export_format import (
    BOUND_KEY,
    EXPORT_FORMAT,
    RECORD_FILE,
    WEIGHTS_FILE,
    bound_entries,
    is_export,
    read_export,
    read_record,
)


class ExportExistsError(CheckpointError):
    """OUT already holds an export (pass ``overwrite``), or is not a folder."""


def export_model(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Export the checkpoint ``source`` (a ``.pt`` file, or a run folder: its ``best.pt``)
    into the folder ``out`` (module docstring); returns ``(weights, record)``.

    The checkpoint is read safely (nothing in it runs) and its weights are loaded into a
    network of its architecture before anything is written, so an export always loads. Raises
    :class:`ExportExistsError` if ``out`` already holds an export and not ``overwrite``, or
    names a file.
    """
    from calfseg.train.trained_model import (
        config_of,
        network_with_weights,
        resolve_model_path,
    )

    checkpoint = resolve_model_path(source)
    if is_export(checkpoint):
        raise CheckpointError(
            f"{source} is already an export ({WEIGHTS_FILE} + {RECORD_FILE}); give a "
            "checkpoint (.pt) or a run folder"
        )
    target = Path(out)
    if target.suffix in (".safetensors", ".json", ".pt") or (
        target.exists() and not target.is_dir()
    ):
        raise ExportExistsError(
            f"OUT {target} must be a folder (it will hold {WEIGHTS_FILE} and {RECORD_FILE})"
        )
    existing = [p.name for p in (target / WEIGHTS_FILE, target / RECORD_FILE) if p.exists()]
    if existing and not overwrite:
        raise ExportExistsError(
            f"{target} already holds an export ({', '.join(existing)}): pass --overwrite "
            "(overwrite=True) to replace it, or choose another OUT"
        )
    state = load_checkpoint(checkpoint)
    require_model_keys(state, checkpoint)
    config = config_of(state["config"], checkpoint)
    network_with_weights(config, int(state["in_channels"]), state["model"], checkpoint)
    return write_export(target, state, source=checkpoint)


def write_export(
    out: str | os.PathLike[str],
    state: dict[str, Any],
    *,
    source: str | os.PathLike[str],
) -> tuple[Path, Path]:
    """Write the export of the checkpoint dict ``state`` (read from ``source``) into the
    folder ``out``; returns the two paths. Each file is written atomically, the weights
    first, so a record always describes the weights beside it."""
    st = require("safetensors.torch", "exporting a model as safetensors")
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in state["model"].items()}
    record = export_record(state, source=source, sha256="")
    # the entries predict reads the image with go into the hashed weights file too
    metadata = {"format": EXPORT_FORMAT, BOUND_KEY: bound_entries(record)}
    blob: bytes = st.save(tensors, metadata=metadata)
    weights, record_path = Path(out) / WEIGHTS_FILE, Path(out) / RECORD_FILE
    atomic_write(weights, lambda handle: handle.write(blob))
    record["weights"]["sha256"] = hashlib.sha256(blob).hexdigest()
    atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
    return weights, record_path


def export_record(
    state: dict[str, Any], *, source: str | os.PathLike[str], sha256: str
) -> dict[str, Any]:
    """The ``model.json`` of a checkpoint dict (module docstring)."""
    from calfseg import __version__

    config = dict(state["config"])
    size = [int(v) for v in state["size"]]
    score = state.get("best_score")
    return {
        "format": EXPORT_FORMAT,
        "calfseg_version": __version__,
        "architecture": {
            "model": config.get("model"),
            "preset": config.get("preset"),
            "encoder": config.get("encoder"),
            "in_channels": int(state["in_channels"]),
            "size": size,
        },
        "preprocessing": {
            "options": state.get("cache_options"),
            "image_dtype": state.get("cache_image_dtype"),
        },
        "loss": {"name": config.get("loss"), "options": config.get("loss_options")},
        "cache": state.get("cache"),
        "training": {
            "checkpoint": Path(source).name,
            "epoch": state.get("epoch"),
            "best_epoch": state.get("best_epoch"),
            "best_score": None if score is None else float(score),
            "score": "validation dice/per_image",
            "config": config,
        },
        "weights": {"file": WEIGHTS_FILE, "sha256": sha256},
    }


__all__ = ["export_model", "read_export", "read_record", "write_export"]
