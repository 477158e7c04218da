"""Common segmentation losses beyond the paper's baselines, for the benchmark.

Notation as in :mod:`calfseg.losses.baselines`. Library defaults are kept unless said
otherwise, so these are the losses people get when they reach for MONAI or smp.

===============  ==========================================================================
name             definition and implementation
===============  ==========================================================================
dice-ce          BCE + [1 - (2 TP + 1e-5) / (sum(p) + sum(y) + 1e-5)] per image:
                 ``monai.losses.DiceCELoss(sigmoid=True)`` (MONAI's defaults). Unlike the
                 paper's combo the numerator is smoothed too, so an empty truth with an empty
                 prediction scores 0, not 1.
dice-focal       Dice as in dice-ce + focal (gamma 2, no alpha weight):
                 ``monai.losses.DiceFocalLoss(sigmoid=True)``.
focal-tversky    (1 - TI)^(1/gamma), TI = (TP + 1) / (TP + 0.7 FN + 0.3 FP + 1) over the batch,
                 gamma = 4/3 (Abraham & Khan 2019, arXiv 1810.07842: recall-oriented, FN
                 weighted 0.7). TI from ``monai.losses.TverskyLoss`` (``alpha`` = FP weight,
                 ``beta`` = FN weight, smooth 1); the power is ours, because smp's
                 ``TverskyLoss(gamma=...)`` gives NaN gradients on an all-empty batch and on a
                 perfect prediction (x^0.75 at 0).
generalized-     1 - (2 w TP + 1e-5) / (w (sum(p) + sum(y)) + 1e-5), w = 1 / sum(y)^2, per image:
dice             ``monai.losses.GeneralizedDiceLoss(sigmoid=True)`` (Sudre et al. 2017). With
                 one channel the weight cancels except against the smoothing; an image with an
                 empty truth gets w = 0 (MONAI replaces the infinite weight by the largest
                 finite one over channels, here none) and so loss 0 with zero gradient.
lovasz           Lovasz hinge (Berman et al. 2018) on the logits, one Jaccard extension over
                 the batch: ``segmentation_models_pytorch.losses.LovaszLoss("binary",
                 per_image=False)``.
===============  ==========================================================================
"""

from __future__ import annotations

import torch
from torch import nn

from calfseg.errors import OptionError
from calfseg.losses.adapter import BinaryLossAdapter, monai_losses, smp_losses

MONAI_SMOOTH = 1e-5  # MONAI's default smooth_nr and smooth_dr


def dice_ce_loss(
    *,
    smooth: float = MONAI_SMOOTH,
    per_image: bool = True,
    lambda_dice: float = 1.0,
    lambda_ce: float = 1.0,
    validate: bool = False,
) -> nn.Module:
    """MONAI's DiceCELoss for one sigmoid channel: ``lambda_ce BCE + lambda_dice Dice``, the
    Dice smoothed by ``smooth`` in numerator and denominator."""
    loss = monai_losses().DiceCELoss(
        sigmoid=True,
        smooth_nr=smooth,
        smooth_dr=smooth,
        batch=not per_image,
        lambda_dice=lambda_dice,
        lambda_ce=lambda_ce,
    )
    return BinaryLossAdapter(loss, "dice-ce", validate=validate)


def dice_focal_loss(
    *,
    smooth: float = MONAI_SMOOTH,
    per_image: bool = True,
    gamma: float = 2.0,
    alpha: float | None = None,
    lambda_dice: float = 1.0,
    lambda_focal: float = 1.0,
    validate: bool = False,
) -> nn.Module:
    """MONAI's DiceFocalLoss for one sigmoid channel: ``lambda_dice Dice + lambda_focal
    Focal(gamma, alpha)``."""
    loss = monai_losses().DiceFocalLoss(
        sigmoid=True,
        smooth_nr=smooth,
        smooth_dr=smooth,
        batch=not per_image,
        gamma=gamma,
        alpha=alpha,
        lambda_dice=lambda_dice,
        lambda_focal=lambda_focal,
    )
    return BinaryLossAdapter(loss, "dice-focal", validate=validate)


class FocalTverskyLoss(nn.Module):
    """Focal Tversky loss ``(max(1 - TI, floor))^(1 / gamma)`` (Abraham & Khan 2019).

    ``TI = (TP + smooth) / (TP + fn_weight FN + fp_weight FP + smooth)`` from probabilities
    (``forward`` takes float32 logits and target; wrap it in a
    :class:`~calfseg.losses.adapter.BinaryLossAdapter` for the full contract). ``1 - TI`` is
    floored at ``floor`` (1e-6) before the power, so the gradient is finite (zero) at a
    perfect prediction, where ``x^(1/gamma)`` with ``1/gamma < 1`` has an infinite slope.
    """

    def __init__(
        self,
        *,
        fn_weight: float = 0.7,
        fp_weight: float = 0.3,
        gamma: float = 4.0 / 3.0,
        smooth: float = 1.0,
        per_image: bool = False,
        floor: float = 1e-6,
    ) -> None:
        super().__init__()
        if not gamma > 0:
            raise OptionError(f"gamma must be > 0, got {gamma}")
        if fp_weight < 0 or fn_weight < 0:
            raise OptionError(f"fp_weight and fn_weight must be >= 0, got {fp_weight}, {fn_weight}")
        if not smooth > 0:
            raise OptionError(f"smooth must be > 0, got {smooth}")
        self.gamma = gamma
        self.floor = floor
        self.tversky = monai_losses().TverskyLoss(
            sigmoid=True,
            alpha=fp_weight,
            beta=fn_weight,
            smooth_nr=smooth,
            smooth_dr=smooth,
            batch=not per_image,
            reduction="none",
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        one_minus_ti = self.tversky(logits, target)  # (1,) over the batch, (B, 1) per image
        return one_minus_ti.clamp_min(self.floor).pow(1.0 / self.gamma).mean()


def focal_tversky_loss(
    *,
    fn_weight: float = 0.7,
    fp_weight: float = 0.3,
    gamma: float = 4.0 / 3.0,
    smooth: float = 1.0,
    per_image: bool = False,
    validate: bool = False,
) -> nn.Module:
    """Focal Tversky loss with Abraham & Khan's defaults; see :class:`FocalTverskyLoss`."""
    loss = FocalTverskyLoss(
        fn_weight=fn_weight, fp_weight=fp_weight, gamma=gamma, smooth=smooth, per_image=per_image
    )
    return BinaryLossAdapter(loss, "focal-tversky", validate=validate)


def generalized_dice_loss(
    *, smooth: float = MONAI_SMOOTH, per_image: bool = True, validate: bool = False
) -> nn.Module:
    """MONAI's GeneralizedDiceLoss (square weights) for one sigmoid channel."""
    loss = monai_losses().GeneralizedDiceLoss(
        sigmoid=True, smooth_nr=smooth, smooth_dr=smooth, batch=not per_image
    )
    return BinaryLossAdapter(loss, "generalized-dice", validate=validate)


def lovasz_loss(*, per_image: bool = False, validate: bool = False) -> nn.Module:
    """smp's binary Lovasz hinge loss on the logits."""
    loss = smp_losses().LovaszLoss("binary", per_image=per_image)
    return BinaryLossAdapter(loss, "lovasz", validate=validate)
