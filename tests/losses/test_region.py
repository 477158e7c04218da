"""RegionCALFLoss: per-tile rule and branch, tiles weighted by 1 + FP + FN."""

from __future__ import annotations

import itertools

import pytest
import torch

from calfseg.losses import RegionCALFLoss, branch_loss
from calfseg.losses.branches import branch_terms
from calfseg.losses.region import tile_bounds
from calfseg.rule import select_branch
from calfseg.stats import AreaMoments


def test_tile_bounds_cover_the_side_and_differ_by_at_most_one():
    assert tile_bounds(8, 4) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    bounds = tile_bounds(10, 4)
    assert bounds[0][0] == 0 and bounds[-1][1] == 10
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 10


def test_grid_larger_than_the_image_is_an_error():
    with pytest.raises(ValueError, match="does not fit"):
        RegionCALFLoss(grid=8)(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))


def _hand_computed(logits, target, grid, numerics):
    """Straight from docs/method.md section 4, one tile at a time."""
    hs, ws = tile_bounds(logits.shape[-2], grid), tile_bounds(logits.shape[-1], grid)
    num, den = 0.0, 0.0
    branches = []
    for h0, h1 in hs:
        for w0, w1 in ws:
            z, y = logits[..., h0:h1, w0:w1], target[..., h0:h1, w0:w1]
            m = AreaMoments.from_areas(y.reshape(y.shape[0], -1).sum(1))
            branch = select_branch(m.skewness(), m.kurtosis()).branch
            branches.append(branch)
            if numerics == "paper":
                loss = branch_terms(branch, z, y, numerics="paper", clamp_probability=True).mean()
            else:
                loss = branch_loss(branch, z, y)
            pred = torch.round(torch.sigmoid(z))
            fp = ((pred == 1) & (y == 0)).sum().item()
            fn = ((pred == 0) & (y == 1)).sum().item()
            w = 1 + fp + fn
            num += w * loss.item()
            den += w
    return num / den, branches


@pytest.mark.parametrize("numerics", ["bounded", "paper"])
@pytest.mark.parametrize(("height", "width", "grid"), [(16, 16, 4), (18, 13, 4), (9, 9, 2)])
def test_matches_hand_computation(numerics, height, width, grid):
    g = torch.Generator().manual_seed(height * width)
    # Foreground concentrated top-left so that tiles differ in their statistics.
    rows = torch.arange(height).view(1, 1, -1, 1)
    cols = torch.arange(width).view(1, 1, 1, -1)
    density = 0.8 * torch.exp(-(rows + cols) / 8.0)
    target = (torch.rand(6, 1, height, width, generator=g) < density).float()
    logits = torch.randn(6, 1, height, width, generator=g) * 3
    loss_fn = RegionCALFLoss(grid=grid, numerics=numerics)
    loss = loss_fn(logits, target)
    expected, branches = _hand_computed(logits, target, grid, numerics)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert [s.branch for s in loss_fn.last_selection] == branches


def test_paper_clamp_also_clamps_bce_dice():
    target = torch.zeros(3, 1, 4, 4)  # every tile empty -> NaN statistics -> bce_dice
    logits = torch.full((3, 1, 4, 4), 40.0)
    loss_fn = RegionCALFLoss(grid=2, numerics="paper")
    paper = loss_fn(logits, target)
    assert {s.branch for s in loss_fn.last_selection} == {"bce_dice"}
    # With p clamped to 1 - 1e-7 the BCE term is -ln(1e-7) = 16.1, not torch's floor of 100.
    assert paper.item() == pytest.approx(16.1 + 1.0, abs=0.2)


def test_gradient_flows_and_weights_have_none():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 1, 8, 8, generator=g, requires_grad=True)
    target = (torch.rand(4, 1, 8, 8, generator=g) < 0.3).float()
    RegionCALFLoss(grid=2)(logits, target).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_3d_inputs_tile_the_last_two_axes():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 1, 2, 8, 8, generator=g)
    target = (torch.rand(3, 1, 2, 8, 8, generator=g) < 0.3).float()
    loss_fn = RegionCALFLoss(grid=2)
    assert torch.isfinite(loss_fn(logits, target))
    assert len(loss_fn.last_selection) == 4


@pytest.mark.parametrize("grid", [0, -1, 2.5])
def test_bad_grid(grid):
    with pytest.raises(ValueError, match="grid must be a positive integer"):
        RegionCALFLoss(grid=grid)
