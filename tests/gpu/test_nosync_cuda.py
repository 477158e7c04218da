"""Per-batch CALF on CUDA raises no synchronisation error and picks as the host does. Skipped
without a GPU (CI has none); run on a GPU machine with ``pytest tests/gpu``."""

from __future__ import annotations

import pytest
import torch

from calfseg.losses import CALFLoss
from calfseg.stats import foreground_areas

from ..losses.area_cases import AREAS_FOR, masks_with_areas

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("with_areas", [True, False], ids=["loader-areas", "device-pick"])
@pytest.mark.parametrize("row", list(AREAS_FOR))
def test_batch_mode_runs_without_a_host_sync_and_picks_like_the_host(row, with_areas):
    target = masks_with_areas(AREAS_FOR[row], side=32)
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(0)) * 4
    host_fn = CALFLoss(pick_on="host")
    expected = host_fn(logits, target)
    kwargs = {"areas": foreground_areas(target).numpy()} if with_areas else {}
    z = logits.cuda().requires_grad_(True)
    y = target.cuda()
    loss_fn = CALFLoss()
    loss_fn(z, y, **kwargs).backward()  # warm-up: first calls may initialise CUDA libraries
    z.grad = None
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = loss_fn(z, y, **kwargs)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert loss_fn.last_selection.branch == host_fn.last_selection.branch == row.split()[0]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    assert torch.isfinite(z.grad).all()
