"""The measured size of each difference between the project's presets and the authors' code
(docs/fidelity.md). Each part runs in seconds on a CPU:

    python -m benchmarks.fidelity areas   [--data ../shared/data/brats2015_subset]
    python -m benchmarks.fidelity numerics
    python -m benchmarks.fidelity baselines
    python -m benchmarks.fidelity models
    python -m benchmarks.fidelity metric  [--data ...]
    python -m benchmarks.fidelity split   [--data ...]
    python -m benchmarks.fidelity intensity [--data ...]

``areas``, ``metric`` and ``split`` prepare the BraTS subset into a temporary 256x256 cache
(``calf prepare``, patient-level split, seed 0) first.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "brats2015_subset"


def prepared_cache(data: Path, out: Path, size: int = 256) -> Path:
    """``calf prepare DATA --out OUT --size SIZE`` (the paper's modalities and
    normalisation)."""
    from calfseg.cli import main

    cache = out / "cache"
    argv = ["prepare", str(data), "--out", str(cache), "--no-progress", "--workers", "1"]
    argv += ["--size", str(size)]
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    if code != 0:
        raise SystemExit(f"calf prepare {data} failed (exit {code})")
    return cache


def areas(cache: Path) -> None:
    """Pixel counts vs the authors' contour areas: S, K and the rule's pick, over the train
    split, and per shuffled batch of 32 (what CALF('batch') decides on)."""
    from calfseg.data import SliceCache
    from calfseg.rule import select_branch
    from calfseg.stats import AreaMoments, foreground_areas

    arrays = SliceCache.open(cache)
    rows = arrays.rows("train")
    masks = torch.from_numpy(np.asarray(arrays.masks[rows]))
    by = {m: foreground_areas(masks, m).numpy() for m in ("pixels", "contour")}
    nonzero = by["pixels"] > 0
    rel = np.abs(by["contour"][nonzero] - by["pixels"][nonzero]) / by["pixels"][nonzero]
    print(f"train rows {rows.size}; tumour slices {int(nonzero.sum())}")
    print(
        f"contour/pixel area: median relative difference {np.median(rel):.3f}, max {rel.max():.3f}"
    )
    for method, values in by.items():
        moments = AreaMoments.from_areas(values)
        s, k = moments.skewness(), moments.kurtosis()
        print(f"{method:8s} whole split: S {s:+.4f} K {k:+.4f} -> {select_branch(s, k).branch}")
    order = np.random.default_rng(12345).permutation(rows.size)
    picks = {m: [] for m in by}
    for start in range(0, rows.size - 31, 32):
        batch = order[start : start + 32]
        for method, values in by.items():
            m = AreaMoments.from_areas(values[batch])
            picks[method].append(select_branch(m.skewness(), m.kurtosis()).branch)
    differ = np.mean([a != b for a, b in zip(picks["pixels"], picks["contour"], strict=True)])
    print(
        f"batches of 32 (one shuffled epoch): {len(picks['pixels'])}; pick differs in {differ:.1%}"
    )
    # sync=True on 4 ranks decides on the global batch of 128; sync=False on each rank's 32
    values = by["contour"]
    local, changed = 0, 0
    for start in range(0, rows.size - 127, 128):
        batch = order[start : start + 128]
        g = AreaMoments.from_areas(values[batch])
        pick = select_branch(g.skewness(), g.kurtosis()).branch
        for r in range(4):
            m = AreaMoments.from_areas(values[batch[r * 32 : (r + 1) * 32]])
            local += 1
            changed += select_branch(m.skewness(), m.kurtosis()).branch != pick
    print(f"4 ranks x 32: a rank's own pick differs from the global batch's in {changed}/{local}")


def intensity(data: Path) -> None:
    """The authors' 8-bit path (per-slice min-max to 0..255, truncated to uint8, OpenCV
    bilinear resize of the uint8 image) vs the cache's (per-slice min-max in float32,
    bilinear resize in float, then round(255 x)), on every FLAIR slice of the first case."""
    import cv2
    import nibabel as nib

    from calfseg.data.preprocess import normalise, resize_images, to_image_dtype

    case = sorted(p for p in data.iterdir() if p.is_dir())[0]
    volume = np.asarray(nib.load(case / "Flair_subtrMeanDivStd.nii.gz").dataobj, np.float32)
    ours = to_image_dtype(
        resize_images(normalise(volume, "paper").transpose(2, 0, 1)[:, None], 256), "uint8"
    )
    diffs = []
    for k in range(volume.shape[-1]):
        x = volume[..., k]
        span = x.max() - x.min()
        scaled = np.zeros_like(x) if span == 0 else (x - x.min()) / span * 255
        theirs = cv2.resize(scaled.astype(np.uint8), (256, 256), interpolation=cv2.INTER_LINEAR)
        diffs.append(np.abs(theirs.astype(np.int16) - ours[k, 0].astype(np.int16)))
    d = np.stack(diffs)
    print(
        f"{case.name} FLAIR, {d.shape[0]} slices: |ours - authors'| in 1/255 steps: mean "
        f"{d.mean():.3f}, max {d.max()}; pixels differing {np.mean(d > 0):.1%}"
    )


def numerics() -> None:
    """Bounded vs the authors' float32 numerics, per branch: values and gradients."""
    from calfseg.losses.branches import branch_loss
    from calfseg.rule import BRANCHES

    g = torch.Generator().manual_seed(0)
    for scale in (3.0, 20.0):
        z = scale * torch.randn(4096, generator=g)
        y = (torch.rand(4096, generator=g) > 0.7).float()
        for branch in BRANCHES:
            out = {}
            for mode in ("bounded", "paper"):
                zz = z.clone().requires_grad_(True)
                terms = branch_loss(branch, zz, y, numerics=mode, reduction="none")
                (grad,) = torch.autograd.grad(terms.sum(), zz)
                out[mode] = (terms.detach(), grad)
            dv = (out["bounded"][0] - out["paper"][0]).abs().max().item()
            dg = (out["bounded"][1] - out["paper"][1]).abs().max().item()
            print(
                f"logit sd {scale:>4}: {branch:8s} max |value diff| {dv:.3g}  |grad diff| {dg:.3g}"
            )


def baselines() -> None:
    """Per-image vs batch Tversky on a batch with tumour-free slices; Focal with and
    without the authors' clamp at logit scale 20."""
    from calfseg.losses import build_loss

    g = torch.Generator().manual_seed(0)
    y = torch.zeros(8, 1, 32, 32)
    y[:4, :, 8:20, 8:20] = 1  # four slices with a lesion, four tumour-free
    z = (2 * y - 1) * 2 + torch.randn(8, 1, 32, 32, generator=g)
    for per_image in (True, False):
        zz = z.clone().requires_grad_(True)
        loss = build_loss("tversky", per_image=per_image)(zz, y)
        loss.backward()
        assert zz.grad is not None
        empty = zz.grad[4:].abs().max().item()
        print(
            f"tversky per_image={per_image}: loss {loss.item():.4f}, "
            f"max |grad| on empty {empty:.3g}"
        )
    z2 = 20 * torch.randn(8, 1, 64, 64, generator=g)  # logits of sd 20
    y2 = (torch.rand(8, 1, 64, 64, generator=g) > 0.7).float()
    for eps in (1e-6, None):
        value = build_loss("focal", eps=eps)(z2, y2).item()
        print(f"focal eps={eps}: mean loss on random logits of sd 20: {value:.4f}")
    focal_float32()


def focal_float32() -> None:
    """The authors' focal in float32 against the same formula in float64, on the same
    logits (20 seeds per scale, 8 x 64 x 64, 20 % positives): in float32 the clamp's
    1 - 1e-6 rounds to 1 - 9.54e-7, so a clamped negative pixel's BCE is 13.863, not 13.816."""
    from calfseg.losses import build_loss

    focal = build_loss("focal")
    for scale in (1.0, 5.0, 10.0, 14.0, 20.0, 40.0):
        worst = 0.0
        for seed in range(20):
            g = torch.Generator().manual_seed(seed)
            z = torch.randn(8, 1, 64, 64, generator=g) * scale
            y = (torch.rand(8, 1, 64, 64, generator=g) < 0.2).float()
            single, double = focal(z, y).item(), focal(z.double(), y.double()).item()
            worst = max(worst, abs(single - double) / double)
        print(f"focal float32 vs float64, logits of sd {scale:g}: max relative diff {worst:.2e}")


def models() -> None:
    """Parameter counts of the authors' models and of the project's smp 'paper' presets."""
    from calfseg.models import build_model, count_parameters

    for name in ("unet", "deeplabv3", "fpn"):
        counts = {p: count_parameters(build_model(name, preset=p)) for p in ("authors", "paper")}
        print(
            f"{name:9s} authors {counts['authors']:>12,}  smp paper preset {counts['paper']:>12,}"
        )


def metric(cache: Path) -> None:
    """The paper's batch-pooled Dice in cache order vs over 10 shuffled orders, on the
    cache's patient-level test split and on all rows, for a simulated imperfect model:
    each tumour pixel found with probability 0.8, and false alarms (a 10x10 square) on 0 %
    or 10 % of the tumour-free slices."""
    from calfseg.data import SliceCache
    from calfseg.metrics import confusion_counts, pooled, pooled_by_batch
    from calfseg.metrics.scores import paper_batch_pooled

    arrays = SliceCache.open(cache)
    for split, alarms in (("test", 0.0), ("test", 0.1), (None, 0.0), (None, 0.1)):
        rows = arrays.rows(split)
        truth = torch.from_numpy(np.asarray(arrays.masks[rows])).bool()
        g = torch.Generator().manual_seed(0)
        pred = truth & (torch.rand(truth.shape, generator=g) < 0.8)
        alarm = (truth.flatten(1).sum(1) == 0) & (torch.rand(len(rows), generator=g) < alarms)
        pred[alarm, 100:110, 100:110] = True
        counts = confusion_counts(pred.unsqueeze(1).float() * 2 - 1, truth.unsqueeze(1).float())
        in_order = pooled_by_batch(counts, "dice", 32).value
        shuffled = paper_batch_pooled(counts, "dice", 32)
        name = f"{split or 'all rows'}, false alarms on {alarms:.0%} of empty slices"
        print(
            f"{name}: {len(rows)} slices; in cache order {in_order:.4f}; shuffled (10 orders) "
            f"{shuffled.value:.4f} (sd {shuffled.sd:.4f}, {shuffled.min:.4f}..{shuffled.max:.4f}); "
            f"pooled {pooled(counts, 'dice').value:.4f}"
        )


def split(cache: Path) -> None:
    """Patient-level vs the paper's slice-level split: how many test slices have a
    neighbouring slice (same case and modality, slice index +-1) in the training split."""
    from calfseg.data import SliceCache
    from calfseg.data.splits.assign import LeakageWarning, paper_slice_splits

    index = SliceCache.open(cache).index
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakageWarning)
        paper = paper_slice_splits(index, seed=12345)
    for name, column in (("patient-level (cache)", index["split"]), ("paper-slices", paper)):
        key = {
            (c, m, int(s)): str(p)
            for c, m, s, p in zip(
                index["case_id"], index["modality"], index["slice_index"], column, strict=True
            )
        }
        test = [k for k, p in key.items() if p == "test"]
        near = sum(any(key.get((c, m, s + d)) == "train" for d in (-1, 1)) for c, m, s in test)
        patients = {c for c, _, _ in test}
        in_train = {c for (c, _, _), p in key.items() if p == "train"}
        print(
            f"{name}: test slices {len(test)}; with a neighbour in train {near / len(test):.1%}; "
            f"test patients also in train {len(patients & in_train)}/{len(patients)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "part",
        choices=("areas", "numerics", "baselines", "models", "metric", "split", "intensity"),
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part in ("numerics", "baselines", "models"):
        globals()[args.part]()
        return
    if args.part == "intensity":
        intensity(args.data)
        return
    with tempfile.TemporaryDirectory() as tmp:
        globals()[args.part](prepared_cache(args.data, Path(tmp)))


if __name__ == "__main__":
    main()
