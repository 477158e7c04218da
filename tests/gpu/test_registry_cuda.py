"""Registry losses and model presets on CUDA under autocast. Skipped without a GPU (CI has
none); run on a GPU machine with ``pytest tests/gpu``."""

from __future__ import annotations

import pytest
import torch

from calfseg.fingerprint import Fingerprint
from calfseg.losses import build_loss, list_losses
from calfseg.models import MODELS, build_model
from calfseg.stats import AreaMoments

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list_losses())
def test_registry_loss_under_cuda_autocast_is_float32_and_matches_cpu(name, dtype, tmp_path):
    fingerprint = tmp_path / "fingerprint.json"
    Fingerprint(AreaMoments.from_areas([0] * 9 + [100])).save(fingerprint)
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(8, 1, 64, 64, generator=g) > 0.7).float()
    target[1] = 0
    conv = torch.nn.Conv2d(4, 1, 3, padding=1).cuda()
    images = torch.randn(8, 4, 64, 64, generator=g).cuda()
    with torch.autocast("cuda", dtype=dtype):
        logits = conv(images)  # half-precision activations, as in AMP training
        value = build_loss(name, fingerprint=fingerprint)(logits, target.cuda())
    value.backward()
    assert value.dtype == torch.float32
    assert all(torch.isfinite(p.grad).all() for p in conv.parameters())
    reference = build_loss(name, fingerprint=fingerprint)(logits.detach().float().cpu(), target)
    assert value.item() == pytest.approx(reference.item(), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_paper_preset_trains_one_step_under_bf16_autocast(name):
    model = build_model(name, preset="paper").cuda().train()
    optimiser = torch.optim.Adam(model.parameters(), 1e-5)
    images = torch.randn(4, 1, 256, 256, device="cuda")
    target = (torch.rand(4, 1, 256, 256, device="cuda") > 0.8).float()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(images)
    loss = build_loss("combo")(logits, target)
    loss.backward()
    optimiser.step()
    assert logits.shape == (4, 1, 256, 256) and torch.isfinite(loss)
