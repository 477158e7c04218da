"""Speed of measuring foreground areas: pixel counts + moment update vs the authors' OpenCV
contour loop, on the same bool masks of blob-shaped lesions.

    python benchmarks/bench_areas.py [--masks 10000 --size 256 --repeats 5]

Target (issue 2): ``foreground_areas(method="pixels")`` plus ``AreaMoments.update`` at least
10x faster than the contour loop. Also prints a plain ``torch.sum`` over the bool masks and
a memory-bandwidth bound (one read of every byte, measured as ``torch.Tensor.clone``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from calfseg.extras import require
from calfseg.stats import AreaMoments, foreground_areas
from common import median_seconds


def blob_masks(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, size, size) bool: a disc per mask, radius 0 to size/4, 45 % of masks empty."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.arange(size, dtype=torch.float32)
    out = torch.empty(n, size, size, dtype=torch.bool)
    for start in range(0, n, 500):
        k = min(500, n - start)
        centre = torch.rand(k, 2, generator=g) * size
        radius = torch.rand(k, generator=g) ** 2 * size / 4
        radius[torch.rand(k, generator=g) < 0.45] = 0
        dy = (coords.view(1, -1, 1) - centre[:, 0].view(-1, 1, 1)) ** 2
        dx = (coords.view(1, 1, -1) - centre[:, 1].view(-1, 1, 1)) ** 2
        out[start : start + k] = dy + dx < radius.view(-1, 1, 1) ** 2
    return out


def contour_loop(masks_u8: np.ndarray) -> list[float]:
    """The authors' measurement: findContours + sum of contourArea, one mask at a time."""
    cv2 = require("cv2", "the contour baseline")
    areas = []
    for mask in masks_u8:
        contours, _ = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        areas.append(sum(cv2.contourArea(c) for c in contours))
    return areas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--masks", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    masks = blob_masks(args.masks, args.size)
    masks_u8 = masks.numpy().astype(np.uint8) * 255
    n = args.masks
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {n} bool masks of "
        f"{args.size}x{args.size} ({masks.numel() / 1e6:.0f} MB), median of {args.repeats}"
    )

    def pixels_and_moments() -> AreaMoments:
        return AreaMoments().update(foreground_areas(masks))

    t_contour = median_seconds(lambda: contour_loop(masks_u8), repeats=1, warmup=0)
    t_fast = median_seconds(pixels_and_moments, repeats=args.repeats, warmup=1)
    t_sum = median_seconds(lambda: masks.sum(dim=(1, 2)), repeats=args.repeats, warmup=1)
    t_copy = median_seconds(masks.clone, repeats=args.repeats, warmup=1)
    check = foreground_areas(masks)
    assert torch.equal(check, masks.sum(dim=(1, 2)).double()), "fast count disagrees with sum"
    rows = [
        ("contour loop (authors, OpenCV)", t_contour),
        ("torch bool sum", t_sum),
        ("foreground_areas + AreaMoments", t_fast),
        ("bandwidth bound (clone)", t_copy),
    ]
    for name, t in rows:
        print(f"{name:<34}{n / t:>12,.0f} masks/s  {t_contour / t:>8.1f}x the contour loop")
    print(f"pixels path vs contour loop: {t_contour / t_fast:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
