"""CUDA behaviour: mixed precision, device-resident areas, nccl, compile. Skipped without a GPU
(CI has none); run on a GPU machine with ``pytest tests/gpu``."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from calfseg.losses import CALFLoss, RegionCALFLoss, branch_loss
from calfseg.rule import BRANCHES
from calfseg.stats import AreaMoments, foreground_areas
from calfseg.stats.sync import all_reduce_moments

from ..losses.area_cases import AREAS_FOR, masks_with_areas

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _pair(row="log10", side=64, scale=8.0):
    target = masks_with_areas(AREAS_FOR[row], side=side)
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(0)) * scale
    return logits, target


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("branch", BRANCHES)
def test_branches_under_cuda_autocast_match_float32(branch, dtype):
    logits, target = _pair()
    z = logits.cuda().requires_grad_(True)
    with torch.autocast("cuda", dtype=dtype):
        half_logits = z * 1.0  # an autocast region hands half-precision activations over
        loss = branch_loss(branch, half_logits.to(dtype), target.cuda())
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(z.grad).all()
    reference = branch_loss(branch, logits.to(dtype).float(), target)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("numerics", ["bounded", "paper"])
def test_calf_modules_on_cuda_equal_cpu(numerics):
    logits, target = _pair("fisher")
    for make in (
        lambda: CALFLoss(numerics=numerics),
        lambda: RegionCALFLoss(grid=2, numerics=numerics),
    ):
        cpu_fn, gpu_fn = make(), make()
        cpu = cpu_fn(logits, target)
        gpu = gpu_fn(logits.cuda(), target.cuda())
        assert gpu.item() == pytest.approx(cpu.item(), rel=1e-5, abs=1e-6)
        assert gpu_fn.last_selection == cpu_fn.last_selection


def test_foreground_areas_stay_on_device_and_match_cpu():
    masks = torch.rand(16, 1, 40, 48) < 0.3
    gpu = foreground_areas(masks.cuda())
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float64
    assert torch.equal(gpu.cpu(), foreground_areas(masks))


def test_nccl_all_reduce_moments_single_rank(tmp_path):
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        torch.cuda.set_device(0)
        moments = [AreaMoments.from_areas([1, 2, 3, 10]), AreaMoments.from_areas([5, 5, 6])]
        merged = all_reduce_moments(moments)
        assert merged == moments
        loss_fn = CALFLoss()
        logits, target = _pair("ln")
        loss_fn(logits.cuda(), target.cuda())
        assert loss_fn.last_selection.branch == "ln"
    finally:
        dist.destroy_process_group()


def test_dataset_mode_compiles_with_inductor_on_cuda():
    logits, target = _pair("arcsine")
    loss_fn = CALFLoss("dataset").fit(target)
    compiled = torch.compile(loss_fn, fullgraph=True)
    z = logits.cuda().requires_grad_(True)
    loss = compiled(z, target.cuda())
    loss.backward()
    assert loss.item() == pytest.approx(loss_fn(logits, target).item(), rel=1e-5)
    assert torch.isfinite(z.grad).all()
