"""Masks with chosen areas, one set per row of the rule (shared by the loss tests)."""

from __future__ import annotations

import torch

# Area vectors (pixels per mask) that put a batch in each row of CALF's rule.
AREAS_FOR = {
    "fisher": [100] * 9 + [0],  # S = -2.67
    "logit": [100, 100, 100, 90, 80, 70, 60, 40, 10],  # S = -0.90
    "arcsine": [100, 90, 80, 70, 60, 50, 40, 30, 20, 0, 95, 85],  # S = -0.45
    "log10": [0] * 9 + [100],  # S = +2.67
    "ln": [0, 0, 10, 20, 30, 40, 60, 100],  # S = +0.95
    "log10 (platykurtic)": [0, 10, 20, 30, 40, 50, 60, 100, 100],  # S = +0.47, K = -1.01
    "bce_dice": [0, 50, 100],  # S = 0
}


def masks_with_areas(areas: list[int], side: int = 12) -> torch.Tensor:
    """(B, 1, side, side) float masks; mask i has exactly areas[i] foreground pixels."""
    flat = torch.zeros(len(areas), side * side)
    for i, a in enumerate(areas):
        flat[i, :a] = 1.0
    perm = torch.randperm(side * side, generator=torch.Generator().manual_seed(0))
    return flat[:, perm].reshape(len(areas), 1, side, side)
