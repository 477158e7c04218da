"""The report's figures, drawn with matplotlib's Agg backend into PNG files.

Each function draws one figure for one model and returns its path, or None when there is
nothing to draw (no runs, no logs, no qualitative samples)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calfseg.bench.collect import ResultsTable
from calfseg.bench.stats import SeedSummary
from calfseg.extras import require

BAR_METRICS = ("dice", "iou", "sensitivity", "precision")
SIZE_GROUPS = ("small", "medium", "large")
QUALITATIVE_FILE = "qualitative_test.npz"
MAX_QUALITATIVE_ROWS = 6


def _pyplot() -> Any:
    matplotlib = require("matplotlib", "the benchmark report's figures")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "the benchmark report's figures")


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path


def _lookup(
    summaries: Sequence[SeedSummary], model: str
) -> dict[tuple[str, str, str, str], SeedSummary]:
    return {(s.loss, s.metric, s.reduction, s.group): s for s in summaries if s.model == model}


def metric_bars(
    summaries: Sequence[SeedSummary], model: str, losses: Sequence[str], path: Path
) -> Path | None:
    """Per-image Dice, IoU, sensitivity and precision per loss, with 95 % CI whiskers."""
    found = _lookup(summaries, model)
    if not any((loss, "dice", "per_image", "") in found for loss in losses):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(BAR_METRICS), figsize=(3.2 * len(BAR_METRICS), 3.2))
    x = np.arange(len(losses))
    for ax, metric in zip(axes, BAR_METRICS):
        means, errors = [], []
        for loss in losses:
            s = found.get((loss, metric, "per_image", ""))
            means.append(np.nan if s is None or s.mean is None else s.mean)
            errors.append(0.0 if s is None or s.half_width is None else s.half_width)
        ax.bar(x, means, yerr=errors, capsize=3, color="#4c72b0")
        ax.set_xticks(x, losses, rotation=45, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{metric} (per image)")
    fig.suptitle(f"{model}: mean over seeds, 95 % CI")
    return _save(fig, path)


def learning_curves(table: ResultsTable, model: str, path: Path) -> Path | None:
    """Validation Dice per epoch, one line per loss (mean over seeds)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    drawn = False
    for loss in table.losses:
        curves: dict[int, list[float]] = {}
        for seed in table.seeds:
            run = table.run(model, loss, seed)
            for row in table.logs.get(run.name, []) if run else []:
                epoch, value = row.get("epoch"), row.get("val_dice")
                if isinstance(epoch, (int, float)) and isinstance(value, (int, float)):
                    curves.setdefault(int(epoch), []).append(float(value))
        if curves:
            epochs = sorted(curves)
            ax.plot(epochs, [np.mean(curves[e]) for e in epochs], marker=".", label=loss)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ticker = require("matplotlib.ticker", "the benchmark report's figures")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation Dice")
    ax.set_title(f"{model}: learning curves (mean over seeds)")
    ax.legend(fontsize="small", ncol=2)
    return _save(fig, path)


def size_tertiles(
    summaries: Sequence[SeedSummary], model: str, losses: Sequence[str], path: Path
) -> Path | None:
    """Per-image Dice in the small, medium and large lesion tertiles, grouped by loss."""
    found = _lookup(summaries, model)
    if not any((loss, "dice", "per_image", g) in found for loss in losses for g in SIZE_GROUPS):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(losses) + 2), 3.4))
    width = 0.8 / len(SIZE_GROUPS)
    x = np.arange(len(losses))
    for i, group in enumerate(SIZE_GROUPS):
        values = []
        for loss in losses:
            s = found.get((loss, "dice", "per_image", group))
            values.append(np.nan if s is None or s.mean is None else s.mean)
        ax.bar(x + (i - 1) * width, values, width, label=group)
    ax.set_xticks(x, losses, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Dice (per image)")
    ax.set_title(f"{model}: Dice by lesion-size tertile")
    ax.legend(fontsize="small")
    return _save(fig, path)


def qualitative_grid(table: ResultsTable, model: str, path: Path) -> Path | None:
    """Image, truth and each loss's prediction on the smallest-lesion test slices (first
    seed that has samples), from the runs' qualitative_test.npz."""
    samples = {}
    for seed in table.seeds:
        for loss in table.losses:
            run = table.run(model, loss, seed)
            file = run.folder / QUALITATIVE_FILE if run else None
            if file is not None and file.is_file() and loss not in samples:
                with np.load(file) as data:
                    samples[loss] = {k: data[k] for k in ("rows", "images", "truth", "pred")}
    if not samples:
        return None
    first = next(iter(samples.values()))
    rows = [int(r) for r in first["rows"][:MAX_QUALITATIVE_ROWS]]
    losses = list(samples)
    plt = _pyplot()
    cols = 2 + len(losses)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.4 * cols, 1.4 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        i = int(np.flatnonzero(first["rows"] == row)[0])
        image = np.asarray(first["images"][i], dtype=np.float32)
        panels = [("image", image[0] if image.ndim == 3 else image), ("truth", first["truth"][i])]
        for loss in losses:
            match = np.flatnonzero(samples[loss]["rows"] == row)
            pred = (
                samples[loss]["pred"][match[0]] if match.size else np.zeros_like(first["truth"][i])
            )
            panels.append((loss, pred))
        for c, (name, panel) in enumerate(panels):
            ax = axes[r, c]
            scale = {} if c == 0 else {"vmin": 0, "vmax": 1}  # masks: 0 black, 1 white
            ax.imshow(panel, cmap="gray", interpolation="nearest", **scale)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=7)
        axes[r, 0].set_ylabel(f"row {row}", fontsize=7)
    return _save(fig, path)
