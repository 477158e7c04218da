"""The paper's baseline losses, as the authors define them (docs/method.md section 5, the authors'
``scripts/loss_functions.py``), by default.

Notation: ``z`` the logits, ``p = sigmoid(z)``, ``y`` in {0, 1}; TP = sum(p y),
FP = sum(p (1 - y)), FN = sum((1 - p) y); "image" means the sums run over the pixels of one
image and the per-image values are averaged over the batch. Every factory returns a module
mapping logits and target ``(B, 1, H, W)`` to a scalar (see :mod:`calfseg.losses.adapter`).

=========  =====================================================================  =========
name       the authors' definition (the default)                                  sums over
=========  =====================================================================  =========
bce        mean over pixels of softplus(z) - y z  (BCE with logits)               pixels
dice       1 - mean_i 2 TP_i / (sum_i(p) + sum_i(y) + 1e-5)                       image
focal      mean over pixels of a_t w BCE(q), q = clamp(p, 1e-6, 1 - 1e-6),        pixels
           w = (y (1 - q) + (1 - y) q)^2, a_t = 0.25 (y = 1) or 0.75 (y = 0)
tversky    1 - mean_i TP_i / (TP_i + 0.7 FP_i + 0.3 FN_i + 1e-5)                  image
iou        1 - mean_i TP_i / (sum_i(p) + sum_i(y) - TP_i + 1e-5)                  image
combo      bce + dice                                                             -
=========  =====================================================================  =========

Other variants, only under explicit options:

- ``tversky`` with ``per_image=False``: one index with TP, FP, FN summed over the whole
  batch. This changes training: an image with an empty truth then adds its false positives
  to the batch's FP and gets a gradient, where per image its index is exactly 0 with ZERO
  gradient (TP_i = 0 whatever the prediction).
- ``focal`` with ``eps=None``: no clamp, the focal loss of Lin et al. 2017 as MONAI's
  ``FocalLoss`` computes it (log-sigmoid, exact for any logit). The authors' clamp bounds
  each pixel's BCE at -ln(1e-6) = 13.8 and zeroes its gradient beyond |z| of about 13.8: on
  logits 20 N(0, 1) (8 x 64 x 64, 20 % positives, seed 0) the authors' focal is 3.30 and the
  unclamped one 5.22 (docs/baselines.md has the command).
- ``dice``, ``iou``, ``combo`` with ``per_image=False``: the sums run over the batch.

Notes:

- Tversky: FP carries the weight 0.7 and FN 0.3, as in the authors' code: this Tversky
  penalises false positives MORE (the opposite of the usual recall-oriented 0.3/0.7 of
  Salehi et al. 2017). MONAI's ``alpha`` weights FP and ``beta`` FN; to keep that
  unambiguous the options here are called ``fp_weight`` and ``fn_weight``.
- Empty masks: the numerators of dice, iou and tversky have no smoothing, so an image with
  an empty truth has loss exactly 1 whatever the prediction, with ZERO gradient: such images
  add a constant to the mean and teach nothing. BCE and focal are per pixel and penalise
  false positives on empty images.

Implementations (each pinned against the formula, written out independently, by
tests/losses/test_registry.py):

- dice: ``monai.losses.DiceLoss(sigmoid=True, smooth_nr=0, smooth_dr=1e-5, batch=False)``.
  MONAI computes ``1 - (2 TP + nr) / (2 TP + FP + FN + dr)`` with FP = sum(p) - TP and
  FN = sum(y) - TP, i.e. ``sum(p) + sum(y) + dr`` below: the authors' Dice.
- iou: ``monai.losses.DiceLoss(jaccard=True, sigmoid=True, smooth_nr=0, smooth_dr=2e-5,
  batch=False)``: ``1 - 2 TP / (2 (TP + FP + FN) + 2e-5)`` = ``1 - TP / (union + 1e-5)``.
- tversky: ``monai.losses.TverskyLoss(sigmoid=True, alpha=0.7, beta=0.3, smooth_nr=0,
  smooth_dr=1e-5, batch=False)`` (``batch=True`` for ``per_image=False``).
- focal: :func:`clamped_focal_loss`, written here (MONAI's ``FocalLoss`` does not clamp);
  ``eps=None``: ``monai.losses.FocalLoss(alpha=0.25, gamma=2, use_softmax=False)``.
- combo: ``monai.losses.DiceCELoss(sigmoid=True, smooth_nr=0, smooth_dr=1e-5, batch=False)``:
  ``BCEWithLogitsLoss`` (mean) + the dice above, weights 1 and 1.
- bce: ``torch.nn.BCEWithLogitsLoss`` (mean).

segmentation_models_pytorch was not used for these: its DiceLoss, JaccardLoss and
TverskyLoss sum over the whole batch and set the loss of a channel with an empty truth to 0,
which is not the authors' per-image definition.
"""

from __future__ import annotations

import torch
from torch import nn

from calfseg.errors import OptionError
from calfseg.losses.adapter import BinaryLossAdapter, monai_losses
from calfseg.losses.inputs import autocast_off, compute_dtype

PAPER_SMOOTH = 1e-5  # the authors' denominator constant (Dice, IoU, Tversky)
FOCAL_EPS = 1e-6  # the authors' clamp of p in their focal loss


def _check_smooth(smooth: float) -> None:
    if not smooth > 0:
        raise OptionError(f"smooth must be > 0 (it keeps the denominator non-zero), got {smooth}")


def clamped_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    eps: float = FOCAL_EPS,
) -> torch.Tensor:
    """The authors' focal loss: the mean over every pixel of ``a_t w BCE(q)``, with
    ``q = clamp(sigmoid(z), eps, 1 - eps)``, ``BCE(q) = -(y ln q + (1 - y) ln(1 - q))``,
    ``w = (y (1 - q) + (1 - y) q)^gamma`` and ``a_t = alpha`` where y = 1, ``1 - alpha``
    where y = 0 (``alpha=None``: 1).

    The clamped probability enters both the BCE and the modulating factor, as in the authors'
    ``FocalLoss``: each pixel's BCE is at most -ln(eps), and its gradient is zero where the
    clamp is active (|z| > ln((1 - eps) / eps), about 13.8 for eps = 1e-6).

    Computed with autocast off, in float64 for float64 logits and in float32 otherwise.
    """
    dtype = compute_dtype(logits)
    with autocast_off(logits.device):
        z, y = logits.to(dtype), target.to(dtype)
        q = torch.sigmoid(z).clamp(eps, 1.0 - eps)
        bce = -(y * torch.log(q) + (1.0 - y) * torch.log(1.0 - q))
        modulation = (y * (1.0 - q) + (1.0 - y) * q) ** gamma
        per_pixel = modulation * bce
        if alpha is not None:
            per_pixel = (alpha * y + (1.0 - alpha) * (1.0 - y)) * per_pixel
        return per_pixel.mean()


class ClampedFocalLoss(nn.Module):
    """:func:`clamped_focal_loss` as a module."""

    def __init__(
        self, *, alpha: float | None = 0.25, gamma: float = 2.0, eps: float = FOCAL_EPS
    ) -> None:
        super().__init__()
        self.alpha, self.gamma, self.eps = alpha, gamma, eps

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, eps={self.eps}"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return clamped_focal_loss(logits, target, alpha=self.alpha, gamma=self.gamma, eps=self.eps)


def bce_baseline(*, validate: bool = False) -> nn.Module:
    """BCE with logits, mean over all pixels: ``softplus(z) - y z`` (stable for any ``z``)."""
    return BinaryLossAdapter(nn.BCEWithLogitsLoss(), "bce", validate=validate)


def dice_baseline(
    *, smooth: float = PAPER_SMOOTH, per_image: bool = True, validate: bool = False
) -> nn.Module:
    """Soft Dice loss ``1 - 2 sum(p y) / (sum(p) + sum(y) + smooth)``, one per image, averaged
    (``per_image=False``: one over the batch). Empty truth: loss 1, zero gradient."""
    _check_smooth(smooth)
    loss = monai_losses().DiceLoss(
        sigmoid=True, smooth_nr=0.0, smooth_dr=smooth, batch=not per_image
    )
    return BinaryLossAdapter(loss, "dice", validate=validate)


def focal_baseline(
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    eps: float | None = FOCAL_EPS,
    validate: bool = False,
) -> nn.Module:
    """The authors' focal loss, :func:`clamped_focal_loss` (p clamped to
    ``[eps, 1 - eps]``). ``eps=None``: the unclamped focal loss of Lin et al. 2017, MONAI's
    ``FocalLoss``. ``alpha`` weights the positives, ``1 - alpha`` the negatives (None: no
    weight)."""
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise OptionError(f"alpha must be in [0, 1] or None, got {alpha}")
    if gamma < 0:
        raise OptionError(f"gamma must be >= 0, got {gamma}")
    if eps is None:
        unclamped = monai_losses().FocalLoss(alpha=alpha, gamma=gamma, use_softmax=False)
        return BinaryLossAdapter(unclamped, "focal", validate=validate)
    if not 0.0 < eps < 0.5:
        raise OptionError(
            f"eps must be in (0, 0.5) (p is clamped to [eps, 1 - eps]; the authors': 1e-6) "
            f"or None (no clamp), got {eps}"
        )
    return BinaryLossAdapter(
        ClampedFocalLoss(alpha=alpha, gamma=gamma, eps=eps), "focal", validate=validate
    )


def tversky_baseline(
    *,
    fp_weight: float = 0.7,
    fn_weight: float = 0.3,
    smooth: float = PAPER_SMOOTH,
    per_image: bool = True,
    validate: bool = False,
) -> nn.Module:
    """Tversky loss ``1 - TP / (TP + fp_weight FP + fn_weight FN + smooth)``, one index per
    image, averaged (the authors'); ``per_image=False``: one index over the whole batch.
    Authors: FP 0.7, FN 0.3. Per image, an empty truth has index 0, zero gradient."""
    _check_smooth(smooth)
    if fp_weight < 0 or fn_weight < 0:
        raise OptionError(f"fp_weight and fn_weight must be >= 0, got {fp_weight}, {fn_weight}")
    loss = monai_losses().TverskyLoss(
        sigmoid=True,
        alpha=fp_weight,  # MONAI: alpha weights the false positives
        beta=fn_weight,  # and beta the false negatives
        smooth_nr=0.0,
        smooth_dr=smooth,
        batch=not per_image,
    )
    return BinaryLossAdapter(loss, "tversky", validate=validate)


def iou_baseline(
    *, smooth: float = PAPER_SMOOTH, per_image: bool = True, validate: bool = False
) -> nn.Module:
    """Soft Jaccard loss ``1 - sum(p y) / (sum(p) + sum(y) - sum(p y) + smooth)`` per image,
    averaged. Empty truth: loss 1, zero gradient."""
    _check_smooth(smooth)
    # MONAI's Jaccard is 1 - (2 TP + nr) / (2 (TP + FP + FN) + dr): dr = 2 smooth.
    loss = monai_losses().DiceLoss(
        sigmoid=True, jaccard=True, smooth_nr=0.0, smooth_dr=2.0 * smooth, batch=not per_image
    )
    return BinaryLossAdapter(loss, "iou", validate=validate)


def combo_baseline(
    *, smooth: float = PAPER_SMOOTH, per_image: bool = True, validate: bool = False
) -> nn.Module:
    """The authors' Combo: BCE with logits (mean) + their per-image Dice loss."""
    _check_smooth(smooth)
    loss = monai_losses().DiceCELoss(
        sigmoid=True, smooth_nr=0.0, smooth_dr=smooth, batch=not per_image
    )
    return BinaryLossAdapter(loss, "combo", validate=validate)
