"""``branch-<name>``: each of CALF's six branches as a fixed loss in the registry, against
the per-pixel formulas of docs/method.md (section 3) written out here in float64."""

from __future__ import annotations

import math

import pytest
import torch

from calfseg.errors import OptionError
from calfseg.losses import BranchLoss, build_loss, list_losses
from calfseg.rule import BRANCHES


def _formula(branch: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The paper's per-pixel definitions (docs/method.md section 3), mean over pixels."""
    p = torch.sigmoid(z)
    q = 1 - p
    if branch == "fisher":
        terms = -(y * torch.atanh(p) + (1 - y) * torch.atanh(q))
    elif branch == "logit":
        terms = -(y * torch.log(p / q) + (1 - y) * torch.log(q / p))
    elif branch == "arcsine":
        terms = -(y * torch.asin(torch.sqrt(p)) + (1 - y) * torch.asin(torch.sqrt(q)))
    elif branch in ("ln", "log10"):
        terms = -(y * torch.log(p) + (1 - y) * torch.log(q))
        terms = terms / (math.log(10) if branch == "log10" else 1)
    else:  # bce_dice: BCE + 1 - Dice of the whole batch, smoothed by 1e-7
        bce = -(y * torch.log(p) + (1 - y) * torch.log(q))
        dice = (2 * (p * y).sum() + 1e-7) / (p.sum() + y.sum() + 1e-7)
        return bce.mean() + 1 - dice
    return terms.mean()


@pytest.mark.parametrize("branch", BRANCHES)
def test_each_branch_loss_is_its_formula(branch: str) -> None:
    generator = torch.Generator().manual_seed(7)
    z = torch.randn(3, 1, 8, 8, generator=generator, dtype=torch.float64) * 4
    y = (torch.rand(3, 1, 8, 8, generator=generator) < 0.2).double()
    loss = build_loss(f"branch-{branch}")
    assert isinstance(loss, BranchLoss) and loss.branch == branch
    assert float(loss(z, y)) == pytest.approx(float(_formula(branch, z, y)), rel=1e-9, abs=1e-12)
    paper = build_loss(f"branch-{branch}", numerics="paper")
    assert float(paper(z, y)) == pytest.approx(float(_formula(branch, z, y)), rel=1e-6)


def test_every_branch_is_registered_once_and_trains() -> None:
    names = [n for n in list_losses() if n.startswith("branch-")]
    assert names == [f"branch-{b}" for b in BRANCHES]
    z = torch.zeros(2, 1, 4, 4, requires_grad=True)
    y = torch.zeros(2, 1, 4, 4)
    y[0, 0, 1, 1] = 1
    for name in names:
        build_loss(name)(z, y).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_bad_options_are_refused_with_the_options_name() -> None:
    with pytest.raises(OptionError, match="numerics"):
        build_loss("branch-fisher", numerics="exact")
    with pytest.raises(OptionError, match="branch"):
        BranchLoss("cosh")
