"""The figure of a fingerprint: the histogram of its areas with n, S, K and the branch on it
(matplotlib, drawn off-screen with the Agg backend).

matplotlib is an optional dependency (the ``plot`` extra); it is imported on first use and
``pyplot`` is never imported, so drawing leaves the global backend alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from calfseg.errors import OptionError
from calfseg.extras import require
from calfseg.fingerprint.format import Fingerprint
from calfseg.fingerprint.text import signed

_MAX_BINS = 100


def plot_area_histogram(
    fingerprint: Fingerprint,
    out_path: str | os.PathLike[str],
    *,
    areas: np.ndarray | Sequence[float] | None = None,
    title: str | None = None,
    xlabel: str = "foreground area (pixels)",
) -> Path:
    """Draw the histogram of the fingerprint's areas (or of ``areas``) with n, S, K and the
    picked branch written on it, and save it to ``out_path`` (format from the suffix, e.g.
    ``.png``). A fingerprint read from a file holds no areas: pass them, or it is an error."""
    if areas is None:
        areas = fingerprint.areas
    if areas is None:
        raise OptionError(
            "this fingerprint holds only moments (it was read from a file), not the areas a "
            "histogram needs: pass areas=..., or compute it with calfseg.analyze(MASKS)"
        )
    figure_module = require("matplotlib.figure", "--plot")
    agg = require("matplotlib.backends.backend_agg", "--plot")
    values = np.asarray(areas, dtype=np.float64).ravel()

    fig = figure_module.Figure(figsize=(7.0, 4.5), dpi=100, layout="constrained")
    agg.FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if values.size:
        edges = np.histogram_bin_edges(values, bins="auto")
        bins = edges if edges.size - 1 <= _MAX_BINS else _MAX_BINS
        ax.hist(values, bins=bins, color="#4c72b0", edgecolor="white", linewidth=0.3)
    else:
        ax.text(0.5, 0.5, "no areas", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    if title:
        ax.set_title(title, fontsize=10)
    ax.text(
        0.98,
        0.97,
        _caption(fingerprint),
        transform=ax.transAxes,
        ha="right",
        va="top",
        multialignment="left",
        fontsize=9,
        family="monospace",
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"},
    )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def _caption(fingerprint: Fingerprint) -> str:
    lines = [f"n = {fingerprint.count}"]
    summary = fingerprint.summary
    if summary is not None:
        kept = "excluded" if summary.excluded_empty else "counted as 0"
        lines.append(f"empty = {summary.empty_fraction:.1%} ({kept})")
    lines += [
        f"S = {signed(fingerprint.skewness)}",
        f"K = {signed(fingerprint.kurtosis)}",
        f"branch: {fingerprint.branch} ({fingerprint.condition})",
    ]
    return "\n".join(lines)
