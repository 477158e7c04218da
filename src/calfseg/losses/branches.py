"""The six per-pixel branch losses of CALF, as functions of logits (METHOD.md section 3).

With ``p = sigmoid(z)`` for a logit ``z`` and a target ``y`` in {0, 1}, each loss is the mean
over all elements (``reduction="mean"``) of:

=========  ==========================================================================
branch     per-element loss (the paper's definition)
=========  ==========================================================================
fisher     -[y atanh(p) + (1-y) atanh(1-p)],  atanh(p) = 0.5 ln((1+p)/(1-p))
logit      -[y logit(p) + (1-y) logit(1-p)],  logit(p) = ln(p/(1-p))
arcsine    -[y asin(sqrt(p)) + (1-y) asin(sqrt(1-p))]
log10      -[y log10(p) + (1-y) log10(1-p)]   (= BCE / ln 10)
ln         -[y ln(p) + (1-y) ln(1-p)]         (= BCE)
bce_dice   BCE(p, y) + 1 - Dice,  Dice = (2 sum(p y) + 1e-7) / (sum(p) + sum(y) + 1e-7)
=========  ==========================================================================

The Dice of ``bce_dice`` is ONE number for everything passed in (sums over the whole batch),
as in the authors' code; with ``reduction="none"`` that scalar ``1 - Dice`` is added to every
element, so the mean of the map equals the ``"mean"`` result. An empty target has Dice
``1e-7 / (sum(p) + 1e-7)``, close to 0 unless the prediction is empty too.

Two numerics, chosen by ``clamp``:

- ``"paper"`` reproduces the authors' code: ``p`` clamped to [1e-7, 1 - 1e-7] before the
  first five formulas, evaluated literally in float32. The clamp also zeroes the gradient
  wherever ``|z|`` exceeds about 16 (``ln((1 - 1e-7) / 1e-7)`` = 16.12), confident errors
  included: a pixel that is confidently wrong stops learning. ``bce_dice`` uses the unclamped
  ``p`` with ``torch.nn.functional.binary_cross_entropy`` (logs floored at -100).
- ``"stable"`` (default) evaluates the same functions exactly, in log space, without the
  clamp: values equal the paper's wherever the clamp is inactive, and values and gradients
  stay finite for logits up to +-1e4 and beyond. The identities used (derived for this
  project):

  * fisher: ``atanh(sigmoid(z)) = 0.5 ln(1 + 2 e^z) = 0.5 softplus(z + ln 2)`` and
    ``atanh(1 - sigmoid(z)) = 0.5 softplus(ln 2 - z)``, so for y in {0, 1} the loss is
    ``-0.5 softplus(ln 2 + (2y - 1) z)`` (a fractional y interpolates inside the softplus);
  * logit: ``logit(sigmoid(z)) = z``, so the loss is ``(1 - 2y) z``, a linear function;
  * arcsine: ``asin(sqrt(sigmoid(z))) = atan(e^{z/2}) = atan2(s, 1 - s)`` with
    ``s = sigmoid(z/2)``, and ``asin(sqrt(1 - sigmoid(z))) = pi/2 - atan2(s, 1 - s)``;
  * ln, log10: ``binary_cross_entropy_with_logits`` (softplus form), divided by ln 10 for log10.

  With ``reduction="mean"`` the stable losses run as fused autograd functions with
  hand-written gradients (:mod:`calfseg.losses.fused`), for speed; ``"none"`` composes
  the same formulas from autograd primitives.

What the formulas do to training (true in both numerics, and part of the method): fisher,
logit and arcsine are negative. arcsine is bounded in [-pi/2, 0]; fisher is in about
[-8.4, 0] only because of the paper's clamp, and logit in [-16.1, 16.1] likewise: without the
clamp both decrease without bound as a correct prediction grows more confident (the stable
numerics keep that, with a constant gradient of -1/2 resp. -1 per element). Fisher's and
arcsine's gradients vanish on confident errors, unlike BCE's.

All inputs are upcast to float32 and autocast is disabled inside, so float16/bfloat16 logits
are safe and every reduction runs in float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from calfseg.losses.fused import STABLE_MEAN
from calfseg.losses.inputs import REDUCTIONS, Reduction, check_choice, prepare_pair
from calfseg.rule import BRANCHES

Clamp = Literal["stable", "paper"]
CLAMPS: tuple[str, ...] = ("stable", "paper")

PAPER_EPS = 1e-7  # the authors' clamp of p, and the smoothing of bce_dice's Dice
_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_HALF_PI = math.pi / 2.0

ElementwiseLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _paper_probability(z: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(z).clamp(PAPER_EPS, 1.0 - PAPER_EPS)


# -- per-element terms: (float32 logits z, float32 target y) -> float32 map -----------------


def _fisher_stable(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -0.5 * F.softplus(_LN2 + (2.0 * y - 1.0) * z)


def _atanh_paper(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.log((1.0 + x) / (1.0 - x))


def _logit_of_paper(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x / (1.0 - x))


def _fisher_paper(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = _paper_probability(z)
    return -(y * _atanh_paper(p) + (1.0 - y) * _atanh_paper(1.0 - p))


def _logit_stable(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (1.0 - 2.0 * y) * z


def _logit_paper(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = _paper_probability(z)
    return -(y * _logit_of_paper(p) + (1.0 - y) * _logit_of_paper(1.0 - p))


def _arcsine_stable(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(0.5 * z)
    angle = torch.atan2(s, 1.0 - s)  # asin(sqrt(sigmoid(z)))
    return (1.0 - 2.0 * y) * angle + (y - 1.0) * _HALF_PI


def _arcsine_paper(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = _paper_probability(z)
    return -(y * torch.asin(torch.sqrt(p)) + (1.0 - y) * torch.asin(torch.sqrt(1.0 - p)))


def _ln_stable(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(z, y, reduction="none")


def _ln_paper(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = _paper_probability(z)
    return -(y * torch.log(p) + (1.0 - y) * torch.log(1.0 - p))


def _log10_stable(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _ln_stable(z, y) / _LN10


def _log10_paper(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = _paper_probability(z)
    return -(y * torch.log10(p) + (1.0 - y) * torch.log10(1.0 - p))


def _soft_dice(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One Dice over everything given: (2 sum(p y) + 1e-7) / (sum(p) + sum(y) + 1e-7)."""
    return (2.0 * (p * y).sum() + PAPER_EPS) / (p.sum() + y.sum() + PAPER_EPS)


def bce_dice_terms(
    z: torch.Tensor, y: torch.Tensor, *, clamp: Clamp, clamp_probability: bool = False
) -> torch.Tensor:
    """Per-element BCE plus the scalar ``1 - Dice`` of all elements (float32 inputs).

    ``clamp_probability`` clamps p to [1e-7, 1 - 1e-7] before both terms, as the authors'
    region-specific CALF does (METHOD.md section 4).
    """
    if clamp_probability:
        p = _paper_probability(z)
        bce = -(y * torch.log(p) + (1.0 - y) * torch.log(1.0 - p))
    elif clamp == "paper":
        p = torch.sigmoid(z)
        bce = F.binary_cross_entropy(p, y, reduction="none")
    else:
        p = torch.sigmoid(z)
        bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    return bce + (1.0 - _soft_dice(p, y))


ELEMENTWISE: dict[str, dict[str, ElementwiseLoss]] = {
    "stable": {
        "fisher": _fisher_stable,
        "logit": _logit_stable,
        "arcsine": _arcsine_stable,
        "log10": _log10_stable,
        "ln": _ln_stable,
    },
    "paper": {
        "fisher": _fisher_paper,
        "logit": _logit_paper,
        "arcsine": _arcsine_paper,
        "log10": _log10_paper,
        "ln": _ln_paper,
    },
}


def branch_terms(
    branch: str,
    z: torch.Tensor,
    y: torch.Tensor,
    *,
    clamp: Clamp = "stable",
    clamp_probability: bool = False,
) -> torch.Tensor:
    """Per-element loss map of one branch for float32 ``z`` and ``y`` (no checks, no autocast
    handling: the callers prepare the inputs). ``bce_dice`` includes its scalar Dice term."""
    if branch == "bce_dice":
        return bce_dice_terms(z, y, clamp=clamp, clamp_probability=clamp_probability)
    return ELEMENTWISE[clamp][branch](z, y)


def branch_mean(
    branch: str,
    z: torch.Tensor,
    y: torch.Tensor,
    *,
    clamp: Clamp = "stable",
    clamp_probability: bool = False,
) -> torch.Tensor:
    """Mean of :func:`branch_terms`; the stable numerics take the fused path."""
    if clamp == "stable" and not clamp_probability:
        return STABLE_MEAN[branch](z, y)
    return branch_terms(branch, z, y, clamp=clamp, clamp_probability=clamp_probability).mean()


def branch_loss(
    branch: str,
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    clamp: Clamp = "stable",
    reduction: Reduction = "mean",
    validate: bool = False,
) -> torch.Tensor:
    """The loss of the named branch (one of :data:`calfseg.rule.BRANCHES`).

    Args:
        branch: ``fisher``, ``logit``, ``arcsine``, ``log10``, ``ln`` or ``bce_dice``.
        logits: raw scores, any shape, any floating dtype.
        target: {0, 1} mask of the same shape.
        clamp: ``"stable"`` (default, exact log-space forms) or ``"paper"`` (the authors'
            clamp of p to [1e-7, 1 - 1e-7], its zero gradient included).
        reduction: ``"mean"`` over all elements, or ``"none"`` for the per-element map.
        validate: also reject NaN/inf logits and targets outside {0, 1} (synchronises).

    Returns:
        A float32 scalar, or a float32 map of the logits' shape.
    """
    check_choice("branch", branch, BRANCHES)
    check_choice("clamp", clamp, CLAMPS)
    check_choice("reduction", reduction, REDUCTIONS)
    z, y = prepare_pair(logits, target, validate=validate)
    with torch.autocast(z.device.type, enabled=False):
        if reduction == "mean":
            return branch_mean(branch, z, y, clamp=clamp)
        return branch_terms(branch, z, y, clamp=clamp)


def _functional(branch: str) -> Callable[..., torch.Tensor]:
    def loss(
        logits: torch.Tensor,
        target: torch.Tensor,
        *,
        clamp: Clamp = "stable",
        reduction: Reduction = "mean",
        validate: bool = False,
    ) -> torch.Tensor:
        return branch_loss(
            branch, logits, target, clamp=clamp, reduction=reduction, validate=validate
        )

    loss.__name__ = f"{branch}_loss"
    loss.__qualname__ = loss.__name__
    loss.__doc__ = (
        f"CALF's ``{branch}`` branch loss; see :func:`branch_loss` for the arguments and the "
        "module docstring for the formula and the two numerics."
    )
    return loss


fisher_loss = _functional("fisher")
logit_loss = _functional("logit")
arcsine_loss = _functional("arcsine")
log10_loss = _functional("log10")
ln_loss = _functional("ln")
bce_dice_loss = _functional("bce_dice")

BRANCH_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "fisher": fisher_loss,
    "logit": logit_loss,
    "arcsine": arcsine_loss,
    "log10": log10_loss,
    "ln": ln_loss,
    "bce_dice": bce_dice_loss,
}
