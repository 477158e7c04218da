"""Speed of CALF's losses against BCEWithLogitsLoss, forward + backward, on one CPU batch.

Prints, for each branch, the time of CALFLoss in dataset mode (fixed branch) and in batch
mode (areas, moments and rule recomputed per call) as a ratio to BCEWithLogitsLoss measured
in the same run, plus the naive sigmoid-clamp-log versions for comparison.

    python benchmarks/bench_losses.py [--batch 32 --size 256 --repeats 15 --threads N]

Targets (issue 2): dataset mode <= 1.5x BCE for every branch (ln and log10 <= 1.1x); batch
mode adds <= 0.3x on top of dataset mode.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from calfseg.losses import CALFLoss
from calfseg.rule import BRANCHES
from common import median_seconds

# Area vectors whose statistics select each branch (pixels), scaled into the batch below.
_BRANCH_SKEW = {
    "fisher": [1.0] * 7 + [0.0],
    "logit": [1.0, 1.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.4, 0.1],
    "arcsine": [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.0, 0.95, 0.85],
    "log10": [0.0] * 7 + [1.0],
    "ln": [0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 1.0],
    "bce_dice": [0.0, 0.5, 1.0],
}


def target_for(branch: str, batch: int, size: int) -> torch.Tensor:
    """A (batch, 1, size, size) float mask whose per-sample areas select ``branch``."""
    fractions = _BRANCH_SKEW[branch]
    fractions = [fractions[i % len(fractions)] for i in range(batch)]
    if branch == "bce_dice":  # keep it exactly symmetric: S = 0
        fractions = [0.0, 0.5, 1.0] * (batch // 3) + [0.5] * (batch % 3)
    mask = torch.zeros(batch, size * size)
    for i, f in enumerate(fractions):
        mask[i, : int(f * 0.3 * size * size)] = 1.0
    return mask.reshape(batch, 1, size, size)


def time_loss(
    loss_fn: nn.Module, logits: torch.Tensor, target: torch.Tensor, repeats: int
) -> float:
    z = logits.clone().requires_grad_(True)

    def step() -> None:
        z.grad = None
        loss_fn(z, target).backward()

    return median_seconds(step, repeats=repeats)


def naive_ln(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(z).clamp(1e-7, 1 - 1e-7)
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


def naive_fisher(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(z).clamp(1e-7, 1 - 1e-7)
    return -(y * torch.atanh(p) + (1 - y) * torch.atanh(1 - p)).mean()


class _Fn(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fn(z, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(args.batch, 1, args.size, args.size, generator=g) * 4).to(device)

    def sync_time(fn, y):
        t = time_loss(fn, logits, y, args.repeats)
        return t

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, device {device}, "
        f"logits {tuple(logits.shape)} float32, forward+backward, median of {args.repeats}"
    )
    bce_target = target_for("ln", args.batch, args.size).to(device)
    base = sync_time(nn.BCEWithLogitsLoss(), bce_target)
    print(f"BCEWithLogitsLoss: {base * 1e3:.2f} ms (= 1.00x)")
    print(f"naive clamp ln:     {sync_time(_Fn(naive_ln), bce_target) / base:.2f}x")
    print(f"naive clamp fisher: {sync_time(_Fn(naive_fisher), bce_target) / base:.2f}x")
    header = f"{'branch':<10}{'dataset':>9}{'batch':>9}{'batch-dataset':>15}{'paper clamp':>13}"
    print(header)
    worst = {"dataset": 0.0, "extra": 0.0}
    for branch in BRANCHES:
        y = target_for(branch, args.batch, args.size).to(device)
        batch_fn = CALFLoss()
        batch_fn(logits, y)
        assert batch_fn.last_selection.branch == branch, (branch, batch_fn.last_selection)
        dataset = sync_time(CALFLoss("dataset").fit(y), y) / base
        batch = sync_time(batch_fn, y) / base
        paper = sync_time(CALFLoss("dataset", clamp="paper").fit(y), y) / base
        worst["dataset"] = max(worst["dataset"], dataset)
        worst["extra"] = max(worst["extra"], batch - dataset)
        print(f"{branch:<10}{dataset:>8.2f}x{batch:>8.2f}x{batch - dataset:>14.2f}x{paper:>12.2f}x")
    print(
        f"worst dataset-mode ratio {worst['dataset']:.2f}x (target <= 1.5x); "
        f"worst batch-mode overhead {worst['extra']:.2f}x (target <= 0.3x)"
    )


if __name__ == "__main__":
    main()
