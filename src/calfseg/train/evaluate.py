"""Evaluate a checkpoint on a split of a cache: the metrics dict, a per-image table and the
qualitative examples (the smallest non-empty truths), optionally written to a folder::

    eval_<split>.json          {"split", "checkpoint", "results": MetricAccumulator.compute()}
    per_image_<split>.csv      one row per slice (see PER_IMAGE_COLUMNS)
    qualitative_<split>.npz    rows, images, truth, pred of the 16 smallest tumours
"""

from __future__ import annotations

import io
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from calfseg.metrics import MetricAccumulator, confusion_counts, image_scores, surface_distances
from calfseg.metrics.confusion import binarise
from calfseg.train.atomic import atomic_write, atomic_write_text
from calfseg.train.batches import read_batches
from calfseg.train.build import cache_info, open_split
from calfseg.train.checkpoint import checkpoint_config, load_checkpoint
from calfseg.train.distributed import chunks, resolve_device
from calfseg.train.logs import rows_to_csv

PER_IMAGE_COLUMNS: tuple[str, ...] = (
    "row", "case_id", "area", "dice", "iou", "sensitivity", "specificity", "precision",
    "hd95_mm", "assd_mm",
)  # fmt: skip
QUALITATIVE_COUNT = 16
PAPER_POOLED_BATCH = 32  # the paper's Dice was pooled over each test batch of 32


def model_from_checkpoint(state: dict[str, Any], device: torch.device) -> nn.Module:
    """The checkpoint's model, weights loaded, in eval mode on ``device``."""
    from calfseg.models import build_model

    config = checkpoint_config(state)
    model = build_model(
        config.model,
        preset=config.preset,
        in_channels=int(state["in_channels"]),
        encoder=config.encoder,
    )
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    cache: str | os.PathLike[str] | None = None,
    split: str = "test",
    *,
    batch_size: int | None = None,
    device: str = "auto",
    surface: bool = True,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on ``split`` of ``cache`` (default: the training cache).

    Returns ``{"split", "checkpoint", "results", "per_image"}``: the flat metrics dict of
    :meth:`MetricAccumulator.compute` (per-image Dice, IoU, ..., HD95 and ASSD in mm when
    ``surface``) and one dict per slice with :data:`PER_IMAGE_COLUMNS`. With ``out_dir``,
    also writes the three files of the module docstring there, atomically.
    """
    where = resolve_device(device)
    state = load_checkpoint(checkpoint, map_location="cpu")
    config = checkpoint_config(state)
    data = os.fspath(cache) if cache is not None else config.cache
    info = cache_info(data)
    if [info.height, info.width] != list(state["size"]) or info.channels != state["in_channels"]:
        raise ValueError(
            f"{data} holds {info.channels}-channel {info.height}x{info.width} slices; the "
            f"checkpoint was trained on {state['in_channels']}-channel "
            f"{state['size'][0]}x{state['size'][1]} slices"
        )
    config.cache = data
    dataset = open_split(config, split, purpose="evaluation")
    model = model_from_checkpoint(state, where)
    results, table, qualitative = evaluate_model(
        model, dataset, batch_size=batch_size or config.batch_size, device=where,
        surface=surface, progress=progress,
    )  # fmt: skip
    name = Path(checkpoint).name
    report = {"split": split, "checkpoint": name, "results": results, "per_image": table}
    if out_dir is not None:
        write_evaluation(out_dir, split, name, results, table, qualitative)
    return report


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    dataset: Any,
    *,
    batch_size: int = 32,
    device: torch.device | None = None,
    surface: bool = True,
    progress: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, np.ndarray]]:
    """Run ``model`` over every slice of ``dataset`` (a SliceDataset) in order.

    Returns the results dict, the per-image table and the qualitative arrays."""
    model.eval()
    positions = np.arange(len(dataset))
    areas = np.asarray(dataset.areas)
    spacing = np.asarray(dataset.spacing, dtype=np.float64)
    picked = _smallest_tumours(areas)
    counts, surfaces, preds = [], [], {}
    batches = list(chunks(positions, batch_size))
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(batches), desc="evaluate", file=sys.stderr, leave=False)
        except ImportError:
            bar = None
    for pos, images, masks in read_batches(dataset, batches, device=device):
        logits = model(images).float()
        pred, true = binarise(logits, masks, 0.0)
        counts.append(confusion_counts(pred, true).to("cpu"))
        if surface:
            surfaces.append(surface_distances(pred, true, spacing[pos]))
        for i, p in enumerate(pos.tolist()):
            if p in picked:
                preds[p] = pred[i].cpu().numpy().astype(np.uint8)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    case_ids = np.asarray(dataset.case_ids)
    acc = MetricAccumulator.from_state(
        {
            "settings": {
                "policy": "one",
                "threshold": 0.0,
                "surface": surface,
                "pooled_batch_size": PAPER_POOLED_BATCH,
            },
            "counts": [c.numpy() for c in counts],
            "surfaces": [
                {k: getattr(s, k) for k in ("hd95", "assd", "both_empty", "one_empty")}
                for s in surfaces
            ],
            "case_ids": [case_ids[b] for b in batches],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = acc.compute()
    table = _per_image_table(dataset, counts, surfaces, surface)
    qualitative = _qualitative(dataset, sorted(picked), preds)
    return dict(results), table, qualitative


def _smallest_tumours(areas: np.ndarray) -> set[int]:
    """Positions of the QUALITATIVE_COUNT smallest non-empty truths (ties: lower position)."""
    nonempty = np.flatnonzero(areas > 0)
    order = nonempty[np.lexsort((nonempty, areas[nonempty]))]
    return {int(p) for p in order[:QUALITATIVE_COUNT]}


def _per_image_table(
    dataset: Any, counts: list[Any], surfaces: list[Any], surface: bool
) -> list[dict[str, Any]]:
    from calfseg.metrics import ConfusionCounts, SurfaceDistances

    all_counts = ConfusionCounts.cat(counts)
    columns: dict[str, list[float | None]] = {}
    for metric in ("dice", "iou", "sensitivity", "specificity", "precision"):
        scores = image_scores(all_counts, metric)
        columns[metric] = _defined(scores.values, scores.undefined)
    if surface:
        distances = SurfaceDistances.cat(surfaces)
        for metric in ("hd95_mm", "assd_mm"):
            scores = distances.scores(metric)
            columns[metric] = _defined(scores.values, scores.undefined)
    n = len(all_counts)
    rows = np.asarray(dataset.rows)
    case_ids, areas = np.asarray(dataset.case_ids), np.asarray(dataset.areas)
    table = []
    for i in range(n):
        entry: dict[str, Any] = {
            "row": int(rows[i]),
            "case_id": str(case_ids[i]),
            "area": int(areas[i]),
        }
        for name in PER_IMAGE_COLUMNS[3:]:
            entry[name] = columns[name][i] if name in columns else None
        table.append(entry)
    return table


def _defined(values: np.ndarray, undefined: np.ndarray) -> list[float | None]:
    return [None if u else float(v) for v, u in zip(values.tolist(), undefined.tolist())]


def _qualitative(
    dataset: Any, positions: list[int], preds: dict[int, np.ndarray]
) -> dict[str, np.ndarray]:
    pos = np.asarray(positions, dtype=np.int64)
    images, masks = dataset.read_raw_batch(pos) if pos.size else (None, None)
    h, w = dataset.meta["size"]
    channels = len(dataset.meta["channels"])
    dtype = np.dtype(dataset.meta["image_dtype"])
    return {
        "rows": np.asarray(dataset.rows)[pos].astype(np.int64),
        "images": images.numpy() if images is not None else np.zeros((0, channels, h, w), dtype),
        "truth": masks.numpy().astype(np.uint8)
        if masks is not None
        else np.zeros((0, h, w), np.uint8),
        "pred": np.stack([preds[p] for p in positions]).reshape(-1, h, w).astype(np.uint8)
        if positions
        else np.zeros((0, h, w), np.uint8),
    }


def write_evaluation(
    out_dir: str | os.PathLike[str],
    split: str,
    checkpoint_name: str,
    results: dict[str, Any],
    table: list[dict[str, Any]],
    qualitative: dict[str, np.ndarray],
) -> None:
    """Write ``eval_<split>.json``, ``per_image_<split>.csv`` and ``qualitative_<split>.npz``."""
    out = Path(out_dir)
    report = {"split": split, "checkpoint": checkpoint_name, "results": results}
    atomic_write_text(out / f"per_image_{split}.csv", rows_to_csv(table, PER_IMAGE_COLUMNS))

    def save_npz(handle: Any) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **qualitative)  # type: ignore[arg-type]
        handle.write(buffer.getvalue())

    atomic_write(out / f"qualitative_{split}.npz", save_npz)
    atomic_write_text(out / f"eval_{split}.json", json.dumps(report, indent=2) + "\n")
