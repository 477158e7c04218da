"""The six branch functionals: parity with the NumPy reference, numerics, reductions, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from calfseg.losses import BRANCH_LOSSES, branch_loss
from calfseg.rule import BRANCHES

from . import numpy_reference as ref

BULK = (-5.0, 5.0)  # float32 p is well conditioned here (1 - p >= 6.7e-3)
EXTREMES = [-1e4, -200.0, -30.0, -17.5, 17.5, 30.0, 200.0, 1e4]  # clamped; no denormal p


def _logits_and_target(seed: int = 0, n: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    bulk = torch.empty(n).uniform_(*BULK, generator=g)
    z = torch.cat([bulk, torch.tensor(EXTREMES * 2)])
    y = (torch.rand(z.numel(), generator=g) < 0.3).float()
    y[-len(EXTREMES) :] = 1.0  # every extreme once with y = 0 and once with y = 1
    y[-2 * len(EXTREMES) : -len(EXTREMES)] = 0.0
    return z.reshape(1, 1, -1, 8), y.reshape(1, 1, -1, 8)


@pytest.mark.parametrize("branch", BRANCHES)
def test_paper_values_and_gradients_match_numpy_reference(branch):
    z, y = _logits_and_target()
    z.requires_grad_(True)
    torch_map = branch_loss(branch, z, y, numerics="paper", reduction="none")
    loss = branch_loss(branch, z, y, numerics="paper")
    loss.backward()
    ref_map, ref_grad = ref.loss_and_grad(branch, z.detach().double().numpy(), y.numpy())
    np.testing.assert_allclose(torch_map.detach().numpy(), ref_map, rtol=1e-5, atol=2e-5)
    assert loss.item() == pytest.approx(ref_map.mean(), rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(z.grad.numpy(), ref_grad, rtol=1e-4, atol=1e-9)


def test_paper_clamp_zeroes_gradient_beyond_about_16():
    z = torch.tensor([-17.5, -30.0, 17.5, 30.0], requires_grad=True)
    for branch in ("fisher", "logit", "arcsine", "log10", "ln"):
        z.grad = None
        y = torch.tensor([1.0, 1.0, 0.0, 0.0])  # confident errors: still no gradient
        branch_loss(branch, z, y, numerics="paper").backward()
        assert torch.equal(z.grad, torch.zeros(4)), branch


@pytest.mark.parametrize("branch", BRANCHES)
def test_bounded_equals_exact_definition_where_clamp_inactive(branch):
    g = torch.Generator().manual_seed(1)
    z = torch.empty(2, 1, 16, 16).uniform_(-15.0, 15.0, generator=g)
    y = (torch.rand(z.shape, generator=g) < 0.4).float()
    bounded = branch_loss(branch, z, y, reduction="none").numpy()
    exact = ref.exact(branch, z.double().numpy(), y.numpy())
    np.testing.assert_allclose(bounded, exact, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("branch", BRANCHES)
def test_bounded_and_paper_agree_where_clamp_inactive(branch):
    g = torch.Generator().manual_seed(2)
    z = torch.empty(4, 1, 8, 8).uniform_(*BULK, generator=g)
    y = (torch.rand(z.shape, generator=g) < 0.5).float()
    bounded = branch_loss(branch, z, y)
    paper = branch_loss(branch, z, y, numerics="paper")
    assert bounded.item() == pytest.approx(paper.item(), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("branch", BRANCHES)
def test_bounded_values_and_gradients_finite_at_extreme_logits(branch):
    z = torch.tensor([-1e4, -1e3, -88.0, 0.0, 88.0, 1e3, 1e4] * 2, requires_grad=True)
    y = torch.tensor([0.0] * 7 + [1.0] * 7)
    loss = branch_loss(branch, z, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(z.grad).all()


def test_bounded_asymptotes_follow_the_formulas():
    bound = math.log((1 - 1e-7) / 1e-7)
    z = torch.tensor([1e4])
    one = torch.ones(1)
    # fisher and logit stop at the paper's bound; the others follow the exact function.
    fisher_floor = -0.5 * math.log((2 - 1e-7) / 1e-7)  # -atanh(1 - 1e-7)
    assert branch_loss("fisher", z, one).item() == pytest.approx(fisher_floor, rel=1e-6)
    assert branch_loss("logit", z, one).item() == pytest.approx(-bound, rel=1e-6)
    assert branch_loss("logit", -z, one).item() == pytest.approx(bound, rel=1e-6)
    assert branch_loss("arcsine", z, one).item() == pytest.approx(-math.pi / 2)
    assert branch_loss("arcsine", -z, one).item() == pytest.approx(0.0, abs=1e-7)
    assert branch_loss("ln", -z, one).item() == pytest.approx(1e4)
    assert branch_loss("log10", -z, one).item() == pytest.approx(1e4 / math.log(10))


def test_log10_is_ln_over_ln10():
    z, y = _logits_and_target(seed=4)
    for numerics in ("bounded", "paper"):
        ln = branch_loss("ln", z, y, numerics=numerics)
        log10 = branch_loss("log10", z, y, numerics=numerics)
        assert log10.item() == pytest.approx(ln.item() / math.log(10), rel=1e-6)


def test_paper_ranges_of_the_bounded_branches():
    z = torch.linspace(-40, 40, 2001)
    for y in (torch.zeros_like(z), torch.ones_like(z)):
        fisher = branch_loss("fisher", z, y, numerics="paper", reduction="none")
        arcsine = branch_loss("arcsine", z, y, numerics="paper", reduction="none")
        assert fisher.min() > -8.5 and fisher.max() <= 0
        assert arcsine.min() >= -math.pi / 2 - 1e-6 and arcsine.max() <= 0


def test_bce_dice_uses_one_dice_for_the_whole_batch():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(3, 1, 8, 8, generator=g)
    y = (torch.rand(z.shape, generator=g) < 0.3).float()
    p = torch.sigmoid(z)
    dice = (2 * (p * y).sum() + 1e-7) / (p.sum() + y.sum() + 1e-7)
    expected = torch.nn.functional.binary_cross_entropy(p, y) + 1 - dice
    assert branch_loss("bce_dice", z, y).item() == pytest.approx(expected.item(), rel=1e-6)
    per_element = branch_loss("bce_dice", z, y, reduction="none")
    assert per_element.mean().item() == pytest.approx(expected.item(), rel=1e-6)


def test_bce_dice_empty_target_gives_dice_near_zero_not_nan():
    z = torch.full((2, 1, 4, 4), 3.0)
    loss = branch_loss("bce_dice", z, torch.zeros_like(z))
    p = torch.sigmoid(torch.tensor(3.0))
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(-math.log(1 - p.item()) + 1.0, rel=1e-5)


@pytest.mark.parametrize("branch", BRANCHES)
def test_reduction_none_keeps_shape_and_averages_to_mean(branch):
    z, y = _logits_and_target(seed=6, n=256)
    per_element = branch_loss(branch, z, y, reduction="none")
    assert per_element.shape == z.shape
    assert per_element.mean().item() == pytest.approx(branch_loss(branch, z, y).item(), rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("branch", BRANCHES)
def test_low_precision_logits_compute_in_float32(branch, dtype):
    g = torch.Generator().manual_seed(7)
    z = (torch.randn(2, 1, 16, 16, generator=g) * 20).to(dtype)
    y = (torch.rand(z.shape, generator=g) < 0.2).float()
    z.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = branch_loss(branch, z, y)
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss) and torch.isfinite(z.grad.float()).all()
    reference = branch_loss(branch, z.detach().float(), y)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)


def test_named_functionals_match_branch_loss():
    z, y = _logits_and_target(seed=8, n=64)
    for name, fn in BRANCH_LOSSES.items():
        assert fn.__name__ == f"{name}_loss"
        assert torch.equal(fn(z, y, numerics="paper"), branch_loss(name, z, y, numerics="paper"))


def test_bool_and_integer_targets_are_accepted():
    z, y = _logits_and_target(seed=9, n=64)
    expected = branch_loss("ln", z, y)
    assert torch.equal(branch_loss("ln", z, y.bool()), expected)
    assert torch.equal(branch_loss("ln", z, y.long()), expected)


class TestBadInput:
    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match="does not match logits shape"):
            branch_loss("ln", torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))

    def test_integer_logits(self):
        with pytest.raises(TypeError, match="floating"):
            branch_loss("ln", torch.zeros(2, 1, 4, 4, dtype=torch.long), torch.zeros(2, 1, 4, 4))

    def test_non_tensor(self):
        with pytest.raises(TypeError, match="tensors"):
            branch_loss("ln", np.zeros((2, 2)), torch.zeros(2, 2))

    def test_empty_batch(self):
        with pytest.raises(ValueError, match="empty batch"):
            branch_loss("ln", torch.zeros(0, 1, 4, 4), torch.zeros(0, 1, 4, 4))

    def test_nan_logits_rejected_when_validating(self):
        z = torch.zeros(1, 1, 2, 2)
        z[0, 0, 0, 0] = math.nan
        with pytest.raises(ValueError, match="NaN or inf"):
            branch_loss("ln", z, torch.zeros_like(z), validate=True)

    def test_nan_logits_not_silent_without_validation(self):
        z = torch.zeros(1, 1, 2, 2)
        z[0, 0, 0, 0] = math.nan
        assert torch.isnan(branch_loss("ln", z, torch.zeros_like(z)))

    def test_target_outside_zero_one_rejected_when_validating(self):
        z = torch.zeros(1, 1, 2, 2)
        with pytest.raises(ValueError, match="0 or 1"):
            branch_loss("ln", z, torch.full_like(z, 0.5), validate=True)

    def test_unknown_branch_numerics_reduction(self):
        z = torch.zeros(1, 1, 2, 2)
        with pytest.raises(ValueError, match="unknown branch "):
            branch_loss("tanh", z, z)
        with pytest.raises(ValueError, match="unknown numerics "):
            branch_loss("ln", z, z, numerics="none")
        with pytest.raises(ValueError, match="unknown reduction "):
            branch_loss("ln", z, z, reduction="sum")
