"""Per-slice HD95 and ASSD of calf-seg (``calfseg.metrics.surface_distances``, MONAI's
surfaces) against medpy 0.5.2 on the same slice pairs of the BraTS subset (docs/metrics.md,
*HD95 and ASSD*). Measures how far the definitions apart move the numbers; needs
``pip install medpy``:

    python -m benchmarks.distances [--data ../shared/data/brats2015_subset]

The truth is every test-split slice with a lesion (a 256x256 cache of ``calf prepare``);
the "prediction" is the truth dilated by 2 pixels, and on every third slice also a stray
3x3 blob in the image's far corner (a false-positive component, common in real outputs).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from benchmarks.fidelity import DEFAULT_DATA, prepared_cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    try:
        from medpy.metric import binary
    except ImportError:
        raise SystemExit("this comparison needs medpy: pip install medpy") from None
    from calfseg.data import SliceCache
    from calfseg.metrics import surface_distances

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        cache = SliceCache.open(prepared_cache(args.data, Path(tmp)))
        rows = cache.rows("test")
        rows = rows[cache.index["area"][rows] > 0]
        masks = np.asarray(cache.masks[rows])
        truth = (masks[:, 0] if masks.ndim == 4 else masks) > 0
        spacing = np.stack([cache.index["spacing_x"][rows], cache.index["spacing_y"][rows]], 1)
    pred = np.stack([ndimage.binary_dilation(t, iterations=2) for t in truth])
    pred[::3, -4:-1, -4:-1] = True  # a stray blob on every third slice
    ours = surface_distances(torch.from_numpy(pred), torch.from_numpy(truth), spacing)
    pairs = list(zip(pred, truth, spacing, strict=True))
    hd_medpy = np.array([binary.hd95(p, t, s) for p, t, s in pairs])
    assd_medpy = np.array([binary.assd(p, t, s) for p, t, s in pairs])
    for name, mine, theirs, how in (
        ("hd95", ours.hd95, hd_medpy, "max of the two directed 95th percentiles; medpy: "
         "the 95th percentile of their union"),
        ("assd", ours.assd, assd_medpy, "the mean over the union of both directions, as medpy"),
    ):  # fmt: skip
        ratio = mine / theirs
        print(
            f"{name} ({how}), {len(rows)} slices: mean {mine.mean():.2f} mm here, "
            f"{theirs.mean():.2f} mm medpy; per slice here/medpy median {np.median(ratio):.2f}, "
            f"max {ratio.max():.1f} (largest gap {np.abs(mine - theirs).max():.2g} mm)"
        )
    plain = slice(1, None, 3)  # slices without the blob
    print(
        f"without the blob ({len(truth[plain])} slices): hd95 here/medpy max "
        f"{(ours.hd95[plain] / hd_medpy[plain]).max():.3f}, assd max "
        f"{(ours.assd[plain] / assd_medpy[plain]).max():.3f}"
    )


if __name__ == "__main__":
    main()
