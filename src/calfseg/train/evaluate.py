"""Evaluate a checkpoint on a split of a cache: the metrics dict, a per-image table and the
qualitative examples (the smallest non-empty truths), optionally written to a folder::

    eval_<split>.json          {"split", "checkpoint", "cache": cache_provenance(),
                                "results": MetricAccumulator.compute()}
    per_image_<split>.csv      one row per slice (see PER_IMAGE_COLUMNS)
    per_case_<split>.csv       one row per case (see PER_CASE_COLUMNS): the counts summed
                               over the case's slices, its Dice (case_dice) and, with
                               surface distances, its 3D HD95 and ASSD in mm
                               (calfseg.metrics.volume)
    qualitative_<split>.npz    rows, images, truth, pred of the 16 smallest tumours
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import calfseg.run_files as files
from calfseg.atomic import atomic_write, atomic_write_text
from calfseg.data.dataset import read_batches
from calfseg.errors import DataValueError
from calfseg.metrics import (
    SURFACE_METRICS,
    MetricAccumulator,
    confusion_counts,
    image_scores,
    per_case_distances,
    surface_distances,
)
from calfseg.metrics.confusion import binarise
from calfseg.train.build import cache_info, open_split
from calfseg.train.cache_record import (
    CacheChangedError,
    CacheChangedWarning,
    cache_record,
    changes,
    same_path,
)
from calfseg.train.case_dice import case_dice
from calfseg.train.distributed import chunks, resolve_device
from calfseg.train.logs import rows_to_csv
from calfseg.train.trained_model import TrainedModel, load_trained_model

PER_IMAGE_COLUMNS: tuple[str, ...] = (
    "row", "case_id", "area", "dice", "iou", "sensitivity", "specificity", "precision",
    "hd95_mm", "assd_mm",
)  # fmt: skip
PER_CASE_COLUMNS: tuple[str, ...] = (
    "case_id", "n_slices", "tp", "fp", "fn", "tn", "dice", "hd95_mm", "assd_mm",
)  # fmt: skip
QUALITATIVE_COUNT = 16
PAPER_POOLED_BATCH = 32  # the paper's Dice was pooled over each test batch of 32


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
    allow_changed_cache: bool = False,
) -> dict[str, Any]:
    """Evaluate a trained model on ``split`` of ``cache`` (default: the training cache).

    ``checkpoint`` is anything :func:`load_trained_model` reads: a checkpoint, a run folder
    or an export (``calf export``). Returns ``{"split", "checkpoint", "cache", "results",
    "per_image", "per_case"}``: ``cache`` says which cache was evaluated and which one the model was
    trained on (:func:`cache_provenance`); ``results`` is the flat metrics dict of
    :meth:`MetricAccumulator.compute` (per-image Dice, IoU, ..., HD95 and ASSD in mm when
    ``surface``), ``per_image`` one dict per slice with :data:`PER_IMAGE_COLUMNS` and
    ``per_case`` one dict per case with :data:`PER_CASE_COLUMNS`. With ``out_dir``, also
    writes the four files of the module docstring there, atomically.

    Raises:
        CacheChangedError: ``cache`` is the training cache's folder but it was prepared
            again since training (another digest); the message says what changed.
            ``allow_changed_cache`` turns it into a :class:`CacheChangedWarning`.
    """
    where = resolve_device(device)
    trained = load_trained_model(checkpoint, "cpu")
    config = trained.config
    recorded_path = (trained.cache or {}).get("path")
    data = os.fspath(cache) if cache is not None else (recorded_path or config.cache)
    provenance = cache_provenance(trained, data, allow_changed_cache=allow_changed_cache)
    info = cache_info(data)
    if [info.height, info.width] != list(trained.size) or info.channels != trained.in_channels:
        raise DataValueError(
            f"{data} holds {info.channels}-channel {info.height}x{info.width} slices; the "
            f"model was trained on {trained.in_channels}-channel "
            f"{trained.size[0]}x{trained.size[1]} slices"
        )
    config.cache = data
    dataset = open_split(config, split, purpose="evaluation")
    model = trained.model.to(where)
    results, table, qualitative, cases = evaluate_model(
        model, dataset, batch_size=batch_size or config.batch_size, device=where,
        surface=surface, progress=progress,
    )  # fmt: skip
    name = trained.source.name
    report = {
        "split": split, "checkpoint": name, "cache": provenance, "results": results,
        "per_image": table, "per_case": cases,
    }  # fmt: skip
    if out_dir is not None:
        write_evaluation(
            out_dir, split, name, results, table, qualitative, cache=provenance, per_case=cases
        )
    return report


def cache_provenance(
    trained: TrainedModel, data: str | os.PathLike[str], *, allow_changed_cache: bool = False
) -> dict[str, Any]:
    """Which cache is evaluated and which one ``trained`` was trained on::

        {"path", "digest", "training_path", "training_digest", "same_path",
         "changed_since_training", "allow_changed_cache"}

    The training cache's folder with another digest than at training time raises
    :class:`CacheChangedError` naming what changed, or with ``allow_changed_cache`` warns
    (:class:`CacheChangedWarning`). Another folder is evaluated on purpose: allowed, and
    both digests are recorded. A model with no record of its cache (converted from format
    1, or an export written without one) warns that nothing can be checked.
    """
    now = cache_record(data)
    recorded = trained.cache
    provenance: dict[str, Any] = {
        "path": now["path"],
        "digest": now["digest"],
        "training_path": None if recorded is None else recorded.get("path"),
        "training_digest": None if recorded is None else recorded.get("digest"),
        "same_path": False,
        "changed_since_training": False,
        "allow_changed_cache": allow_changed_cache,
    }
    if recorded is None or not recorded.get("path") or not recorded.get("digest"):
        warnings.warn(
            CacheChangedWarning(
                f"{trained.source} has no record of the cache it was trained on: cannot check "
                f"that {data} is still the same (export it again from a format-2 checkpoint)"
            ),
            stacklevel=3,
        )
        return provenance
    provenance["same_path"] = same_path(recorded["path"], data)
    if provenance["same_path"] and recorded["digest"] != now["digest"]:
        provenance["changed_since_training"] = True
        what = "; ".join(changes(recorded, now))
        text = (
            f"{data} was prepared again since {trained.source} was trained on it ({what}): "
            "the model would be scored against other slices or masks than it was trained "
            "and validated with"
        )
        if not allow_changed_cache:
            raise CacheChangedError(
                f"{text}. Prepare the cache again as it was, evaluate on another cache on "
                "purpose (--data OTHER), or pass --allow-changed-cache (allow_changed_cache="
                "True) to evaluate anyway (recorded in eval_<split>.json)"
            )
        warnings.warn(CacheChangedWarning(f"{text}; evaluating anyway"), stacklevel=3)
    return provenance


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    dataset: Any,
    *,
    batch_size: int = 32,
    device: torch.device | None = None,
    surface: bool = True,
    progress: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, np.ndarray], list[dict[str, Any]]]:
    """Run ``model`` over every slice of ``dataset`` (a SliceDataset) in order.

    Returns the results dict, the per-image table, the qualitative arrays and the per-case
    table (:func:`per_case_table`)."""
    model.eval()
    positions = np.arange(len(dataset))
    areas = np.asarray(dataset.areas)
    spacing = np.asarray(dataset.spacing, dtype=np.float64)
    picked = _smallest_tumours(areas)
    counts, surfaces, preds = [], [], {}
    packed: list[tuple[np.ndarray, np.ndarray]] = []  # every mask, 1 bit a pixel, for 3D
    batches = list(chunks(positions, batch_size))
    from calfseg.progress import progress_bar  # None unless stderr is a terminal

    bar = progress_bar(len(batches), "evaluate", progress, unit="batch")
    for pos, images, masks in read_batches(dataset, batches, device=device):
        logits = model(images).float()
        pred, true = binarise(logits, masks, 0.0)
        counts.append(confusion_counts(pred, true).to("cpu"))
        if surface:
            surfaces.append(surface_distances(pred, true, spacing[pos]))
            packed.append(
                (np.packbits(pred.cpu().numpy(), axis=-1), np.packbits(true.cpu().numpy(), axis=-1))
            )
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
    distances = None
    if surface and packed:
        width = int(dataset.meta["size"][1])
        pred_bits = _PackedMasks([p for p, _ in packed], width)
        true_bits = _PackedMasks([t for _, t in packed], width)
        packed.clear()
        distances = per_case_distances(
            pred_bits,
            true_bits,
            case_ids,
            dataset.index["slice_index"],
            dataset.voxel_spacing,
            modality=dataset.index["modality"],
        )
        for case in _partial_cases(dataset):  # not a volume: no 3D distance
            distances.pop(case, None)
        for metric in SURFACE_METRICS:  # both-empty cases count 0 mm, as BraTS scores them
            values = [d[metric] for d in distances.values()]
            results[f"{metric}/per_case"] = float(np.mean(values)) if values else None
    cases = per_case_table(counts, case_ids, distances)
    return dict(results), table, qualitative, cases


def _partial_cases(dataset: Any) -> set[str]:
    """The cases of ``dataset`` that hold only some of their rows in the cache (a
    slice-level split, a filter): their volume is not the case's, so they get no 3D
    distance."""
    from calfseg.data.cache import INDEX_FILE, read_index

    full = read_index(Path(dataset.path) / INDEX_FILE)

    def counts(index: dict[str, np.ndarray]) -> dict[tuple[str, str], int]:
        keys, n = np.unique(
            np.stack([index["case_id"].astype(str), index["modality"].astype(str)], axis=1),
            axis=0,
            return_counts=True,
        )
        return {(str(a), str(b)): int(c) for (a, b), c in zip(keys, n, strict=True)}

    mine, whole = counts(dataset.index), counts(full)
    return {case for (case, kind), n in mine.items() if n < whole[(case, kind)]}


class _PackedMasks:
    """``(N, H, W)`` bool masks kept at one bit a pixel (np.packbits along W); indexing by
    row numbers unpacks those rows only, so that a large test set's masks fit in memory."""

    def __init__(self, parts: list[np.ndarray], width: int) -> None:
        self.bits = np.concatenate(parts)
        self.width = width

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self.bits.shape[0]), int(self.bits.shape[1]), self.width)

    def __getitem__(self, rows: Any) -> np.ndarray:
        return np.unpackbits(self.bits[rows], axis=-1, count=self.width).astype(bool)


def per_case_table(
    counts: list[Any], case_ids: Any, distances: dict[str, dict[str, float]] | None = None
) -> list[dict[str, Any]]:
    """One row per case (sorted by case id): its number of slices, the confusion counts
    summed over them and their Dice (:func:`calfseg.train.case_dice.case_dice`, the rule
    validation uses too); ``counts`` are the batches' ConfusionCounts. ``distances`` (per
    case, :func:`calfseg.metrics.per_case_distances`) fills ``hd95_mm`` and ``assd_mm``;
    without it they are empty."""
    from calfseg.metrics import ConfusionCounts, per_case_counts

    ids = np.asarray(case_ids).reshape(-1)
    unique, summed = per_case_counts(ConfusionCounts.cat(counts), ids)
    numbers = summed.numpy()
    n_slices = {str(k): int(v) for k, v in zip(*np.unique(ids, return_counts=True), strict=True)}
    dice = case_dice(numbers["tp"], numbers["fp"], numbers["fn"])
    table = []
    for i, case in enumerate(unique.tolist()):
        tp, fp, fn, tn = (int(numbers[k][i]) for k in ("tp", "fp", "fn", "tn"))
        counted = {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "dice": float(dice[i])}
        measured = (distances or {}).get(str(case), {})
        far = {m: measured.get(m) for m in SURFACE_METRICS}
        table.append({"case_id": str(case), "n_slices": n_slices[str(case)], **counted, **far})
    return table


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
    pairs = zip(values.tolist(), undefined.tolist(), strict=True)
    return [None if u else float(v) for v, u in pairs]


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
    *,
    cache: dict[str, Any] | None = None,
    per_case: list[dict[str, Any]] | None = None,
) -> None:
    """Write ``eval_<split>.json``, ``per_image_<split>.csv``, ``qualitative_<split>.npz``
    and, given ``per_case``, ``per_case_<split>.csv`` (``cache``: the evaluated and training
    caches, :func:`cache_provenance`)."""
    out = Path(out_dir)
    report = {"split": split, "checkpoint": checkpoint_name, "cache": cache, "results": results}
    atomic_write_text(out / files.per_image_table(split), rows_to_csv(table, PER_IMAGE_COLUMNS))
    if per_case is not None:
        rows = rows_to_csv(per_case, PER_CASE_COLUMNS)
        atomic_write_text(out / files.per_case_table(split), rows)

    def save_npz(handle: Any) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **qualitative)  # type: ignore[arg-type]
        handle.write(buffer.getvalue())

    atomic_write(out / files.qualitative_examples(split), save_npz)
    atomic_write_text(out / files.evaluation_report(split), json.dumps(report, indent=2) + "\n")
