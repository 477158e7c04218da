"""The report's figures, drawn with matplotlib's Agg backend into PNG files: the forest
plot of the verdicts (all models), and per model the learning curves and the qualitative
examples.

Each function returns its path, or None when there is nothing to draw (no verdicts, no
logs, no qualitative samples)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import calfseg.run_files as files
from calfseg.atomic import atomic_write_bytes
from calfseg.bench.collect import ResultsTable
from calfseg.bench.stats import Verdict
from calfseg.extras import require

SIZE_GROUPS = ("small", "medium", "large")
MAX_QUALITATIVE_ROWS = 6


def _pyplot() -> Any:
    matplotlib = require("matplotlib", "the benchmark report's figures")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "the benchmark report's figures")


def _save(fig: Any, path: Path, *, tight: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=90)
    _pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())  # a killed report leaves no torn figure
    return path


VERDICT_COLOURS = {
    "better": "#1a7f37",
    "worse": "#c62828",
    "equivalent": "#1f5fa8",
    "inconclusive": "#b26a00",
}
VAL_COLUMNS = ("val_case_dice", "val_dice")  # the first a run's log.csv has is drawn


def forest_plot(verdicts: Sequence[Verdict], margin: float, path: Path) -> Path | None:
    """Each loss's mean paired per-case Dice difference to the baseline with its 95 % CI,
    one panel per model, the equivalence band ``[-margin, margin]`` shaded, coloured by
    verdict; None without verdicts."""
    models = list(dict.fromkeys(v.model for v in verdicts))
    if not models:
        return None
    plt = _pyplot()
    heights = [max(1, sum(v.model == m for v in verdicts)) for m in models]
    fig, axes = plt.subplots(
        len(models), 1, figsize=(8.0, 0.9 + 0.42 * sum(heights) + 0.55 * len(models)),
        sharex=True, squeeze=False, gridspec_kw={"height_ratios": heights},
    )  # fmt: skip
    ends = [abs(x) for v in verdicts for x in (v.ci_low, v.ci_high, v.mean_diff) if x is not None]
    reach = max([margin * 2, *ends]) * 1.15 or 0.05
    for ax, model in zip(axes[:, 0], models, strict=True):
        rows = [v for v in verdicts if v.model == model][::-1]  # first loss on top
        ax.axvspan(-margin, margin, color="#d9d9d9", alpha=0.7, lw=0)
        ax.axvline(0.0, color="#444", lw=0.8)
        for y, v in enumerate(rows):
            colour = VERDICT_COLOURS.get(v.verdict, "#555")
            if v.ci_low is not None and v.ci_high is not None:
                ax.plot([v.ci_low, v.ci_high], [y, y], color=colour, lw=2.2)
            if v.mean_diff is not None:
                ax.plot([v.mean_diff], [y], "o", color=colour, ms=6)
            ax.annotate(
                f"{v.verdict} (n={v.n_units})", (1.01, y), xycoords=("axes fraction", "data"),
                va="center", fontsize=8, color=colour,
            )  # fmt: skip
        ax.set_yticks(range(len(rows)), [v.loss for v in rows])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_title(model, loc="left", fontsize=10, fontweight="bold")
        ax.set_xlim(-reach, reach)
        ax.grid(axis="x", color="#eee")
    base = verdicts[0].baseline.upper()
    axes[-1, 0].set_xlabel(
        f"per-case Dice, loss minus {base}: mean over cases and 95 % interval\n"
        f"grey band: the ±{margin:g} equivalence margin"
    )
    fig.tight_layout(rect=(0.0, 0.0, 0.82, 1.0))  # room on the right for the verdicts
    return _save(fig, path, tight=False)


def learning_curves(table: ResultsTable, model: str, path: Path) -> Path | None:
    """Validation per-case Dice (``val_case_dice``, else the older per-image ``val_dice``)
    per epoch: each run a thin line, and per loss a thick line, the mean over all its runs
    of the score of the model each run keeps (its best so far; a run that stopped keeps its
    best.pt). A plain mean over the runs still training would fall when the good runs stop
    early, which says nothing about the losses."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    drawn, names = False, set[str]()
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, loss in enumerate(table.losses):
        colour = colours[index % len(colours)]
        curves = []
        for run in table.runs:
            if (run.model, run.loss) != (model, loss):
                continue
            curve = _validation_curve(table.logs.get(run.name, []), names)
            if curve:
                epochs = sorted(curve)
                ax.plot(epochs, [curve[e] for e in epochs], color=colour, lw=0.6, alpha=0.3)
                curves.append(curve)
        if curves:
            grid = sorted({e for curve in curves for e in curve})
            kept = np.array([_best_so_far(curve, grid) for curve in curves])
            ax.plot(grid, np.nanmean(kept, axis=0), color=colour, lw=2.2,
                    label=f"{loss} ({len(curves)} runs)")  # fmt: skip
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ticker = require("matplotlib.ticker", "the benchmark report's figures")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    per_case = "val_case_dice" in names
    ax.set_ylabel("validation Dice (per case)" if per_case else "validation Dice (per image)")
    ax.set_title(f"{model}: thin: each run; thick: mean of the best so far", fontsize=9)
    ax.legend(fontsize="small", ncol=2)
    return _save(fig, path)


def _best_so_far(curve: dict[int, float], grid: list[int]) -> list[float]:
    """At each epoch of ``grid``, the best score of ``curve`` up to it (NaN before its
    first validation); after the run's last epoch, its best: the model it keeps."""
    best, out = float("nan"), []
    for epoch in grid:
        if epoch in curve:
            best = curve[epoch] if np.isnan(best) else max(best, curve[epoch])
        out.append(best)
    return out


def _validation_curve(log: list[dict[str, Any]], names: set[str]) -> dict[int, float]:
    """Epoch -> validation score of one run's log.csv (the first of :data:`VAL_COLUMNS`
    it has); ``names`` collects the column used."""
    column = next((c for c in VAL_COLUMNS if any(c in row for row in log)), None)
    if column is None:
        return {}
    names.add(column)
    curve = {}
    for row in log:
        epoch, value = row.get("epoch"), row.get(column)
        if isinstance(epoch, (int, float)) and isinstance(value, (int, float)):
            curve[int(epoch)] = float(value)
    return curve


def qualitative_grid(table: ResultsTable, model: str, path: Path) -> Path | None:
    """Image, truth and each loss's prediction on the smallest-lesion test slices (first
    seed that has samples), from the runs' qualitative_test.npz."""
    samples = {}
    for seed in table.seeds:
        for loss in table.losses:
            run = table.run(model, loss, seed)
            file = run.folder / files.qualitative_examples(files.TEST_SPLIT) if run else None
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
