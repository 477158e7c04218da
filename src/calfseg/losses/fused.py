"""Mean-reduced bounded branch losses with hand-written gradients, for speed.

Composed from autograd primitives, fisher costs about 3.7x and arcsine about 4x a
``BCEWithLogitsLoss`` forward+backward on a CPU (torch's ``softplus``, ``tanh`` and ``atan``
are slow there, and every intermediate is a full-size tensor that autograd keeps). These
``autograd.Function`` s compute the same values as the per-element forms of
:mod:`calfseg.losses.branches` with few full-size passes, reduce inside the forward, and
write the gradient directly (derivations below). ``tests/losses/test_fused.py`` checks them
against the per-element forms; ``benchmarks/bench_losses.py`` measures them.

Every function takes logits ``z`` and target ``y`` of one shape and one floating dtype (the
compute dtype: float32, or float64 for float64 logits) and returns the mean over all
elements in that dtype; gradients flow to ``z`` only. fisher and logit have the paper's
bound built in: the forward uses ``z`` clamped to ``[-BOUND, BOUND]`` and the backward is
zero where ``|z| >= BOUND`` (zero at the bound itself too, a set of measure zero).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

BOUND = math.log((1.0 - 1e-7) / 1e-7)
"""L = ln((1 - 1e-7) / 1e-7) = 16.118...: sigmoid(+-L) is exactly the paper's clamp of p."""
_LN2 = math.log(2.0)
_HALF_PI = math.pi / 2.0
_DICE_EPS = 1e-7


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum(a * b) without a full-size temporary where the layout allows."""
    if a.is_contiguous() and b.is_contiguous():
        return torch.dot(a.view(-1), b.view(-1))
    return (a * b).sum()


def _inside_bound(grad: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``grad`` where ``-L < z < L``, else 0, in one pass: the derivative of ``clamp(z, -L, L)``
    applied to ``grad`` (aten's ``hardtanh_backward`` is exactly that operation)."""
    return torch.ops.aten.hardtanh_backward(grad, z, -BOUND, BOUND)


class FisherMean(torch.autograd.Function):
    """mean(-0.5 softplus(t)), t = ln 2 + (2y - 1) zc, zc = clamp(z, -L, L);
    d/dz = 0.5 (1 - 2y) sigmoid(t) where |z| < L, else 0.

    ``-0.5 softplus(ln 2 + z)`` is ``-atanh(sigmoid(z))`` and ``-0.5 softplus(ln 2 - z)`` is
    ``-atanh(1 - sigmoid(z))``; folding the two into the sign ``2y - 1`` is exact for y in {0, 1}.
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        zc = z.clamp(-BOUND, BOUND)
        t = torch.rsub(zc, _LN2).addcmul_(y, zc, value=2.0)  # ln2 - zc + 2y zc
        ctx.save_for_backward(t, y, z)
        return F.softplus(t).sum().mul_(-0.5 / z.numel())

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        t, y, z = ctx.saved_tensors
        out = torch.sigmoid(t)
        out.addcmul_(y, out, value=-2.0)  # (1 - 2y) sigmoid(t)
        return _inside_bound(out, z).mul_(grad * (0.5 / t.numel())), None


class LogitMean(torch.autograd.Function):
    """mean((1 - 2y) zc), zc = clamp(z, -L, L);  d/dz = 1 - 2y where |z| < L, else 0."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # sum(zc) - 2 sum(y zc) would cancel catastrophically; keep the sign per element.
        sign = torch.rsub(y, 1.0, alpha=2.0)
        ctx.save_for_backward(sign, z)
        return _dot(sign, z.clamp(-BOUND, BOUND)) / z.numel()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        sign, z = ctx.saved_tensors
        return _inside_bound(sign, z).mul_(grad / sign.numel()), None


class ArcsineMean(torch.autograd.Function):
    """mean((1 - 2y) A + (y - 1) pi/2), A = asin(sqrt(sigmoid(z))) = atan2(s, 1 - s) with
    s = sigmoid(z/2) (because s / (1 - s) = e^{z/2} = tan A). For y = 1 the loss is -A, for
    y = 0 it is A - pi/2 = -asin(sqrt(1 - sigmoid(z))), as in the definition.

    dA/dz = s c / (2 (s^2 + c^2)) with c = 1 - s, and s^2 + c^2 = 1 - 2 s c, so with
    u = s (1 - s): d/dz = (1 - 2y) u / (2 (1 - 2u)).
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = torch.mul(z, 0.5).sigmoid_()
        angle = torch.atan2(s, torch.rsub(s, 1.0))
        ctx.save_for_backward(s, y)
        n = z.numel()
        total = angle.sum() - 2.0 * _dot(y, angle) + _HALF_PI * (y.sum() - n)
        return total / n

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        s, y = ctx.saved_tensors
        out = torch.addcmul(s, s, s, value=-1.0)  # u = s (1 - s), at most 1/4
        out.div_(torch.rsub(out, 1.0, alpha=2.0))  # u / (1 - 2u)
        out.addcmul_(y, out, value=-2.0)  # (1 - 2y) u / (1 - 2u)
        return out.mul_(grad * (0.5 / s.numel())), None


class BCEDiceMean(torch.autograd.Function):
    """mean BCE(z, y) + 1 - D,  D = (2 I + eps) / (U + eps),  I = sum(p y),  U = sum(p) + sum(y).

    BCE per element is ``softplus(z) - y z``. d/dz_i = (p_i - y_i) / n + (b - a y_i) p_i (1 - p_i),
    with a = 2 / (U + eps) and b = (2 I + eps) / (U + eps)^2 (dD/dp_i = a y_i - b).
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = z.numel()
        bce = F.softplus(z).addcmul_(y, z, value=-1.0).sum() / n
        p = torch.sigmoid(z)
        inter = _dot(p, y)
        union = p.sum() + y.sum()
        dice = (2.0 * inter + _DICE_EPS) / (union + _DICE_EPS)
        ctx.save_for_backward(p, y, inter, union)
        return bce + (1.0 - dice)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        p, y, inter, union = ctx.saved_tensors
        n = p.numel()
        denom = union + _DICE_EPS
        a = 2.0 / denom
        b = (2.0 * inter + _DICE_EPS) / (denom * denom)
        out = torch.mul(y, -a).add_(b)  # b - a y
        out.mul_(torch.addcmul(p, p, p, value=-1.0))  # * p (1 - p)
        out.add_(p, alpha=1.0 / n).sub_(y, alpha=1.0 / n)
        return out.mul_(grad), None


def ln_mean(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(z, y)


def log10_mean(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(z, y) / math.log(10.0)


BOUNDED_MEAN = {
    "fisher": FisherMean.apply,
    "logit": LogitMean.apply,
    "arcsine": ArcsineMean.apply,
    "log10": log10_mean,
    "ln": ln_mean,
    "bce_dice": BCEDiceMean.apply,
}
