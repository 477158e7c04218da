"""Fake benchmark run folders, written exactly as the training contract describes, so the
benchmark layer is tested without training anything."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

MODELS = ("unet", "fpn")
LOSSES = ("bce", "dice", "calf")
SEEDS = (0, 1)
N_TEST = 30
ROWS = np.arange(100, 100 + N_TEST)
EMPTY_ROWS = {100, 101, 102, 103}  # tumour-free slices: Dice undefined (empty cell)
PER_IMAGE_COLUMNS = (
    "row", "case_id", "area", "dice", "iou", "sensitivity", "specificity", "precision",
    "hd95_mm", "assd_mm",
)  # fmt: skip
BRANCHES = ("fisher", "logit", "arcsine", "log10", "ln", "bce_dice")

# per-image Dice offsets against bce: unet's calf is clearly better, fpn's calf is bce
SHIFT = {("unet", "calf"): 0.08, ("unet", "dice"): -0.03, ("fpn", "dice"): 0.02}


def per_image_dice(model: str, loss: str, seed: int) -> np.ndarray:
    """Deterministic per-slice Dice: a per-(model, seed) base plus the loss's shift and a
    small loss-specific jitter (none for fpn's calf, which copies bce exactly)."""
    base = np.random.default_rng([len(model), seed]).uniform(0.55, 0.8, N_TEST)
    shift = SHIFT.get((model, loss), 0.0)
    jitter = np.zeros(N_TEST)
    if (model, loss) not in (("fpn", "calf"),) and loss != "bce":
        jitter = np.random.default_rng([len(model), seed, len(loss)]).normal(0, 0.01, N_TEST)
    return np.clip(base + shift + jitter, 0.0, 1.0)


def write_run(out: Path, model: str, loss: str, seed: int, *, epochs: int = 3) -> Path:
    folder = out / "runs" / f"{model}-{loss}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    config = {"cache": "cache", "model": model, "preset": "tiny", "loss": loss, "seed": seed}
    (folder / "config.json").write_text(json.dumps({**config, "epochs": epochs}))
    dice = per_image_dice(model, loss, seed)
    areas = np.where(np.isin(ROWS, list(EMPTY_ROWS)), 0, 10 + 7 * np.arange(N_TEST))
    with (folder / "per_image_test.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PER_IMAGE_COLUMNS)
        for i, row in enumerate(ROWS):
            empty = int(row) in EMPTY_ROWS
            d = "" if empty else f"{dice[i]:.6f}"
            iou = "" if empty else f"{dice[i] / (2 - dice[i]):.6f}"
            hd = "" if empty else f"{10 * (1 - dice[i]):.4f}"
            writer.writerow([row, f"{i // 10:03d}", areas[i], d, iou, d, 0.99, d, hd, hd])
    defined = dice[[int(r) not in EMPTY_ROWS for r in ROWS]]
    results: dict[str, float | int | str | None] = {
        "dice/per_image": float(defined.mean()),
        "dice/pooled": float(defined.mean()) + 0.01,
        "iou/per_image": float((defined / (2 - defined)).mean()),
        "sensitivity/per_image": float(defined.mean()),
        "specificity/pooled": 0.99,
        "precision/per_image": float(defined.mean()),
        "hd95_mm/per_image": float((10 * (1 - defined)).mean()),
        "dice/per_image/small": float(defined[:8].mean()),
        "dice/per_image/medium": float(defined[8:17].mean()),
        "dice/per_image/large": float(defined[17:].mean()),
        "dice/per_image/empty": None,
        "n_undefined/dice/per_image": 4,
        "n_images": N_TEST,
        "policy": "one",
    }
    evaluation = {"split": "test", "checkpoint": "best.pt", "results": results}
    (folder / "eval_test.json").write_text(json.dumps(evaluation))
    columns = ["epoch", "train_loss", "val_loss", "val_dice", "seconds", "lr"]
    if loss.startswith("calf"):
        columns += [f"branch/{b}" for b in BRANCHES]
    with (folder / "log.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for epoch in range(1, epochs + 1):
            cells = [epoch, 1 / epoch, 1.1 / epoch, 0.5 + 0.1 * epoch, 1.5, 1e-3]
            if loss.startswith("calf"):
                cells += [0, 0, 0, 0.75, 0.25, 0] if epoch > 1 else [0, 0, 0, 0.5, 0.5, 0]
            writer.writerow(cells)
    smallest = ROWS[4:20]
    rng = np.random.default_rng(seed)
    np.savez(
        folder / "qualitative_test.npz",
        rows=smallest.astype(np.int64),
        images=rng.integers(0, 255, (16, 1, 16, 16)).astype(np.uint8),
        truth=(rng.random((16, 16, 16)) > 0.8).astype(np.uint8),
        pred=(rng.random((16, 16, 16)) > 0.8).astype(np.uint8),
    )
    (folder / "done.json").write_text(json.dumps({"finished": True}))
    return folder


def write_benchmark(out: Path) -> Path:
    """2 models x 3 losses x 2 seeds of finished fake runs under ``out``."""
    for model in MODELS:
        for loss in LOSSES:
            for seed in SEEDS:
                write_run(out, model, loss, seed)
    return out
