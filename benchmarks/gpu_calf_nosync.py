"""Per-batch CALF on a GPU: no host synchronisation, and its cost over dataset mode.

One prepared script for a GPU machine (issue 11). Two parts:

1. Sync check. Under ``torch.cuda.set_sync_debug_mode("error")`` (any implicit
   device-to-host synchronisation raises), one forward + backward of ``CALFLoss()`` for a
   batch of every branch: with the loader's host areas (``areas=``) and without them (the
   pick made on the device). Every pick is then compared with the host computation.
2. Timings, forward + backward on ``--batch x 1 x --size x --size`` float32 logits, as ratios
   to ``BCEWithLogitsLoss`` in the same run (interleaved medians): dataset mode (fixed
   branch), batch mode with loader areas, batch mode picking on the device, and batch mode
   reading the areas back to the host (``pick_on="host"``, the pre-issue-11 path).

    python -m benchmarks.gpu_calf_nosync [--batch 32 --size 256 --repeats 30 --device cuda]

Exits 1 when a synchronisation is caught or a pick differs, 0 otherwise. Runs on a CPU too:
the sync check is skipped there (a CPU has nothing to synchronise with; it says so) and the
timings compare the same modes (``pick_on="device"`` forced, for the record).
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from benchmarks.bench_losses import step_fn, target_for
from benchmarks.common import interleaved_medians
from calfseg.losses import CALFLoss
from calfseg.rule import BRANCHES
from calfseg.stats import foreground_areas


def check_no_sync(logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> list[str]:
    """Problems found (empty when none): a synchronisation caught, or a pick that differs."""
    problems = []
    for branch, y in targets.items():
        areas = foreground_areas(y).cpu().numpy()  # the loader's host areas, read beforehand
        for name, loss_fn, kwargs in (
            ("loader areas", CALFLoss(), {"areas": areas}),
            ("device pick", CALFLoss(), {}),
        ):
            z = logits.clone().requires_grad_(True)
            loss_fn(z, y, **kwargs).backward()  # warm-up: library handles, allocator pools
            z.grad = None
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                loss_fn(z, y, **kwargs).backward()
            except RuntimeError as error:
                problems.append(f"{branch}, {name}: synchronised: {error}")
                continue
            finally:
                torch.cuda.set_sync_debug_mode(0)
            torch.cuda.synchronize()
            picked = loss_fn.last_selection.branch  # reading it synchronises: after the check
            if picked != branch:
                problems.append(f"{branch}, {name}: picked {picked}")
            else:
                print(f"  {branch:<9} {name:<13} no sync, picked {picked}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available here; use --device cpu", file=sys.stderr)
        return 2
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(args.batch, 1, args.size, args.size, generator=g) * 4).to(device)
    targets = {b: target_for(b, args.batch, args.size).to(device) for b in BRANCHES}
    print(
        f"torch {torch.__version__}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
        + f", logits {tuple(logits.shape)} float32, forward+backward"
    )

    problems: list[str] = []
    if device.type == "cuda":
        print('sync check (torch.cuda.set_sync_debug_mode("error")):')
        problems = check_no_sync(logits, targets)
    else:
        print("sync check skipped: no CUDA device (a CPU has no host-device synchronisation)")

    pick = "auto" if device.type == "cuda" else "device"
    steps = {"bce": step_fn(nn.BCEWithLogitsLoss(), logits, targets["ln"])}
    for branch, y in targets.items():
        areas = foreground_areas(y).cpu().numpy()
        steps[f"{branch} dataset"] = step_fn(CALFLoss("dataset").fit(y), logits, y)
        steps[f"{branch} areas"] = step_fn(CALFLoss(), logits, y, areas=areas)
        steps[f"{branch} device"] = step_fn(CALFLoss(pick_on=pick), logits, y)
        steps[f"{branch} host"] = step_fn(CALFLoss(pick_on="host"), logits, y)
    t = interleaved_medians(steps, repeats=args.repeats)
    base = t["bce"]
    print(f"BCEWithLogitsLoss: {base * 1e3:.3f} ms (= 1.00x); ratios to it, median of "
          f"{args.repeats} interleaved rounds")  # fmt: skip
    modes = ("dataset", "areas", "device", "host")
    print(f"{'branch':<10}" + "".join(f"{m:>9}" for m in modes) + f"{'+areas':>9}{'+host':>9}")
    worst_areas = 0.0
    for branch in BRANCHES:
        r = {m: t[f"{branch} {m}"] / base for m in modes}
        worst_areas = max(worst_areas, r["areas"] - r["dataset"])
        extra = (r["areas"] - r["dataset"], r["host"] - r["dataset"])
        print(f"{branch:<10}" + "".join(f"{v:>8.2f}x" for v in (*r.values(), *extra)))
    print(f"worst batch mode with loader areas over dataset mode: +{worst_areas:.2f}x "
          "(target <= 0.1x)")  # fmt: skip
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
