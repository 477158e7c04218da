"""The fused mean-reduced bounded losses equal the per-element forms, values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from calfseg.losses.branches import branch_terms
from calfseg.losses.fused import BOUNDED_MEAN
from calfseg.rule import BRANCHES


def _inputs(dtype=torch.float32, seed=0, shape=(4, 1, 16, 16)):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(shape, generator=g) * 6).to(dtype)
    z.view(-1)[:6] = torch.tensor([-1e4, -200.0, -30.0, 30.0, 200.0, 1e4], dtype=dtype)
    y = (torch.rand(shape, generator=g) < 0.3).to(dtype)
    return z, y


@pytest.mark.parametrize("branch", BRANCHES)
def test_fused_equals_per_element_form(branch):
    z, y = _inputs()
    z1 = z.clone().requires_grad_(True)
    z2 = z.clone().requires_grad_(True)
    fused = BOUNDED_MEAN[branch](z1, y)
    composed = branch_terms(branch, z2, y).mean()
    fused.backward()
    composed.backward()
    assert fused.item() == pytest.approx(composed.item(), rel=1e-5, abs=1e-6)
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("branch", BRANCHES)
def test_fused_gradcheck_float64(branch):
    z, y = _inputs(torch.float64, seed=1, shape=(2, 1, 4, 4))
    z = z.clamp(-25, 25).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: BOUNDED_MEAN[branch](t, y), (z,))


@pytest.mark.parametrize("branch", BRANCHES)
def test_fused_handles_non_contiguous_views(branch):
    z, y = _inputs(shape=(4, 3, 8, 8))
    view_z, view_y = z[:, 1], y[:, 1]
    assert not view_z.is_contiguous()
    expected = BOUNDED_MEAN[branch](view_z.contiguous(), view_y.contiguous())
    assert BOUNDED_MEAN[branch](view_z, view_y).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("branch", BRANCHES)
def test_fused_gradient_scales_with_upstream_gradient(branch):
    z, y = _inputs(seed=2)
    z1 = z.clone().requires_grad_(True)
    z2 = z.clone().requires_grad_(True)
    BOUNDED_MEAN[branch](z1, y).backward()
    (3.0 * BOUNDED_MEAN[branch](z2, y)).backward()
    torch.testing.assert_close(z2.grad, 3.0 * z1.grad)


@pytest.mark.parametrize("branch", BRANCHES)
def test_fused_computes_in_the_input_dtype(branch):
    z, y = _inputs(torch.float64, seed=3)
    z.requires_grad_(True)
    value = BOUNDED_MEAN[branch](z, y)
    value.backward()
    assert value.dtype == z.grad.dtype == torch.float64
    # A float64-only digit: 1e-6 on one logit of 1024 moves the mean by about 1e-9 x its
    # gradient, below float32 resolution.
    nudged = z.detach().clone()
    nudged.view(-1)[10] += 1e-6
    assert BOUNDED_MEAN[branch](nudged, y).item() != value.item()


@pytest.mark.parametrize("branch", ["fisher", "logit"])
def test_fused_bound_is_built_in(branch):
    bound = math.log((1 - 1e-7) / 1e-7)
    z = torch.tensor([bound + 0.01, 30.0, -bound - 0.01, -30.0, 3.0], requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
    value = BOUNDED_MEAN[branch](z, y)
    value.backward()
    clamped = z.detach().clamp(-bound, bound)
    assert value.item() == pytest.approx(branch_terms(branch, clamped, y).mean().item(), rel=1e-6)
    assert torch.equal(z.grad[:4], torch.zeros(4)) and z.grad[4] != 0


@pytest.mark.parametrize("branch", ["ln", "log10"])
def test_fused_bce_stays_accurate_when_the_network_is_confident(branch):
    # Confidently right logits, |z| in [8, 15]: the loss is about 5e-5 per pixel, so
    # sum(softplus(z)) - sum(y z) would cancel two sums of about 1e6 (relative error ~1e-2).
    g = torch.Generator().manual_seed(4)
    y = (torch.rand(8, 1, 64, 64, generator=g) < 0.3).double()
    z = (2.0 * y - 1.0) * torch.empty(y.shape, dtype=torch.float64).uniform_(8.0, 15.0, generator=g)
    scale = 1.0 if branch == "ln" else 1.0 / math.log(10.0)
    exact = torch.nn.functional.binary_cross_entropy_with_logits(z, y).item() * scale
    assert BOUNDED_MEAN[branch](z.float(), y.float()).item() == pytest.approx(exact, rel=1e-4)


@pytest.mark.parametrize("branch", ["ln", "log10"])
def test_fused_bce_passes_a_gradient_to_a_target_that_wants_one(branch):
    z, y = _inputs(seed=5)
    soft = torch.rand(y.shape, generator=torch.Generator().manual_seed(6)).requires_grad_(True)
    BOUNDED_MEAN[branch](z, soft).backward()
    reference = soft.detach().clone().requires_grad_(True)
    scale = 1.0 if branch == "ln" else 1.0 / math.log(10.0)
    (torch.nn.functional.binary_cross_entropy_with_logits(z, reference) * scale).backward()
    torch.testing.assert_close(soft.grad, reference.grad)
