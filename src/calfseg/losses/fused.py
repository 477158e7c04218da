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


def _inside_bound(grad: torch.Tensor, z: torch.Tensor, *, in_place: bool) -> torch.Tensor:
    """``grad`` where ``-L < z < L``, else 0, in one pass: the derivative of
    ``clamp(z, -L, L)`` applied to ``grad`` (aten's ``hardtanh_backward`` is exactly that
    operation). ``in_place``: write into ``grad`` (a fresh buffer of the backward) instead
    of a new tensor (needed when ``grad`` is a saved tensor)."""
    if in_place:
        op = torch.ops.aten.hardtanh_backward.grad_input
        return op(grad, z, -BOUND, BOUND, grad_input=grad)
    return torch.ops.aten.hardtanh_backward(grad, z, -BOUND, BOUND)


_LN2_CPU = torch.tensor(_LN2, dtype=torch.float64)  # a CPU scalar: no per-call tensor


def _ln2_minus_(t: torch.Tensor) -> torch.Tensor:
    """``t <- ln 2 - t`` in place. On a CPU in one pass, with a CPU 0-d ln 2 as the first
    operand (``rsub`` has no ``out=``); elsewhere in two (``-t``, then ``+ ln 2``), with
    Python scalars only: a device tensor made per call would copy from the host, and that
    copy synchronises on CUDA."""
    if t.device.type == "cpu":
        return torch.sub(_LN2_CPU, t, out=t)
    return t.neg_().add_(_LN2)


class FisherMean(torch.autograd.Function):
    """mean(-0.5 softplus(t)), t = ln 2 + (2y - 1) zc, zc = clamp(z, -L, L);
    d/dz = 0.5 (1 - 2y) sigmoid(t) where |z| < L, else 0.

    ``-0.5 softplus(ln 2 + z)`` is ``-atanh(sigmoid(z))`` and ``-0.5 softplus(ln 2 - z)`` is
    ``-atanh(1 - sigmoid(z))``; folding the two into the sign ``2y - 1`` is exact for y in {0, 1}.
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # t built in the clamp's buffer (a fresh full-size CPU buffer costs about one pass):
        # (1 - 2y) zc in place, then ln 2 minus it, in place too.
        t = z.clamp(-BOUND, BOUND)
        _ln2_minus_(t.addcmul_(y, t, value=-2.0))
        ctx.save_for_backward(t, y, z)
        return F.softplus(t).sum().mul_(-0.5 / z.numel())

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        t, y, z = ctx.saved_tensors
        out = torch.sigmoid(t)
        out.addcmul_(y, out, value=-2.0)  # (1 - 2y) sigmoid(t)
        _inside_bound(out, z, in_place=True)
        return out.mul_(grad * (0.5 / t.numel())), None


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
        inside = _inside_bound(sign, z, in_place=False)  # sign stays saved
        return inside.mul_(grad / sign.numel()), None


class ArcsineMean(torch.autograd.Function):
    """mean((1 - 2y) A + (y - 1) pi/2), A = asin(sqrt(sigmoid(z))) = atan(e) with e = e^{z/2}
    (because tan^2 A = p / (1 - p) = e^z). For y = 1 the loss is -A, for y = 0 it is
    A - pi/2 = -asin(sqrt(1 - sigmoid(z))), as in the definition.

    dA/dz = (1/2) e / (1 + e^2) = 1 / (2 (e + 1/e)); the second form is also right where
    ``e`` under- or overflows (0 or inf give 0), so d/dz = (1 - 2y) / (2 (e + 1/e)).
    (``atan`` of an exponential replaces ``atan2`` of two sigmoids: a third of the cost.)
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = torch.mul(z, 0.5).exp_()
        angle = torch.atan(e)
        ctx.save_for_backward(e, y)
        n = z.numel()
        total = angle.sum() - 2.0 * _dot(y, angle) + _HALF_PI * (y.sum() - n)
        return total / n

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        e, y = ctx.saved_tensors
        out = torch.reciprocal(e).add_(e).reciprocal_()  # 1 / (e + 1/e)
        out.addcmul_(y, out, value=-2.0)  # (1 - 2y) / (e + 1/e)
        return out.mul_(grad * (0.5 / e.numel())), None


class BCEDiceMean(torch.autograd.Function):
    """mean BCE(z, y) + 1 - D,  D = (2 I + eps) / (U + eps),  I = sum(p y),  U = sum(p) + sum(y).

    BCE per element is ``softplus(z) - y z``. d/dz_i = (p_i - y_i) / n + (b - a y_i) p_i (1 - p_i),
    with a = 2 / (U + eps) and b = (2 I + eps) / (U + eps)^2 (dD/dp_i = a y_i - b).
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = z.numel()
        buffer = F.softplus(z)
        bce = buffer.addcmul_(y, z, value=-1.0).sum() / n
        p = torch.sigmoid(z, out=buffer)  # the softplus buffer, reused: one allocation fewer
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
        # Scalars stay 0-d tensors (no host read), with the upstream gradient folded in; one
        # full-size buffer, updated in place (a fresh CPU buffer costs as much as a pass).
        a = grad * 2.0 / denom
        b = grad * (2.0 * inter + _DICE_EPS) / (denom * denom)
        per_n = grad / n
        out = torch.addcmul(b, y, a, value=-1.0)  # b - a y
        out.mul_(p).addcmul_(out, p, value=-1.0)  # * p (1 - p)
        return out.addcmul_(p, per_n).addcmul_(y, per_n, value=-1.0), None  # + (p - y) / n


class BCEMean(torch.autograd.Function):
    """mean(softplus(z) - y z), the BCE with logits (the ``ln`` branch);
    d/dz = (sigmoid(z) - y) / n.

    torch's ``binary_cross_entropy_with_logits`` makes about five full-size passes forward
    (``1 - y``, a product, ``log_sigmoid`` with its buffer, a subtraction, the mean) and
    three backward; this makes three and three (softplus, the in-place ``- y z``, the sum;
    sigmoid, ``- y``, the scale): 0.7-0.9x of it on a CPU with the target check included
    (``benchmarks/bench_losses.py``), inside the 1.1x budget of issue 11. The subtraction is
    per element, before the sum: ``sum(softplus(z)) - dot(y, z)`` would be one pass fewer
    but cancels catastrophically once the network is confident (relative error 2e-3 for 32k
    logits with |z| in [8, 15] on the right side, where this form's is below 1e-5, like
    torch's).
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z, y)
        return F.softplus(z).addcmul_(y, z, value=-1.0).sum().div_(z.numel())

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        z, y = ctx.saved_tensors
        return torch.sigmoid(z).sub_(y).mul_(grad / z.numel()), None


def ln_mean(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if y.requires_grad:  # soft labels that want a gradient (distillation): torch's BCE has one
        return F.binary_cross_entropy_with_logits(z, y)
    return BCEMean.apply(z, y)


def log10_mean(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # ln's value / ln 10, as the device pick computes it from the shared ln: the same bits.
    return ln_mean(z, y) / math.log(10.0)


BOUNDED_MEAN = {
    "fisher": FisherMean.apply,
    "logit": LogitMean.apply,
    "arcsine": ArcsineMean.apply,
    "log10": log10_mean,
    "ln": ln_mean,
    "bce_dice": BCEDiceMean.apply,
}
