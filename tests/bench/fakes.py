"""Fake benchmark run folders, written exactly as the training contract describes, so the
benchmark layer is tested without training anything."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from calfseg.train.stopping import CONVERGENCE_RULE

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

# per-case test results (per_case_test.csv): N_CASES cases, each TRUE_AREA lesion pixels
N_CASES = 12
TRUE_AREA = 1000
CASE_SLICES = 10
CASE_PIXELS = CASE_SLICES * 64 * 64
# per-case Dice offset and noise against bce, one of each verdict of the rule
CASE_SHIFT = {
    ("unet", "calf"): (0.08, 0.01),  # better
    ("unet", "dice"): (-0.03, 0.01),  # worse
    ("fpn", "calf"): (0.0, 0.0),  # equivalent: copies bce exactly
    ("fpn", "dice"): (0.02, 0.08),  # inconclusive: noisy
}


def per_case_tp(model: str, loss: str, seed: int) -> np.ndarray:
    """True-positive pixels of each case; with FP = FN = TRUE_AREA - TP the case's Dice is
    exactly TP / TRUE_AREA."""
    base = np.random.default_rng([len(model), seed, 99]).uniform(0.5, 0.85, N_CASES)
    shift, noise = CASE_SHIFT.get((model, loss), (0.0, 0.0))
    jitter = np.zeros(N_CASES)
    if noise:
        jitter = np.random.default_rng([len(model), seed, len(loss), 7]).normal(0, noise, N_CASES)
    dice = np.clip(base + shift + jitter, 0.0, 1.0)
    return np.rint(dice * TRUE_AREA).astype(int)


def fold_cases(fold: int | None, n_folds: int) -> list[int]:
    """The case indices a run of ``fold`` tests (every case without cross-validation)."""
    return [c for c in range(N_CASES) if fold is None or c % n_folds == fold - 1]


def per_image_dice(model: str, loss: str, seed: int) -> np.ndarray:
    """Deterministic per-slice Dice: a per-(model, seed) base plus the loss's shift and a
    small loss-specific jitter (none for fpn's calf, which copies bce exactly)."""
    base = np.random.default_rng([len(model), seed]).uniform(0.55, 0.8, N_TEST)
    shift = SHIFT.get((model, loss), 0.0)
    jitter = np.zeros(N_TEST)
    if (model, loss) not in (("fpn", "calf"),) and loss != "bce":
        jitter = np.random.default_rng([len(model), seed, len(loss)]).normal(0, 0.01, N_TEST)
    return np.clip(base + shift + jitter, 0.0, 1.0)


def write_run(
    out: Path,
    model: str,
    loss: str,
    seed: int,
    *,
    epochs: int = 3,
    fold: int | None = None,
    n_folds: int = 1,
    converged: bool | None = True,
) -> Path:
    """One finished run folder; ``fold`` names it ``-f{fold}`` and tests that fold's cases;
    ``converged`` None writes a done.json of an older calf-seg (no convergence keys)."""
    name = f"{model}-{loss}-s{seed}" + ("" if fold is None else f"-f{fold}")
    folder = out / "runs" / name
    folder.mkdir(parents=True, exist_ok=True)
    config = {"cache": "cache", "model": model, "preset": "tiny", "loss": loss, "seed": seed}
    if fold is not None:
        config.update(split="cv", cv_folds=n_folds, cv_fold=fold, cv_seed=0)
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
    columns = ["epoch", "train_loss", "val_loss", "val_dice", "seconds", "lr", "val_case_dice"]
    if loss.startswith("calf"):
        columns += [f"branch/{b}" for b in BRANCHES]
    with (folder / "log.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for epoch in range(1, epochs + 1):
            cells = [epoch, 1 / epoch, 1.1 / epoch, 0.5 + 0.1 * epoch, 1.5, 1e-3, 0.4 + 0.1 * epoch]
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
    tps = per_case_tp(model, loss, seed)
    with (folder / "per_case_test.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("case_id", "n_slices", "tp", "fp", "fn", "tn", "dice"))
        for c in fold_cases(fold, n_folds):
            tp = int(tps[c])
            miss = TRUE_AREA - tp
            tn = CASE_PIXELS - tp - 2 * miss
            writer.writerow([f"case{c:02d}", CASE_SLICES, tp, miss, miss, tn, tp / TRUE_AREA])
    done: dict[str, object] = {"finished": True}
    if converged is not None:
        done.update(
            converged=converged, convergence_rule=CONVERGENCE_RULE,
            stop_reason="patience" if converged else "budget",
            best_epoch=epochs - 1 if converged else epochs, best_val_case_dice=0.7,
            epochs_run=epochs,
        )  # fmt: skip
    (folder / "done.json").write_text(json.dumps(done))
    return folder


def write_benchmark(out: Path, *, n_folds: int = 1) -> Path:
    """2 models x 3 losses x 2 seeds (x ``n_folds`` folds when 2 or more) of finished fake
    runs under ``out``."""
    folds: list[int | None] = [None] if n_folds < 2 else list(range(1, n_folds + 1))
    for model in MODELS:
        for loss in LOSSES:
            for seed in SEEDS:
                for fold in folds:
                    write_run(out, model, loss, seed, fold=fold, n_folds=n_folds)
    return out
