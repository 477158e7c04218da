"""No full-size float64 tensor is created in any loss's forward or backward."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from calfseg.losses import CALFLoss, RegionCALFLoss, branch_loss
from calfseg.rule import BRANCHES

from .area_cases import AREAS_FOR, masks_with_areas


class _Float64Watch(TorchDispatchMode):
    """Records the size of every float64 tensor an ATen op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.dtype == torch.float64:
                self.sizes.append(t.numel())
        return out


def _largest_float64(loss_fn, logits, target) -> int:
    z = logits.clone().requires_grad_(True)
    with _Float64Watch() as watch:
        loss_fn(z, target).backward()
    return max(watch.sizes, default=0)


def _batch(row="log10", side=32):
    target = masks_with_areas(AREAS_FOR[row], side=side)
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    return logits, target


@pytest.mark.parametrize("numerics", ["bounded", "paper"])
@pytest.mark.parametrize("branch", BRANCHES)
def test_branch_losses_make_no_full_size_float64(branch, numerics):
    logits, target = _batch()
    for reduction in ("mean", "none"):
        largest = _largest_float64(
            lambda z, y, r=reduction: branch_loss(
                branch, z, y, numerics=numerics, reduction=r
            ).sum(),
            logits,
            target,
        )
        assert largest == 0


@pytest.mark.parametrize(
    ("loss_fn", "per_sample"),
    [
        (CALFLoss(), 1),
        (CALFLoss("running"), 1),
        (CALFLoss(mode="multilabel"), 1),
        (RegionCALFLoss(), 16),
    ],
    ids=["batch", "running", "multilabel", "region"],
)
def test_calf_modules_keep_float64_to_per_sample_areas(loss_fn, per_sample):
    logits, target = _batch("fisher")
    largest = _largest_float64(loss_fn, logits, target)
    # Only the per-sample areas (one per tile for the region loss) are float64, never a map.
    assert 0 < largest <= target.shape[0] * per_sample < target.numel()
