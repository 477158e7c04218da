"""The fused mean-reduced stable losses equal the per-element forms, values and gradients."""

from __future__ import annotations

import pytest
import torch

from calfseg.losses.branches import branch_terms
from calfseg.losses.fused import STABLE_MEAN
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
    fused = STABLE_MEAN[branch](z1, y)
    composed = branch_terms(branch, z2, y).mean()
    fused.backward()
    composed.backward()
    assert fused.item() == pytest.approx(composed.item(), rel=1e-5, abs=1e-6)
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("branch", BRANCHES)
def test_fused_gradcheck_float64(branch):
    z, y = _inputs(torch.float64, seed=1, shape=(2, 1, 4, 4))
    z = z.clamp(-25, 25).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: STABLE_MEAN[branch](t, y), (z,))


@pytest.mark.parametrize("branch", BRANCHES)
def test_fused_handles_non_contiguous_views(branch):
    z, y = _inputs(shape=(4, 3, 8, 8))
    view_z, view_y = z[:, 1], y[:, 1]
    assert not view_z.is_contiguous()
    expected = STABLE_MEAN[branch](view_z.contiguous(), view_y.contiguous())
    assert STABLE_MEAN[branch](view_z, view_y).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("branch", BRANCHES)
def test_fused_gradient_scales_with_upstream_gradient(branch):
    z, y = _inputs(seed=2)
    z1 = z.clone().requires_grad_(True)
    z2 = z.clone().requires_grad_(True)
    STABLE_MEAN[branch](z1, y).backward()
    (3.0 * STABLE_MEAN[branch](z2, y)).backward()
    torch.testing.assert_close(z2.grad, 3.0 * z1.grad)
