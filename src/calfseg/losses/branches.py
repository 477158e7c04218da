"""The six per-pixel branch losses of CALF, as functions of logits (docs/method.md section 3).

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

Two numerics, chosen by ``numerics``. For fisher and logit both are the paper's bounded
objective and differ only by rounding; for the other four branches they agree inside the
bound and differ beyond it, as described below.

- ``"bounded"`` (default) evaluates the paper's functions exactly, in log space:

  * fisher and logit on the logit clamped to ``[-L, L]``, ``L = ln((1 - 1e-7) / 1e-7)`` =
    16.118..., where ``sigmoid(+-L)`` is exactly the paper's clamp of p to
    [1e-7, 1 - 1e-7]. So the values equal the paper's clamped ones in exact arithmetic, the
    loss is bounded (fisher in about [-8.4, 0], logit in [-L, L]), and the gradient is zero
    beyond the bound, as in the paper. The identities (derived for this project):
    ``atanh(sigmoid(z)) = 0.5 ln(1 + 2 e^z) = 0.5 softplus(z + ln 2)``,
    ``atanh(1 - sigmoid(z)) = 0.5 softplus(ln 2 - z)``, so for y in {0, 1} the fisher loss
    is ``-0.5 softplus(ln 2 + (2y - 1) z)`` (a fractional y interpolates inside the
    softplus); ``logit(sigmoid(z)) = z``, so the logit loss is ``(1 - 2y) z``;
  * arcsine without a clamp (it is bounded in [-pi/2, 0] anyway):
    ``asin(sqrt(sigmoid(z))) = atan(e^{z/2}) = atan2(s, 1 - s)`` with ``s = sigmoid(z/2)``,
    and ``asin(sqrt(1 - sigmoid(z))) = pi/2 - atan2(s, 1 - s)`` (the fused mean evaluates
    ``atan(e^{z/2})``, the per-element map ``atan2``);
  * ln and log10 as the exact, unclamped BCE with logits, ``softplus(z) - y z`` (divided by
    ln 10 for log10; the map is torch's ``binary_cross_entropy_with_logits``, the mean
    :class:`calfseg.losses.fused.BCEMean`): the clamp bounds nothing there, it only stops
    confident errors from learning;
  * bce_dice as that exact BCE plus ``1 - Dice`` on the unclamped p.

  With ``reduction="mean"`` these run as fused autograd functions with hand-written
  gradients (:mod:`calfseg.losses.fused`), for speed; ``"none"`` composes the same formulas
  from autograd primitives.
- ``"paper"`` is the authors' literal code: ``p = sigmoid(z)`` clamped to
  [1e-7, 1 - 1e-7] before the first five formulas, evaluated as written (in float32 for
  float32 logits, where ``1 - 1e-7`` rounds to ``1 - 1.19e-7``). The clamp zeroes the
  gradient wherever ``|z|`` exceeds about 16, confident errors included. ``bce_dice`` uses
  the unclamped ``p`` with ``torch.nn.functional.binary_cross_entropy`` (logs floored at
  -100).

Where the two differ. fisher and logit: only by rounding, but the paper's float32 rounding is
not small near the bound: ``1 - p`` is a multiple of 6e-8 near 1, and ``1 - 1e-7`` itself
rounds to ``1 - 1.19e-7``, so on that side the paper's floor is -8.318 for fisher (bounded:
-8.406) and 15.94 for logit (bounded: 16.12); in float64 the two agree within 6e-10.
arcsine, ln and log10: the same up to rounding for ``|z| <= L``; beyond it the paper's clamp
freezes the value (arcsine's off by at most about 3.5e-4, asin(sqrt(1.19e-7))) and zeroes
the gradient, also on confidently wrong pixels, where the bounded form keeps the exact
function and its gradient.
bce_dice: the same up to rounding until float32 p rounds to 1 (z above about 17); there a
pixel with y = 0 gets the paper's BCE of 100 (torch's log floor) with zero gradient, where
the bounded one keeps growing linearly with gradient 1.

What the formulas do to training (true in both numerics, and part of the method): fisher,
logit and arcsine are negative on correct predictions; their gradients do not behave like
BCE's: fisher's and arcsine's vanish on confident errors, and fisher's and logit's vanish
beyond the bound.

Precision follows the logits (:func:`calfseg.losses.inputs.compute_dtype`): float64 logits
are computed in float64, everything else in float32 (float16/bfloat16 are upcast); the
target is cast to that dtype and autocast is disabled inside.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from calfseg.errors import OptionError, check_choice
from calfseg.losses.fused import BOUND, BOUNDED_MEAN
from calfseg.losses.inputs import REDUCTIONS, Reduction, autocast_off, prepare_pair
from calfseg.rule import BRANCHES

Numerics = Literal["bounded", "paper"]
NUMERICS: tuple[str, ...] = ("bounded", "paper")

PAPER_EPS = 1e-7  # the authors' clamp of p, and the smoothing of bce_dice's Dice
_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_HALF_PI = math.pi / 2.0

ElementwiseLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_numerics(numerics: object) -> None:
    """Raise a ValueError naming the valid numerics; explain what became of ``"stable"``."""
    if numerics == "stable":
        raise OptionError(
            f"numerics='stable' no longer exists; valid: {NUMERICS}. Use 'bounded' (the "
            "default): the unbounded form had no minimum for fisher and logit, so it changed "
            "the paper's objective"
        )
    check_choice("numerics", numerics, NUMERICS)


def _paper_probability(z: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(z).clamp(PAPER_EPS, 1.0 - PAPER_EPS)


# -- per-element terms: (logits z, target y) of the compute dtype -> map of that dtype --------


def _fisher_bounded(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -0.5 * F.softplus(_LN2 + (2.0 * y - 1.0) * z.clamp(-BOUND, BOUND))


def _atanh_paper(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.log((1.0 + x) / (1.0 - x))


def _logit_of_paper(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x / (1.0 - x))


def _fisher_paper(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = _paper_probability(z)
    return -(y * _atanh_paper(p) + (1.0 - y) * _atanh_paper(1.0 - p))


def _logit_bounded(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (1.0 - 2.0 * y) * z.clamp(-BOUND, BOUND)


def _logit_paper(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = _paper_probability(z)
    return -(y * _logit_of_paper(p) + (1.0 - y) * _logit_of_paper(1.0 - p))


def _arcsine_bounded(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(0.5 * z)
    angle = torch.atan2(s, 1.0 - s)  # asin(sqrt(sigmoid(z)))
    return (1.0 - 2.0 * y) * angle + (y - 1.0) * _HALF_PI


def _arcsine_paper(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = _paper_probability(z)
    return -(y * torch.asin(torch.sqrt(p)) + (1.0 - y) * torch.asin(torch.sqrt(1.0 - p)))


def _ln_bounded(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(z, y, reduction="none")


def _ln_paper(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = _paper_probability(z)
    return -(y * torch.log(p) + (1.0 - y) * torch.log(1.0 - p))


def _log10_bounded(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _ln_bounded(z, y) / _LN10


def _log10_paper(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = _paper_probability(z)
    return -(y * torch.log10(p) + (1.0 - y) * torch.log10(1.0 - p))


def _soft_dice(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One Dice over everything given: (2 sum(p y) + 1e-7) / (sum(p) + sum(y) + 1e-7)."""
    return (2.0 * (p * y).sum() + PAPER_EPS) / (p.sum() + y.sum() + PAPER_EPS)


def bce_dice_terms(
    z: torch.Tensor, y: torch.Tensor, *, numerics: Numerics, clamp_probability: bool = False
) -> torch.Tensor:
    """Per-element BCE plus the scalar ``1 - Dice`` of all elements.

    ``clamp_probability`` clamps p to [1e-7, 1 - 1e-7] before both terms, as the authors'
    region-specific CALF does (docs/method.md section 4).
    """
    if clamp_probability:
        p = _paper_probability(z)
        bce = -(y * torch.log(p) + (1.0 - y) * torch.log(1.0 - p))
    elif numerics == "paper":
        p = torch.sigmoid(z)
        bce = F.binary_cross_entropy(p, y, reduction="none")
    else:
        p = torch.sigmoid(z)
        bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    return bce + (1.0 - _soft_dice(p, y))


ELEMENTWISE: dict[str, dict[str, ElementwiseLoss]] = {
    "bounded": {
        "fisher": _fisher_bounded,
        "logit": _logit_bounded,
        "arcsine": _arcsine_bounded,
        "log10": _log10_bounded,
        "ln": _ln_bounded,
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
    numerics: Numerics = "bounded",
    clamp_probability: bool = False,
) -> torch.Tensor:
    """Per-element loss map of one branch for prepared ``z`` and ``y`` (same floating dtype;
    no checks, no autocast handling: the callers prepare the inputs). ``bce_dice`` includes
    its scalar Dice term."""
    if branch == "bce_dice":
        return bce_dice_terms(z, y, numerics=numerics, clamp_probability=clamp_probability)
    return ELEMENTWISE[numerics][branch](z, y)


def branch_mean(
    branch: str,
    z: torch.Tensor,
    y: torch.Tensor,
    *,
    numerics: Numerics = "bounded",
    clamp_probability: bool = False,
) -> torch.Tensor:
    """Mean of :func:`branch_terms`; the bounded numerics take the fused path."""
    if numerics == "bounded" and not clamp_probability:
        return BOUNDED_MEAN[branch](z, y)
    return branch_terms(branch, z, y, numerics=numerics, clamp_probability=clamp_probability).mean()


def branch_loss(
    branch: str,
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    numerics: Numerics = "bounded",
    reduction: Reduction = "mean",
    validate: bool = False,
) -> torch.Tensor:
    """The loss of the named branch (one of :data:`calfseg.rule.BRANCHES`).

    Args:
        branch: ``fisher``, ``logit``, ``arcsine``, ``log10``, ``ln`` or ``bce_dice``.
        logits: raw scores, any shape, any floating dtype.
        target: mask of the same shape, values in [0, 1] (outside is an error: a 0/255 mask
            must be divided by 255 or binarised first).
        numerics: ``"bounded"`` (default: the paper's functions and bound, evaluated
            exactly) or ``"paper"`` (the authors' literal code); see the module docstring.
        reduction: ``"mean"`` over all elements, or ``"none"`` for the per-element map.
        validate: also reject NaN/inf logits and targets outside {0, 1} (synchronises).

    Returns:
        A scalar, or a map of the logits' shape: float64 for float64 logits, float32
        otherwise.
    """
    check_choice("branch", branch, BRANCHES)
    check_numerics(numerics)
    check_choice("reduction", reduction, REDUCTIONS)
    z, y = prepare_pair(logits, target, validate=validate)
    with autocast_off(z.device):
        if reduction == "mean":
            return branch_mean(branch, z, y, numerics=numerics)
        return branch_terms(branch, z, y, numerics=numerics)


def _functional(branch: str) -> Callable[..., torch.Tensor]:
    def loss(
        logits: torch.Tensor,
        target: torch.Tensor,
        *,
        numerics: Numerics = "bounded",
        reduction: Reduction = "mean",
        validate: bool = False,
    ) -> torch.Tensor:
        return branch_loss(
            branch, logits, target, numerics=numerics, reduction=reduction, validate=validate
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


class BranchLoss(nn.Module):
    """One of CALF's branches as a fixed loss: what CALF trains with when its rule picks
    ``branch`` at every step (the registry's ``branch-<name>`` losses, and the arms of
    ``calf study rule``). ``forward(logits, target)`` is :func:`branch_loss`."""

    def __init__(
        self, branch: str, *, numerics: Numerics = "bounded", validate: bool = False
    ) -> None:
        super().__init__()
        check_choice("branch", branch, BRANCHES)
        check_numerics(numerics)
        self.branch, self.numerics, self.validate = branch, numerics, validate

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return branch_loss(
            self.branch, logits, target, numerics=self.numerics, validate=self.validate
        )

    def extra_repr(self) -> str:
        return f"branch={self.branch!r}, numerics={self.numerics!r}"
