"""HD95 and average symmetric surface distance (ASSD) per image, in millimetres.

Surfaces and distances are MONAI's (``monai.metrics.utils.get_edge_surface_distance``, the
function behind ``compute_hausdorff_distance`` and ``compute_average_surface_distance``):

- the surface (edge) of a mask is its foreground pixels with a background 4-neighbour
  (``mask XOR binary_erosion(mask)``; outside the image counts as background);
- ``d(A -> B)`` is, for every edge pixel of A, the Euclidean distance in mm from its centre
  to the nearest edge pixel centre of B, the offsets scaled by the pixel size (exact, a
  KD-tree on the CPU);
- ``HD95 = max(q95(d(P -> T)), q95(d(T -> P)))``, ``q95`` being ``torch.quantile`` at 0.95
  (linear interpolation), exactly ``compute_hausdorff_distance(percentile=95)``;
- ``ASSD = mean(d(P -> T) ∪ d(T -> P))``, the mean over the edge pixels of both masks
  together, exactly ``compute_average_surface_distance(symmetric=True)``.

One call per image gives both numbers (half the time of the two MONAI functions, which
each find the edges again); the tests check equality with both functions.

Empty masks, where MONAI returns NaN (both empty) or inf (one empty) with a warning, and a
NaN would silently drop out of a ``nanmean``:

- **one mask empty** (a missed lesion, or a false alarm on a tumour-free slice): HD95 and
  ASSD are the image diagonal, ``sqrt((H s_rows)^2 + (W s_cols)^2)`` mm, longer than any
  distance inside the image. Always, whatever the policy: an error must cost.
- **both empty**: the distances are undefined and follow the empty-mask policy: 0 mm
  (``"one"``, the perfect value) or left out of the mean (``"exclude"``).

Spacing: ``(s_rows, s_cols)``, the mm between pixel centres along dim -2 (H) and dim -1 (W)
of the image, per image. :attr:`calfseg.data.dataset.SliceDataset.spacing` is in this order
(``spacing_x`` is the cache's first slice axis, H). Distances are computed on the CPU (masks
on a GPU are copied over); about 2 ms per 256x256 image with both masks non-empty.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from calfseg.errors import OptionError, check_choice
from calfseg.extras import require
from calfseg.metrics.confusion import binarise
from calfseg.metrics.policy import ImageScores

SURFACE_METRICS: tuple[str, ...] = ("hd95_mm", "assd_mm")
"""Names of the distance metrics, in report order."""

SpacingLike = float | Sequence[float] | Sequence[Sequence[float]] | np.ndarray | torch.Tensor


@dataclass(frozen=True)
class SurfaceDistances:
    """Per-image HD95 and ASSD in mm, with the empty-mask cases marked.

    ``hd95`` and ``assd`` are float64 ``(n,)`` and never NaN: both-empty images hold 0 (the
    perfect value) and are marked in ``both_empty``; images with exactly one empty mask hold
    the image diagonal and are marked in ``one_empty``.
    """

    hd95: np.ndarray
    assd: np.ndarray
    both_empty: np.ndarray
    one_empty: np.ndarray

    def __post_init__(self) -> None:
        shapes = {a.shape for a in (self.hd95, self.assd, self.both_empty, self.one_empty)}
        if len(shapes) != 1 or self.hd95.ndim != 1:
            raise OptionError("hd95, assd, both_empty and one_empty must be 1-D, of one length")

    @classmethod
    def empty(cls) -> SurfaceDistances:
        return cls(np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))

    @classmethod
    def cat(cls, parts: Sequence[SurfaceDistances]) -> SurfaceDistances:
        """Join the images of several sets, in order."""
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.hd95 for p in parts]),
            np.concatenate([p.assd for p in parts]),
            np.concatenate([p.both_empty for p in parts]),
            np.concatenate([p.one_empty for p in parts]),
        )

    def __len__(self) -> int:
        return int(self.hd95.shape[0])

    def select(self, mask: np.ndarray) -> SurfaceDistances:
        """The images where ``mask`` (bool, one per image) is True."""
        return SurfaceDistances(
            self.hd95[mask], self.assd[mask], self.both_empty[mask], self.one_empty[mask]
        )

    def scores(self, metric: str) -> ImageScores:
        """``"hd95_mm"`` or ``"assd_mm"`` as :class:`ImageScores` (undefined = both empty)."""
        check_choice("metric", metric, SURFACE_METRICS)
        values = self.hd95 if metric == "hd95_mm" else self.assd
        return ImageScores(values, self.both_empty, perfect=0.0)


def surface_distances(
    prediction: torch.Tensor,
    target: torch.Tensor,
    spacing: SpacingLike,
    *,
    threshold: float = 0.0,
) -> SurfaceDistances:
    """HD95 and ASSD in mm of every image of a batch (see the module docstring).

    Args:
        prediction: ``(B, 1, H, W)`` or ``(B, H, W)`` logits, probabilities or bool masks,
            binarised as in :func:`calfseg.metrics.confusion.confusion_counts`.
        target: binary masks of the same shape.
        spacing: mm per pixel ``(s_rows, s_cols)``: one number (isotropic), one pair for the
            whole batch, or ``(B, 2)``.
        threshold: foreground is ``prediction > threshold`` (0 for logits).

    Requires MONAI and scipy (``pip install 'calf-seg[train]' scipy``).
    """
    pred, true = binarise(prediction, target, threshold)
    pred, true = pred.cpu(), true.cpu()
    b, h, w = pred.shape
    mm = normalise_spacing(spacing, b)
    diagonal = image_diagonal_mm((h, w), mm)
    has_pred = pred.reshape(b, -1).any(dim=1).numpy()
    has_true = true.reshape(b, -1).any(dim=1).numpy()
    both_empty = ~has_pred & ~has_true
    one_empty = has_pred ^ has_true
    hd95 = np.where(one_empty, diagonal, 0.0)
    assd = hd95.copy()
    both = np.flatnonzero(has_pred & has_true)
    if both.size:
        edge_distances = monai_edge_distances()
        with warnings.catch_warnings():
            # MONAI 1.5+ passes its own deprecated argument internally (removed in 1.7)
            warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
            for i in both.tolist():
                _, (d_pt, d_tp), _ = edge_distances(
                    pred[i], true[i], spacing=[float(mm[i, 0]), float(mm[i, 1])], symmetric=True
                )
                hd95[i] = float(
                    torch.maximum(torch.quantile(d_pt, 0.95), torch.quantile(d_tp, 0.95))
                )
                assd[i] = float(torch.cat([d_pt, d_tp]).mean())
    return SurfaceDistances(hd95, assd, both_empty, one_empty)


def image_diagonal_mm(shape: tuple[int, int], spacing: np.ndarray) -> np.ndarray:
    """``sqrt((H s_rows)^2 + (W s_cols)^2)`` for each row of ``spacing`` ``(n, 2)``: the
    distance charged when exactly one of the two masks is empty."""
    h, w = shape
    return np.hypot(h * spacing[:, 0], w * spacing[:, 1])


def normalise_spacing(spacing: SpacingLike, n: int) -> np.ndarray:
    """``spacing`` as a float64 ``(n, 2)`` array of positive, finite mm per pixel."""
    if isinstance(spacing, torch.Tensor):
        spacing = spacing.detach().cpu().numpy()
    arr = np.asarray(spacing, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full((n, 2), float(arr))
    elif arr.shape == (2,):
        arr = np.broadcast_to(arr, (n, 2)).copy()
    if arr.shape != (n, 2):
        raise OptionError(
            f"spacing must be a number, a pair (s_rows, s_cols) or an array of shape ({n}, 2) "
            f"for {n} images, got shape {arr.shape}"
        )
    if not (np.isfinite(arr).all() and (arr > 0).all()):
        raise OptionError(
            f"spacing must be positive and finite mm per pixel, got {arr.tolist()[:4]}"
        )
    return arr


def monai_edge_distances() -> Any:
    utils = require("monai.metrics.utils", "HD95 and ASSD in calfseg.metrics.surface")
    require("scipy.ndimage", "HD95 and ASSD (MONAI's surface distance)")
    return utils.get_edge_surface_distance
