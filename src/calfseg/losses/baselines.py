"""The paper's baseline losses (METHOD.md section 5), built on MONAI where MONAI computes
exactly the paper's value.

Notation: ``z`` the logits, ``p = sigmoid(z)``, ``y`` in {0, 1}; sums run over the pixels of
one image (``per_image``) or over the whole batch. Every factory returns a module mapping
logits and target ``(B, 1, H, W)`` to a float32 scalar (see :mod:`calfseg.losses.adapter`).

=========  =====================================================================  =========
name       paper's definition                                                     sums over
=========  =====================================================================  =========
bce        mean_i [softplus(z_i) - y_i z_i]  (BCE with logits)                    pixels
dice       1 - 2 sum(p y) / (sum(p) + sum(y) + 1e-5), averaged over images         image
focal      mean_i a_t (1 - p_t)^2 BCE_i,  p_t = p or 1-p, a_t = 0.25 or 0.75        pixels
tversky    1 - TP / (TP + 0.7 FP + 0.3 FN + 1e-5),  TP = sum(p y),                 batch
           FP = sum(p (1 - y)), FN = sum((1 - p) y)
iou        1 - sum(p y) / (sum(p) + sum(y) - sum(p y) + 1e-5), averaged over images  image
combo      bce + dice                                                              -
=========  =====================================================================  =========

Decisions the paper leaves open, and how they are settled here:

- Tversky: METHOD.md says "per image" for Dice and IoU and not for Tversky, so TP, FP and FN
  are summed over the whole batch (one index per batch), as a flattened implementation
  does. ``per_image=True`` gives one index per image instead. FP carries the weight 0.7 and
  FN 0.3: this Tversky penalises false positives MORE (the opposite of the usual
  recall-oriented 0.3/0.7 of Salehi et al. 2017). MONAI's ``alpha`` weights FP and ``beta``
  FN; to keep that unambiguous the options here are called ``fp_weight`` and ``fn_weight``.
- IoU: the paper gives no smoothing constant; the Dice's convention is used (1e-5 in the
  denominator only).
- Empty masks: the numerators have no smoothing, so an image with an empty truth has
  Dice loss and IoU loss exactly 1 whatever the prediction, with ZERO gradient: such images
  add a constant to the mean and teach nothing. An all-empty batch gives Tversky loss 1 with
  zero gradient. BCE and Focal are per pixel and penalise false positives on empty images.

Library configurations (each pinned against the formula by tests/losses/test_registry.py):

- dice: ``monai.losses.DiceLoss(sigmoid=True, smooth_nr=0, smooth_dr=1e-5, batch=False)``.
  MONAI computes ``1 - (2 TP + nr) / (2 TP + FP + FN + dr)`` with FP = sum(p) - TP and
  FN = sum(y) - TP, i.e. ``sum(p) + sum(y) + dr`` below: the paper's Dice.
- iou: ``monai.losses.DiceLoss(jaccard=True, sigmoid=True, smooth_nr=0, smooth_dr=2e-5,
  batch=False)``: ``1 - 2 TP / (2 (TP + FP + FN) + 2e-5)`` = ``1 - TP / (union + 1e-5)``.
- tversky: ``monai.losses.TverskyLoss(sigmoid=True, alpha=0.7, beta=0.3, smooth_nr=0,
  smooth_dr=1e-5, batch=True)``.
- focal: ``monai.losses.FocalLoss(alpha=0.25, gamma=2, use_softmax=False)`` (alpha on the
  positives, 1 - alpha on the negatives; the mean over all pixels), the focal loss of
  Lin et al. 2017 as in ``torchvision.ops.sigmoid_focal_loss``.
- combo: ``monai.losses.DiceCELoss(sigmoid=True, smooth_nr=0, smooth_dr=1e-5, batch=False)``:
  ``BCEWithLogitsLoss`` (mean) + the dice above, weights 1 and 1.
- bce: ``torch.nn.BCEWithLogitsLoss`` (mean).

segmentation_models_pytorch was not used for these: its DiceLoss, JaccardLoss and
TverskyLoss sum over the whole batch and set the loss of a channel with an empty truth to 0,
which is not the paper's per-image definition.
"""

from __future__ import annotations

from torch import nn

from calfseg.losses.adapter import BinaryLossAdapter, monai_losses

PAPER_SMOOTH = 1e-5  # the paper's denominator constant (Dice, Tversky)


def _check_smooth(smooth: float) -> None:
    if not smooth > 0:
        raise ValueError(f"smooth must be > 0 (it keeps the denominator non-zero), got {smooth}")


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
    *, alpha: float | None = 0.25, gamma: float = 2.0, validate: bool = False
) -> nn.Module:
    """Focal loss (Lin et al. 2017), mean over pixels of ``a_t (1 - p_t)^gamma BCE``, with
    ``a_t = alpha`` on positives and ``1 - alpha`` on negatives (``alpha=None``: no weight)."""
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] or None, got {alpha}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    loss = monai_losses().FocalLoss(alpha=alpha, gamma=gamma, use_softmax=False)
    return BinaryLossAdapter(loss, "focal", validate=validate)


def tversky_baseline(
    *,
    fp_weight: float = 0.7,
    fn_weight: float = 0.3,
    smooth: float = PAPER_SMOOTH,
    per_image: bool = False,
    validate: bool = False,
) -> nn.Module:
    """Tversky loss ``1 - TP / (TP + fp_weight FP + fn_weight FN + smooth)``, one index over
    the batch (``per_image=True``: one per image, averaged). Paper: FP 0.7, FN 0.3."""
    _check_smooth(smooth)
    if fp_weight < 0 or fn_weight < 0:
        raise ValueError(f"fp_weight and fn_weight must be >= 0, got {fp_weight}, {fn_weight}")
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
    """The paper's Combo: BCE with logits (mean) + the paper's per-image Dice loss."""
    _check_smooth(smooth)
    loss = monai_losses().DiceCELoss(
        sigmoid=True, smooth_nr=0.0, smooth_dr=smooth, batch=not per_image
    )
    return BinaryLossAdapter(loss, "combo", validate=validate)
