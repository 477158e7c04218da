"""Speed of CALF's losses against BCEWithLogitsLoss, forward + backward, on one batch.

Prints, for each branch, the time of CALFLoss as a ratio to BCEWithLogitsLoss measured in the
same run: in dataset mode (fixed branch), in batch mode without areas (areas, moments and rule
recomputed from the target per call: on the host on a CPU, on the device elsewhere), in batch
mode with the loader's host areas (``areas=``, what training passes), and with the pick forced
onto the device (``pick_on="device"``, every candidate branch evaluated); plus the naive
sigmoid-clamp-log versions, the paper numerics, and the cost of the default target check
(values in [0, 1]) for each target dtype.

    python -m benchmarks.bench_losses [--batch 32 --size 256 --repeats 21 --threads N]
                                      [--device cuda]

Targets (issue 11): dataset mode <= 1.3x BCE for every branch (ln and log10 <= 1.1x); batch
mode with loader areas adds <= 0.1x on top of dataset mode. Every figure is the median over
shuffled rounds of a time divided by BCE's time in the same round; "BCE measured again" is
the noise floor of the run (two copies of one function). On a shared CPU the end-to-end
difference between batch and dataset mode is below that floor, so the script also times
the work batch mode adds alone ("pick": the host moments and the rule from the loader's
areas).
"""

from __future__ import annotations

import argparse
import platform
import statistics
from typing import Any

import torch
from torch import nn

from benchmarks.common import interleaved_times, paired_ratios
from calfseg.losses import CALFLoss
from calfseg.losses.inputs import check_target_range
from calfseg.rule import BRANCHES
from calfseg.stats import foreground_areas

# Area fractions u^k (right-skewed) or 1 - u^k (left-skewed) for u evenly spaced in [0, 1]:
# k = 4 gives |S| = 1.4, k = 2 gives 0.65, k = 1.5 gives 0.38; u itself is symmetric.
_SHAPES = {
    "fisher": (True, 4.0),
    "logit": (True, 2.0),
    "arcsine": (True, 1.5),
    "log10": (False, 4.0),
    "ln": (False, 2.0),
}


def target_for(branch: str, batch: int, size: int) -> torch.Tensor:
    """A (batch, 1, size, size) float mask whose per-sample areas select ``branch``."""
    unit = int(0.15 * size * size)
    if branch == "bce_dice":  # areas 0, a, 2a repeated (and a for the rest): exactly S = 0
        areas = ([0, unit, 2 * unit] * batch)[: batch - batch % 3] + [unit] * (batch % 3)
    else:
        left, k = _SHAPES[branch]
        u = torch.linspace(0, 1, batch)
        fractions = 1 - u**k if left else u**k
        areas = [int(f * 2 * unit) for f in fractions.tolist()]
    mask = torch.zeros(batch, size * size)
    for i, area in enumerate(areas):
        mask[i, :area] = 1.0
    return mask.reshape(batch, 1, size, size)


def step_fn(loss_fn: nn.Module, z: torch.Tensor, target: torch.Tensor, **kwargs: Any):
    """One forward + backward of ``loss_fn`` on the leaf ``z``. Every step shares one leaf:
    on a CPU the time of a memory-bound pass depends on where its input lies (huge pages or
    not), and separate copies made two runs of one function differ by up to 20 %."""

    def step() -> None:
        z.grad = None
        loss_fn(z, target, **kwargs).backward()
        if z.is_cuda:  # time the kernels, not their launch
            torch.cuda.synchronize()

    return step


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
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(args.batch, 1, args.size, args.size, generator=g) * 4).to(device)
    z = logits.clone().requires_grad_(True)

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, device {device}, "
        f"logits {tuple(logits.shape)} float32, forward+backward, "
        f"median over {args.repeats} shuffled rounds of the ratio to BCE in the same round"
    )
    bce_target = target_for("ln", args.batch, args.size).to(device)
    steps = {
        "bce": step_fn(nn.BCEWithLogitsLoss(), z, bce_target),
        "bce again": step_fn(nn.BCEWithLogitsLoss(), z, bce_target),  # the noise floor
        "naive ln": step_fn(_Fn(naive_ln), z, bce_target),
        "naive fisher": step_fn(_Fn(naive_fisher), z, bce_target),
    }
    for branch in BRANCHES:
        y = target_for(branch, args.batch, args.size).to(device)
        batch_fn = CALFLoss()
        batch_fn(logits, y)
        assert batch_fn.last_selection.branch == branch, (branch, batch_fn.last_selection)
        areas = foreground_areas(y).cpu().numpy()  # what the loader hands over, on the host
        steps[f"{branch} dataset"] = step_fn(CALFLoss("dataset").fit(y), z, y)
        steps[f"{branch} batch"] = step_fn(batch_fn, z, y)
        steps[f"{branch} areas"] = step_fn(CALFLoss(), z, y, areas=areas)
        steps[f"{branch} device"] = step_fn(CALFLoss(pick_on="device"), z, y)
        paper_fn = CALFLoss("dataset", numerics="paper").fit(y)
        steps[f"{branch} paper"] = step_fn(paper_fn, z, y)
        # The work batch mode adds, alone: the pick from the loader's areas (host moments and
        # the rule), and from the target (a reduction over it, then the same). The
        # end-to-end differences above are within the noise floor on a busy CPU; these are
        # not. (Private methods: they are exactly the code the forward runs before the loss.)
        pick_fn = CALFLoss()
        steps[f"{branch} pick areas"] = lambda f=pick_fn, a=areas, t=y: f._select_from_areas(a, t)
        steps[f"{branch} pick target"] = lambda f=pick_fn, t=y: f._select_from_batch(t)
    for dtype in (torch.float32, torch.uint8, torch.int64, torch.bool):
        target = bce_target.to(dtype)
        steps[f"check {dtype}"] = lambda t=target: check_target_range(t)
    times = interleaved_times(steps, repeats=args.repeats)
    ratio = paired_ratios(times, "bce")
    base = statistics.median(times["bce"])
    print(f"BCEWithLogitsLoss: {base * 1e3:.2f} ms (= 1.00x)")
    print(f"BCEWithLogitsLoss measured again: {ratio['bce again']:.2f}x (the noise floor)")
    print(f"naive clamp ln:     {ratio['naive ln']:.2f}x")
    print(f"naive clamp fisher: {ratio['naive fisher']:.2f}x")
    header = ("dataset", "batch", "+batch", "areas", "+areas", "pick", "device", "paper")
    print(f"{'branch':<10}" + "".join(f"{h:>9}" for h in header))
    worst = {"dataset": 0.0, "bce-like": 0.0, "batch": 0.0, "areas": 0.0, "pick": 0.0}
    kinds = ("dataset", "batch", "areas", "pick areas", "pick target", "device", "paper")
    for branch in BRANCHES:
        r = {k: ratio[f"{branch} {k}"] for k in kinds}
        worst["dataset"] = max(worst["dataset"], r["dataset"])
        if branch in ("ln", "log10"):
            worst["bce-like"] = max(worst["bce-like"], r["dataset"])
        worst["batch"] = max(worst["batch"], r["batch"] - r["dataset"])
        worst["areas"] = max(worst["areas"], r["areas"] - r["dataset"])
        worst["pick"] = max(worst["pick"], r["pick areas"])
        row = (
            r["dataset"],
            r["batch"],
            r["batch"] - r["dataset"],
            r["areas"],
            r["areas"] - r["dataset"],
            r["pick areas"],
            r["device"],
            r["paper"],
        )
        print(f"{branch:<10}" + "".join(f"{v:>8.2f}x" for v in row))
    noise = abs(ratio["bce again"] - 1.0)
    print(
        f"worst dataset-mode ratio {worst['dataset']:.2f}x (target <= 1.3x), ln/log10 "
        f"{worst['bce-like']:.2f}x (target <= 1.1x); batch mode over dataset mode with loader "
        f"areas: the pick alone +{worst['pick']:.3f}x (target <= 0.1x), end to end "
        f"+{worst['areas']:.2f}x; without areas +{worst['batch']:.2f}x end to end; noise "
        f"floor (BCE against itself) {noise:.2f}x"
    )
    checks = ", ".join(
        f"{str(dtype).removeprefix('torch.')} {ratio[f'check {dtype}']:.3f}x"
        for dtype in (torch.float32, torch.uint8, torch.int64, torch.bool)
    )
    print(f"target check (included in every loss above) per target dtype: {checks}")


if __name__ == "__main__":
    main()
