"""The validation metric: mean per-case Dice (``val_case_dice``), and the per-image Dice kept
beside it (``val_dice``).

For each case (volume, the cache's ``case_id``) the pixel counts of all its slices are
summed, with the prediction binarised at logit > 0, and::

    Dice(case) = 2 TP / (2 TP + FP + FN)      1 when truth and prediction are both empty
    val_case_dice = mean over cases of Dice(case)

so a case with empty truth and a non-empty prediction counts 0. This is the BraTS and
nnU-Net convention (Dice over a case's voxels): a model that finds nothing scores 0 on every
case with a lesion, whereas the per-image mean with empty-on-empty = 1 rewards it with the
share of tumour-free slices (issue 8). ``val_dice`` is that per-image mean, kept as an extra
column (``dice/per_image`` of :mod:`calfseg.metrics` with the empty-mask policy ``one``).

:class:`CaseCounts` sums on the device; :meth:`CaseCounts.result` joins the ranks' shards
(one all-reduce) and copies the totals to the host once per validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from calfseg.errors import DataValueError


def case_dice(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Dice of each case from its summed counts: ``2 tp / (2 tp + fp + fn)``, and 1 where
    the denominator is 0 (truth and prediction both empty)."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    denominator = 2 * tp + fp + fn
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, 2 * tp / safe, 1.0)


@dataclass(frozen=True)
class ValidationScores:
    """What one validation measured (over every rank's shard).

    Attributes:
        loss: mean validation loss over images.
        case_dice: mean per-case Dice (``val_case_dice``); None with no case.
        image_dice: mean per-image Dice, empty-on-empty 1 (``val_dice``); None with no image.
        cases: the number of cases; images: the number of slices.
    """

    loss: float
    case_dice: float | None
    image_dice: float | None
    cases: int
    images: int


class CaseCounts:
    """Per-case TP, FP, FN sums and the validation loss, accumulated on ``device``.

    Args:
        case_ids: the case of every position of the validation dataset (all of it, on every
            rank, so that the case numbering agrees across ranks).
        device: where the sums are kept (the model's device).
    """

    def __init__(self, case_ids: np.ndarray, device: torch.device) -> None:
        names, codes = np.unique(np.asarray(case_ids).astype(str), return_inverse=True)
        self.cases: np.ndarray = names
        self._codes = codes.reshape(-1).astype(np.int64)
        self._device = device
        # columns: TP, FP, FN per case; float64 holds pixel counts exactly up to 2**53
        self._counts = torch.zeros((len(names), 3), dtype=torch.float64, device=device)
        # loss sum, per-image Dice sum, images, NaN logits
        self._totals = torch.zeros(4, dtype=torch.float64, device=device)

    @torch.no_grad()
    def update(
        self, positions: np.ndarray, logits: torch.Tensor, masks: torch.Tensor, loss: torch.Tensor
    ) -> None:
        """Add a batch: dataset ``positions``, ``(B, 1, H, W)`` logits and 0/1 masks, and
        the batch's mean ``loss`` (a tensor: nothing is copied to the host here)."""
        pred = logits > 0
        true = masks > 0.5
        dims = tuple(range(1, pred.ndim))
        tp = (pred & true).sum(dims, dtype=torch.float64)
        fp = (pred & ~true).sum(dims, dtype=torch.float64)
        fn = (~pred & true).sum(dims, dtype=torch.float64)
        codes = torch.from_numpy(self._codes[np.asarray(positions)]).to(self._device)
        self._counts.index_add_(0, codes, torch.stack([tp, fp, fn], dim=1))
        denominator = 2 * tp + fp + fn
        image_dice = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), 1.0)
        n = pred.shape[0]
        self._totals += torch.stack(
            [
                loss.detach().to(torch.float64) * n,
                image_dice.sum(),
                torch.tensor(float(n), dtype=torch.float64, device=self._device),
                torch.isnan(logits).sum().to(torch.float64),
            ]
        )

    def result(self, *, distributed: bool = False) -> ValidationScores:
        """The scores over every rank (``distributed``: sum the shards with one
        all-reduce first). Raises ValueError if the model gave NaN logits (no silent NaN:
        a NaN logit would otherwise count as background)."""
        packed = torch.cat([self._counts.reshape(-1), self._totals])
        if distributed:
            dist.all_reduce(packed)
        values = packed.cpu().numpy()  # the one copy to the host of this validation
        counts = values[: self._counts.numel()].reshape(-1, 3)
        loss_sum, dice_sum, images, nan_logits = values[self._counts.numel() :]
        if nan_logits > 0:
            raise DataValueError(
                f"validation: the model's output holds {int(nan_logits)} NaN logits (training "
                "diverged): lower lr, set grad_clip (--grad-clip) or a warmup (--warmup-steps)"
            )
        n_images = int(images)
        per_case = case_dice(counts[:, 0], counts[:, 1], counts[:, 2])
        return ValidationScores(
            loss=float(loss_sum / n_images) if n_images else float("nan"),
            case_dice=float(per_case.mean()) if per_case.size else None,
            image_dice=float(dice_sum / n_images) if n_images else None,
            cases=int(per_case.size),
            images=n_images,
        )
