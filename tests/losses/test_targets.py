"""Targets outside [0, 1] (a 0/255 mask) are an error by default in every loss; {0, 1} masks
of any dtype, and soft targets inside [0, 1], pass."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from calfseg.losses import (
    BRANCH_LOSSES,
    CALFLoss,
    RegionCALFLoss,
    build_loss,
    list_losses,
)
from calfseg.stats import AreaMoments, foreground_areas

from .area_cases import AREAS_FOR, masks_with_areas

MASKS = masks_with_areas(AREAS_FOR["ln"], side=8)  # (8, 1, 8, 8) float 0/1
LOGITS = torch.randn(MASKS.shape, generator=torch.Generator().manual_seed(0))
MESSAGE = r"\[0, 1\].*0/255.*divided by 255 or binarised"


def _every_loss() -> dict[str, object]:
    """name -> loss callable (logits, target): the CALF modules, the six functionals and every
    registered loss (baselines through BinaryLossAdapter)."""
    moments = AreaMoments.from_areas(foreground_areas(MASKS))
    losses: dict[str, object] = {
        "CALFLoss batch": CALFLoss(),
        "CALFLoss dataset": CALFLoss("dataset").fit(MASKS),
        "CALFLoss running": CALFLoss("running"),
        "CALFLoss paper": CALFLoss(numerics="paper"),
        "CALFLoss none": CALFLoss(reduction="none"),
        "RegionCALFLoss": RegionCALFLoss(grid=2),
        "RegionCALFLoss paper": RegionCALFLoss(grid=2, numerics="paper"),
    }
    for name, fn in BRANCH_LOSSES.items():
        losses[f"{name}_loss"] = fn
    for name in list_losses():
        losses[f"registry {name}"] = build_loss(name, fingerprint=moments)
    return losses


LOSSES = _every_loss()


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize(
    "bad",
    [MASKS * 255, (MASKS * 255).to(torch.uint8), (MASKS * 255).long(), MASKS - 1.0],
    ids=["float 0/255", "uint8 0/255", "int64 0/255", "float -1/0"],
)
def test_targets_outside_zero_one_are_an_error(name, bad):
    with pytest.raises(ValueError, match=MESSAGE):
        LOSSES[name](LOGITS, bad)


@pytest.mark.parametrize("name", ["CALFLoss dataset", "ln_loss", "registry bce"])
def test_nan_target_is_an_error(name):
    target = MASKS.clone()
    target[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match=MESSAGE):
        LOSSES[name](LOGITS, target)


@pytest.mark.parametrize("name", list(LOSSES))
def test_zero_one_masks_of_every_dtype_pass_and_agree(name):
    loss_fn = LOSSES[name]
    expected = loss_fn(LOGITS, MASKS)
    assert torch.isfinite(expected).all()
    for dtype in (torch.bool, torch.uint8, torch.int64, torch.float64, torch.float16):
        got = loss_fn(LOGITS, MASKS.to(dtype))
        torch.testing.assert_close(got, expected, rtol=0, atol=0, msg=f"{name}, {dtype}")


@pytest.mark.parametrize("name", ["CALFLoss batch", "CALFLoss dataset", "bce_dice_loss"])
def test_soft_targets_inside_zero_one_pass(name):
    soft = MASKS * 0.9 + 0.05  # label smoothing: values 0.05 and 0.95
    assert torch.isfinite(LOSSES[name](LOGITS, soft)).all()


@pytest.mark.parametrize(
    "dtype", [torch.int8, torch.int32, torch.uint16, torch.uint32, torch.uint64]
)
def test_every_integer_dtype_is_checked(dtype):
    # 16-bit PNG masks arrive as uint16, which torch reduces on few devices.
    loss_fn = LOSSES["ln_loss"]
    expected = loss_fn(LOGITS, MASKS)
    torch.testing.assert_close(loss_fn(LOGITS, MASKS.to(dtype)), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match=MESSAGE):
        loss_fn(LOGITS, (MASKS * 100).to(dtype))


def test_validate_keeps_its_fuller_check():
    with pytest.raises(ValueError, match="0 or 1"):
        CALFLoss(validate=True)(LOGITS, MASKS * 0.5)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8, torch.bool])
def test_on_cuda_the_check_makes_no_host_sync(dtype):
    loss_fn = CALFLoss("dataset").fit(MASKS)
    logits = LOGITS.cuda().requires_grad_(True)
    target = MASKS.to(dtype).cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        loss_fn(logits, target).backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert logits.grad is not None and bool(torch.isfinite(logits.grad).all())


@needs_cuda
def test_on_cuda_a_0_255_target_fails_at_the_next_sync():
    # A failed device assertion poisons the CUDA context, so it runs in its own process.
    code = (
        "import torch\n"
        "from calfseg.losses.branches import ln_loss\n"
        "z = torch.zeros(4, device='cuda')\n"
        "ln_loss(z, torch.tensor([0.0, 255.0, 0.0, 255.0], device='cuda'))\n"
        "torch.cuda.synchronize()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "assert" in proc.stderr.lower()
