"""HD95 and ASSD of calf-seg against medpy 0.5.2 on the BraTS subset (docs/metrics.md,
*HD95 and ASSD*); medpy is installed with the dev extras:

    python -m benchmarks.distances [--data ../shared/data/brats2015_subset]

1. **Per case, in 3D** (``calfseg.metrics.volume_distances``, what per_case.csv reports):
   every case of a cache of ``calf prepare`` at 256x256 (0.9375 x 0.9375 x 1 mm voxels) and
   at 48x48 (5 x 5 x 1 mm), its slices stacked at their positions; the "prediction" is the
   truth dilated by 2 voxels in 3D with a stray 3x3x3 blob in the volume's far corner.
   Against medpy's directed surface distances combined by the definition calf-seg names
   (the larger directed 95th percentile; the mean over both directions), which must agree
   to 1e-4 mm; medpy's own ``hd95`` (the 95th percentile of the union) for comparison.
   Then the same through evaluation (``evaluate_model``, what ``calf evaluate`` and every
   training run write to per_case_<split>.csv) on the 48x48 cache, every split, with a
   stand-in model that predicts where the first channel is above 0.5, against medpy on
   each case's slices stacked here by hand.
2. **Per slice** (``calfseg.metrics.surface_distances``): every test-split slice with a
   lesion at 256x256, the truth dilated by 2 pixels, and on every third slice a stray 3x3
   blob: how far the definitions apart move the numbers.
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
        caches = {s: prepared_cache(args.data, Path(tmp) / str(s), s) for s in (256, 48)}
        for path in caches.values():
            volumes(path, binary)
        through_evaluation(caches[48], binary)
        cache = SliceCache.open(caches[256])
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


def volumes(path: Path, binary: object) -> None:
    """Part 1 of the module docstring, for the cache at ``path``."""
    from calfseg.data import SliceCache
    from calfseg.metrics import case_volume, volume_distances

    cache = SliceCache.open(path)
    index = cache.index
    directed = getattr(binary, "__surface_distances")
    gaps = {"hd95_mm": 0.0, "assd_mm": 0.0}
    lines = []
    first_modality = index["modality"] == index["modality"][0]
    for case in np.unique(index["case_id"]):
        rows = np.flatnonzero((index["case_id"] == case) & first_modality)
        masks = np.asarray(cache.masks[rows])
        truth = case_volume((masks[:, 0] if masks.ndim == 4 else masks) > 0,
                            index["slice_index"][rows])  # fmt: skip
        pred = ndimage.binary_dilation(truth, iterations=2)
        pred[-4:-1, -4:-1, -4:-1] = True
        mm = tuple(float(index[f"spacing_{a}"][rows[0]]) for a in "xyz")
        ours = volume_distances(pred, truth, mm)
        d_pt, d_tp = directed(pred, truth, mm, 1), directed(truth, pred, mm, 1)
        ref = {
            "hd95_mm": max(np.percentile(d_pt, 95), np.percentile(d_tp, 95)),
            "assd_mm": binary.assd(pred, truth, mm),  # type: ignore[attr-defined]
        }
        for m in gaps:
            gaps[m] = max(gaps[m], abs(ours[m] - ref[m]))
        union = binary.hd95(pred, truth, mm)  # type: ignore[attr-defined]
        lines.append(
            f"  {case}: {truth.shape} voxels of {mm[0]:.4g} x {mm[1]:.4g} x {mm[2]:.4g} mm, "
            f"HD95 {ours['hd95_mm']:.3f} mm (medpy's union q95 {union:.3f}), "
            f"ASSD {ours['assd_mm']:.4f} mm"
        )
    print(f"per case in 3D, {cache.meta['size'][0]}x{cache.meta['size'][1]}:")
    print("\n".join(lines))
    print(
        f"  largest difference to medpy by the named definition: HD95 {gaps['hd95_mm']:.2g} mm, "
        f"ASSD {gaps['assd_mm']:.2g} mm ({'within' if max(gaps.values()) <= 1e-4 else 'OVER'} "
        "1e-4 mm)"
    )


def through_evaluation(path: Path, binary: object) -> None:
    """Part 1's check of per_case rows written by evaluation (module docstring)."""
    from calfseg.data import SliceDataset
    from calfseg.train.evaluate import evaluate_model

    class Bright(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return images[:, :1] - 0.5

    dataset = SliceDataset(path, split=None)
    _, _, _, cases = evaluate_model(Bright(), dataset, batch_size=64, surface=True)
    index, directed = dataset.index, getattr(binary, "__surface_distances")
    gaps = {"hd95_mm": 0.0, "assd_mm": 0.0}
    for row in cases:
        parts = []
        for modality in np.unique(index["modality"]):
            rows = np.flatnonzero(
                (dataset.case_ids == row["case_id"]) & (index["modality"] == modality)
            )
            if not rows.size:
                continue
            k = index["slice_index"][rows]
            pred = np.zeros((*dataset.meta["size"], k.max() - k.min() + 1), bool)
            truth = pred.copy()
            for i, depth in zip(rows, k - k.min(), strict=True):
                image, mask = dataset[int(i)]
                pred[..., depth], truth[..., depth] = image[0].numpy() > 0.5, mask[0].numpy() > 0
            mm = tuple(float(index[f"spacing_{a}"][rows[0]]) for a in "xyz")
            d_pt, d_tp = directed(pred, truth, mm, 1), directed(truth, pred, mm, 1)
            parts.append(
                {
                    "hd95_mm": max(np.percentile(d_pt, 95), np.percentile(d_tp, 95)),
                    "assd_mm": binary.assd(pred, truth, mm),  # type: ignore[attr-defined]
                }
            )
        for m in gaps:
            gaps[m] = max(gaps[m], abs(row[m] - float(np.mean([p[m] for p in parts]))))
    print(
        f"through evaluation ({len(cases)} cases, {len(dataset)} rows of "
        f"{', '.join(np.unique(index['modality']))}): per_case rows against medpy, largest "
        f"difference HD95 {gaps['hd95_mm']:.2g} mm, ASSD {gaps['assd_mm']:.2g} mm"
    )


if __name__ == "__main__":
    main()
