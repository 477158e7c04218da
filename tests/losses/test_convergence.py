"""Convergence smoke test, in the style of MONAI's loss integration tests: a tiny network
trained for a few dozen steps on a synthetic image with each branch (and CALFLoss) lowers
its loss and reaches a non-trivial Dice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from calfseg.losses import CALFLoss, RegionCALFLoss, branch_loss
from calfseg.rule import BRANCHES


def _synthetic_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Bright discs of several radii on a noisy background, 8 images of 32 x 32."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    masks = []
    for i in range(8):
        cy, cx = torch.randint(8, 24, (2,), generator=g).tolist()
        r = 2 + i % 5
        masks.append(((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).float())
    mask = torch.stack(masks).unsqueeze(1)
    image = mask * 1.0 + 0.3 * torch.randn(mask.shape, generator=g)
    return image, mask


def _tiny_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 1, 1),
    )


def _train(loss_fn, steps: int = 60) -> tuple[float, float, float]:
    torch.manual_seed(0)
    image, mask = _synthetic_batch()
    net = _tiny_net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(net(image), mask)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    with torch.no_grad():
        pred = (net(image) > 0).float()
        final = loss_fn(net(image), mask).item()
    dice = (2 * (pred * mask).sum() / (pred.sum() + mask.sum())).item()
    return first, final, dice


@pytest.mark.parametrize("numerics", ["bounded", "paper"])
@pytest.mark.parametrize("branch", BRANCHES)
def test_each_branch_trains_a_tiny_network(branch, numerics):
    first, final, dice = _train(lambda z, y: branch_loss(branch, z, y, numerics=numerics))
    assert final < first
    assert dice > 0.6, f"{branch}: Dice {dice:.3f}"


@pytest.mark.parametrize(
    "loss_fn", [CALFLoss(), CALFLoss("running"), RegionCALFLoss(grid=2)], ids=repr
)
def test_calf_modules_train_a_tiny_network(loss_fn):
    first, final, dice = _train(loss_fn)
    assert final < first
    assert dice > 0.6
