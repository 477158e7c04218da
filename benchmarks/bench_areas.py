"""Speed of measuring foreground areas: pixel counts + moment update vs the authors' OpenCV
contour loop, on the same bool masks of blob-shaped lesions.

    python -m benchmarks.bench_areas [--masks 10000 --size 256 --repeats 5 --real DIR]

Target (issue 2): ``foreground_areas(method="pixels")`` plus ``AreaMoments.update`` at least
10x faster than the contour loop. Also prints a plain ``torch.sum`` over the bool masks and
a memory-bandwidth bound (one read of every byte: an int64 sum over the same bytes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import median_seconds
from calfseg.extras import require
from calfseg.stats import AreaMoments, foreground_areas


def lesion_masks(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, size, size) bool masks shaped like tumour slices, 52 % of them empty (as in the
    BraTS subset): a lesion whose radius is modulated by random harmonics (ragged border),
    with up to three small satellite blobs. On the real BraTS masks OpenCV's loop runs at a
    similar rate (``--real``)."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.arange(size, dtype=torch.float32)
    out = torch.zeros(n, size, size, dtype=torch.bool)
    for start in range(0, n, 250):
        k = min(250, n - start)
        centre = size / 4 + torch.rand(k, 2, generator=g) * size / 2
        base = 3 + torch.rand(k, generator=g) ** 1.5 * size / 5
        dy = coords.view(1, -1, 1) - centre[:, 0].view(-1, 1, 1)
        dx = coords.view(1, 1, -1) - centre[:, 1].view(-1, 1, 1)
        angle = torch.atan2(dy, dx)
        radius = torch.ones(k, size, size)
        for harmonic in range(2, 8):
            amp = torch.rand(k, 1, 1, generator=g) * 0.25 / harmonic**0.5
            phase = torch.rand(k, 1, 1, generator=g) * 6.283
            radius += amp * torch.sin(harmonic * angle + phase)
        lesion = dy**2 + dx**2 < (base.view(-1, 1, 1) * radius) ** 2
        for _ in range(3):
            offset = (torch.rand(k, 2, generator=g) - 0.5) * base.view(-1, 1) * 4
            r = torch.rand(k, generator=g) * 4 * (torch.rand(k, generator=g) < 0.5)
            sy = dy - offset[:, 0].view(-1, 1, 1)
            sx = dx - offset[:, 1].view(-1, 1, 1)
            lesion |= sy**2 + sx**2 < r.view(-1, 1, 1) ** 2
        lesion[torch.rand(k, generator=g) < 0.52] = False
        out[start : start + k] = lesion
    return out


def real_masks(folder: Path, n: int, size: int) -> torch.Tensor:
    """Axial slices of every ``OTMultiClass*.nii*`` under ``folder`` (label > 0), padded or
    cropped to size x size, repeated with flips up to n masks."""
    nib = require("nibabel", "--real")
    slices = []
    for path in sorted(folder.rglob("OTMultiClass*.nii*")):
        volume = np.asanyarray(nib.load(path).dataobj) > 0
        slices.append(np.moveaxis(volume, -1, 0))
    stack = torch.from_numpy(np.concatenate(slices))
    canvas = torch.zeros(stack.shape[0], size, size, dtype=torch.bool)
    h, w = min(size, stack.shape[1]), min(size, stack.shape[2])
    canvas[:, :h, :w] = stack[:, :h, :w]
    copies = [canvas, canvas.flip(1), canvas.flip(2), canvas.flip(1, 2)]
    reps = -(-n // (4 * canvas.shape[0]))
    return torch.cat(copies * reps)[:n].contiguous()


def contour_loop(masks: torch.Tensor) -> list[float]:
    """The authors' measurement, one mask at a time: to a uint8 0/255 array, findContours
    (RETR_TREE, CHAIN_APPROX_SIMPLE), sum of contourArea."""
    cv2 = require("cv2", "the contour baseline")
    areas = []
    for mask in masks:
        image = (mask.numpy() * 255).astype(np.uint8)
        contours, _ = cv2.findContours(image, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        areas.append(sum(cv2.contourArea(c) for c in contours))
    return areas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--masks", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--real",
        type=Path,
        default=None,
        help="use the OTMultiClass masks of a BraTS 2015 folder, e.g. "
        "../shared/data/brats2015_subset",
    )
    args = parser.parse_args()

    if args.real is not None:
        masks = real_masks(args.real, args.masks, args.size)
    else:
        masks = lesion_masks(args.masks, args.size)
    n = args.masks
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {n} bool masks of "
        f"{'real BraTS' if args.real else 'synthetic'} lesions, "
        f"{args.size}x{args.size} ({masks.numel() / 1e6:.0f} MB), median of {args.repeats}"
    )

    def pixels_and_moments() -> AreaMoments:
        return AreaMoments().update(foreground_areas(masks))

    t_contour = median_seconds(lambda: contour_loop(masks), repeats=1, warmup=0)
    t_fast = median_seconds(pixels_and_moments, repeats=args.repeats, warmup=1)
    t_sum = median_seconds(lambda: masks.sum(dim=(1, 2)), repeats=args.repeats, warmup=1)
    words = masks.view(torch.uint8).view(torch.int64)
    t_read = median_seconds(words.sum, repeats=args.repeats, warmup=1)
    check = foreground_areas(masks)
    assert torch.equal(check, masks.sum(dim=(1, 2)).double()), "fast count disagrees with sum"
    rows = [
        ("contour loop (authors, OpenCV)", t_contour),
        ("torch bool sum", t_sum),
        ("foreground_areas + AreaMoments", t_fast),
        ("bandwidth bound (one read)", t_read),
    ]
    for name, t in rows:
        print(f"{name:<34}{n / t:>12,.0f} masks/s  {t_contour / t:>8.1f}x the contour loop")
    print(f"pixels path vs contour loop: {t_contour / t_fast:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
