"""The default ("bounded") numerics: the paper's bounded objective, evaluated exactly, in the
precision of the input; and the option's name and values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from calfseg.losses import CALFLoss, RegionCALFLoss, branch_loss, build_loss
from calfseg.rule import BRANCHES

from . import numpy_reference as ref
from .area_cases import AREAS_FOR, masks_with_areas

L = math.log((1 - 1e-7) / 1e-7)  # 16.118095650958...: sigmoid(+-L) = the paper's clamp of p
EDGES = [-50.0, -30.0, -17.0, -16.3, -16.0, 16.0, 16.3, 17.0, 30.0, 50.0]


def _float64_inputs(seed: int = 0, n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits in [-30, 30] plus values on both sides of the bound and +-50, each extreme once
    with y = 0 and once with y = 1."""
    g = torch.Generator().manual_seed(seed)
    bulk = torch.empty(n, dtype=torch.float64).uniform_(-30.0, 30.0, generator=g)
    edges = torch.tensor(EDGES * 2, dtype=torch.float64)
    z = torch.cat([bulk, edges])
    y = (torch.rand(z.numel(), generator=g) < 0.4).double()
    y[n : n + len(EDGES)] = 0.0
    y[n + len(EDGES) :] = 1.0
    return z.reshape(1, 1, -1, 4), y.reshape(1, 1, -1, 4)


@pytest.mark.parametrize("branch", BRANCHES)
def test_default_equals_the_bounded_definition_in_float64(branch):
    z, y = _float64_inputs()
    expected = ref.bounded(branch, z.numpy(), y.numpy())
    per_element = branch_loss(branch, z, y, reduction="none")
    mean = branch_loss(branch, z, y)
    assert per_element.dtype == mean.dtype == torch.float64
    np.testing.assert_allclose(per_element.numpy(), expected, rtol=1e-9, atol=1e-12)
    assert mean.item() == pytest.approx(expected.mean(), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("row", list(AREAS_FOR))
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_default_calf_loss_equals_the_bounded_definition_in_float64(row, reduction):
    masks = masks_with_areas(AREAS_FOR[row]).double()
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(masks.shape, generator=g, dtype=torch.float64) * 25  # beyond +-50 too
    loss_fn = CALFLoss(reduction=reduction)
    out = loss_fn(logits, masks)
    branch = row.split()[0]
    assert loss_fn.last_selection.branch == branch
    expected = ref.bounded(branch, logits.numpy(), masks.numpy())
    assert out.dtype == torch.float64
    if reduction == "none":
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-9, atol=1e-12)
    else:
        assert out.item() == pytest.approx(expected.mean(), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("branch", ["fisher", "logit"])
def test_scaling_correct_logits_past_the_bound_cannot_lower_the_loss(branch, dtype):
    g = torch.Generator().manual_seed(2)
    y = (torch.rand(4, 1, 8, 8, generator=g) < 0.3).to(dtype)
    magnitude = torch.empty(y.shape, dtype=dtype).uniform_(0.5, 2.0, generator=g)
    correct = (2 * y - 1) * magnitude  # every pixel on the right side of 0
    inside = [branch_loss(branch, k * correct, y).item() for k in (1.0, 2.0, 4.0, 7.0)]
    assert all(a > b for a, b in itertools.pairwise(inside)), inside  # every |kz| < L
    beyond = [branch_loss(branch, k * correct, y).item() for k in (33.0, 50.0, 1e3, 1e6)]
    assert len(set(beyond)) == 1, beyond  # every |kz| > L: the loss is constant
    # The floor is the paper's: every pixel at p = 1 - 1e-7 on its correct side.
    floor = -0.5 * math.log((2 - 1e-7) / 1e-7) if branch == "fisher" else -L
    assert beyond[0] == pytest.approx(floor, rel=1e-6)
    assert min(inside) > beyond[0]


# Confidently correct (first row) and confidently wrong (second row) pixels beyond the bound.
_BEYOND_Z = [16.2, 50.0, 1e4, -16.2, -50.0, -1e4]
_CORRECT_Y = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("branch", BRANCHES)
def test_gradient_beyond_the_bound(branch, reduction, dtype):
    z = torch.tensor(_BEYOND_Z * 2, dtype=dtype, requires_grad=True)
    y = torch.tensor(_CORRECT_Y + [1.0 - v for v in _CORRECT_Y], dtype=dtype)
    branch_loss(branch, z, y, reduction=reduction).sum().backward()
    grad = z.grad
    if branch in ("fisher", "logit"):
        assert torch.equal(grad, torch.zeros_like(grad))  # as in the paper: the bound holds
    elif branch in ("ln", "log10"):
        # BCE's gradient p - y: +-1 per confidently wrong pixel, whatever its logit.
        scale = (1 / 12 if reduction == "mean" else 1.0) / (
            math.log(10) if branch == "log10" else 1.0
        )
        expected = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0], dtype=dtype) * scale
        torch.testing.assert_close(grad[6:], expected, rtol=1e-6, atol=0)
        assert (grad[[0, 3]] != 0).all()  # correct pixels just past the bound: about 1e-7
    elif branch == "arcsine":  # no clamp, but the function's own gradient fades as |z| grows
        assert (grad[[6, 9]] != 0).all()


def _gradcheck_logits(shape, seed, low=-30.0, high=30.0) -> torch.Tensor:
    """float64 logits in [low, high], none within 0.05 of +-L (the bound's kink)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.empty(shape, dtype=torch.float64).uniform_(low, high, generator=g)
    near = (z.abs() - L).abs() < 0.05
    z[near] += 0.2
    return z.requires_grad_(True)


@pytest.mark.parametrize("numerics", ["bounded", "paper"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("branch", BRANCHES)
def test_gradcheck_every_branch_in_float64(branch, reduction, numerics):
    # The paper's bce_dice divides its BCE gradient by max(p (1 - p), 1e-12): beyond |z| of
    # about 27 that floor, not the formula, sets the gradient; stay inside its clamp there.
    high = 14.0 if numerics == "paper" else 30.0
    z = _gradcheck_logits((2, 1, 4, 4), seed=3, low=-high, high=high)
    y = (torch.rand(z.shape, generator=torch.Generator().manual_seed(4)) < 0.5).double()

    def loss(t: torch.Tensor) -> torch.Tensor:
        return branch_loss(branch, t, y, numerics=numerics, reduction=reduction)

    assert torch.autograd.gradcheck(loss, (z,))


def _small_masks(row: str) -> torch.Tensor:
    """(B, 1, 4, 4) float64 masks whose areas (out of 16) pick ``row``'s branch."""
    areas = [round(a * 16 / 100) for a in AREAS_FOR[row]]
    flat = torch.zeros(len(areas), 16, dtype=torch.float64)
    for i, a in enumerate(areas):
        flat[i, :a] = 1.0
    return flat.reshape(len(areas), 1, 4, 4)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("row", ["fisher", "logit", "arcsine", "log10", "ln", "bce_dice"])
def test_gradcheck_calf_loss_in_float64(row, reduction):
    masks = _small_masks(row)
    loss_fn = CALFLoss(reduction=reduction)
    z = _gradcheck_logits(masks.shape, seed=5)
    assert torch.autograd.gradcheck(lambda t: loss_fn(t, masks), (z,))
    assert loss_fn.last_selection.branch == row


@pytest.mark.parametrize("numerics", ["bounded", "paper"])
@pytest.mark.slow
def test_gradcheck_region_calf_loss_in_float64(numerics):
    g = torch.Generator().manual_seed(6)
    rows = torch.arange(6.0).view(1, 1, -1, 1)
    target = (torch.rand(6, 1, 6, 6, generator=g) < 0.8 * torch.exp(-rows / 3)).double()
    # Logits away from 0 too: the tile weights count z > 0 and jump there (no gradient).
    z = _gradcheck_logits(target.shape, seed=7, low=-14.0, high=14.0)
    with torch.no_grad():
        z[z.abs() < 0.05] += 0.2
    loss_fn = RegionCALFLoss(grid=2, numerics=numerics)
    assert torch.autograd.gradcheck(lambda t: loss_fn(t, target), (z,))


class TestPrecisionFollowsTheInput:
    @pytest.mark.parametrize("numerics", ["bounded", "paper"])
    def test_float64_in_float64_out(self, numerics):
        z, y = _float64_inputs(seed=8, n=64)
        z.requires_grad_(True)
        masks = masks_with_areas(AREAS_FOR["ln"]).double()
        logits = torch.randn(masks.shape, dtype=torch.float64, requires_grad=True)
        outputs = [
            branch_loss("fisher", z, y, numerics=numerics),
            branch_loss("bce_dice", z, y, numerics=numerics, reduction="none"),
            CALFLoss(numerics=numerics)(logits, masks),
            CALFLoss(numerics=numerics, reduction="none")(logits, masks),
            RegionCALFLoss(grid=2, numerics=numerics)(logits, masks),
        ]
        assert [o.dtype for o in outputs] == [torch.float64] * 5
        sum(o.sum() for o in outputs).backward()
        assert z.grad.dtype == logits.grad.dtype == torch.float64

    @pytest.mark.parametrize("branch", BRANCHES)
    def test_paper_numerics_in_float64_follow_the_literal_formula(self, branch):
        # The authors' code run in float64: p = clip(sigmoid(z), 1e-7, 1 - 1e-7) and 1 - p
        # taken literally, all in float64 (float32 rounding differed by 3e-4 at +-40).
        z = torch.linspace(-40, 40, 161, dtype=torch.float64)
        y = (torch.arange(161) % 3 == 0).double()
        zn, yn = z.numpy(), y.numpy()
        if branch == "bce_dice":
            p = ref.sigmoid(zn)
            with np.errstate(divide="ignore"):
                log_p, log_q = np.maximum(np.log(p), -100), np.maximum(np.log(1 - p), -100)
            bce = -(yn * log_p + (1 - yn) * log_q)
            expected = bce + 1 - ref._dice_terms(p, yn)[0]
        else:
            p = np.clip(ref.sigmoid(zn), 1e-7, 1 - 1e-7)
            expected = ref.FORMULAS[branch](p, 1 - p, yn)
        got = branch_loss(branch, z, y, numerics="paper", reduction="none").numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_half_precision_is_upcast_to_float32(self, dtype):
        masks = masks_with_areas(AREAS_FOR["fisher"])
        logits = torch.randn(masks.shape).to(dtype).requires_grad_(True)
        for loss_fn in (CALFLoss(), CALFLoss(reduction="none"), RegionCALFLoss(grid=2)):
            out = loss_fn(logits, masks.to(dtype))
            assert out.dtype == torch.float32
            reference = loss_fn(logits.detach().float(), masks)
            torch.testing.assert_close(out, reference, rtol=0, atol=0)

    def test_float32_stays_float32(self):
        z = torch.randn(2, 1, 4, 4)
        assert branch_loss("arcsine", z, (z > 0).double()).dtype == torch.float32


class TestTheOptionName:
    def test_stable_is_gone_with_an_explanation(self):
        z = torch.zeros(2, 1, 4, 4)
        makers = [
            lambda: branch_loss("ln", z, z, numerics="stable"),
            lambda: CALFLoss(numerics="stable"),
            lambda: RegionCALFLoss(numerics="stable"),
            lambda: build_loss("calf", numerics="stable"),
            lambda: build_loss("calf-region", numerics="stable"),
        ]
        for make in makers:
            with pytest.raises(ValueError, match="numerics='stable' no longer exists") as info:
                make()
            assert "'bounded', 'paper'" in str(info.value)
            assert "no minimum" in str(info.value)

    @pytest.mark.parametrize("value", ["exact", "Paper", None])
    def test_unknown_values_name_the_valid_ones(self, value):
        with pytest.raises(ValueError, match=r"unknown numerics .*; valid names: bounded, paper"):
            CALFLoss(numerics=value)
        with pytest.raises(ValueError, match=r"unknown numerics .*; valid names: bounded, paper"):
            branch_loss("fisher", torch.zeros(3), torch.zeros(3), numerics=value)

    def test_clamp_is_no_longer_an_option(self):
        with pytest.raises(TypeError, match="clamp"):
            CALFLoss(clamp="paper")  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="does not take the option"):
            build_loss("calf", clamp="paper")

    def test_default_is_bounded(self):
        assert CALFLoss().numerics == "bounded"
        assert RegionCALFLoss().numerics == "bounded"
