"""HD95 and ASSD per case, over the 3D volume with its voxel spacing (BraTS, nnU-Net and
Metrics Reloaded report them so; the per-slice numbers of :mod:`calfseg.metrics.surface`
are not comparable with theirs).

Definitions (the same as per slice, in three dimensions; MONAI's surfaces and distances,
``monai.metrics.utils.get_edge_surface_distance``):

- the surface of a mask is its foreground voxels with a background 6-neighbour (``mask XOR
  binary_erosion(mask)``; outside the volume counts as background);
- ``d(A -> B)``: for every surface voxel of A, the Euclidean distance in mm from its centre
  to the nearest surface voxel centre of B, the offsets scaled by the voxel size;
- ``hd95_mm = max(q95(d(P -> T)), q95(d(T -> P)))``: the larger of the two **directed**
  95th percentiles (linear interpolation), as MONAI's ``compute_hausdorff_distance(
  percentile=95)`` and Metrics Reloaded define it. medpy's ``hd95`` takes the 95th
  percentile of the union of both directions instead, which is never larger;
- ``assd_mm = mean(d(P -> T) ∪ d(T -> P))``: the mean over the surface voxels of both
  masks together (MONAI's ``compute_average_surface_distance(symmetric=True)``, medpy's
  ``assd``).

Empty masks, as the BraTS evaluation scores them: both empty, 0 mm (nothing to miss);
exactly one empty, the volume's diagonal ``sqrt(sum_i (n_i s_i)^2)`` mm, longer than any
distance inside it (a missed lesion or a false alarm must cost).

**The volume of a case in a cache** (:func:`case_volume`): a cache holds a case as 2D rows
(``index.csv``: ``slice_index`` k of ``volume[..., k]``, the in-plane pixel size
``spacing_x, spacing_y`` after resizing, the slice spacing ``spacing_z`` of the source).
The rows are put back at their slice positions, from the case's first kept slice to its
last; slices the preparation dropped (``--drop-outside-brain``) are empty in both masks.
(Evaluation gives no 3D distance to a case it holds only in part: a slice-level split, a
filter.) With every slice kept this is the source volume at the cache's
in-plane resolution. In the one-modality-per-sample layout a case holds one volume per
modality (each with its own prediction); its distances are the mean over them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from calfseg.errors import DataValueError, OptionError
from calfseg.metrics.surface import SURFACE_METRICS, monai_edge_distances


def volume_distances(prediction: Any, truth: Any, spacing: Sequence[float]) -> dict[str, float]:
    """``{"hd95_mm": ..., "assd_mm": ...}`` of one case (see the module docstring).

    Args:
        prediction, truth: boolean 3D arrays (numpy or torch) of one shape; any non-zero
            value is foreground.
        spacing: mm per voxel along each of the three axes, in the arrays' axis order.

    Requires MONAI and scipy.
    """
    pred = _as_bool(prediction, "prediction")
    true = _as_bool(truth, "truth")
    if pred.shape != true.shape:
        raise OptionError(f"prediction {pred.shape} and truth {true.shape} differ in shape")
    mm = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if mm.shape != (3,) or not (np.isfinite(mm).all() and (mm > 0).all()):
        raise OptionError(f"spacing must be 3 positive, finite mm per voxel, got {mm.tolist()}")
    has_pred, has_true = bool(pred.any()), bool(true.any())
    if not has_pred and not has_true:
        return dict.fromkeys(SURFACE_METRICS, 0.0)
    if has_pred != has_true:
        diagonal = float(np.sqrt(np.sum((np.asarray(pred.shape) * mm) ** 2)))
        return dict.fromkeys(SURFACE_METRICS, diagonal)
    with warnings.catch_warnings():
        # MONAI 1.5+ passes its own deprecated argument internally (removed in 1.7)
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
        _, (d_pt, d_tp), _ = monai_edge_distances()(
            torch.from_numpy(pred), torch.from_numpy(true), spacing=mm.tolist(), symmetric=True
        )
    d_pt, d_tp = d_pt.double(), d_tp.double()
    hd95 = torch.maximum(torch.quantile(d_pt, 0.95), torch.quantile(d_tp, 0.95))
    return {"hd95_mm": float(hd95), "assd_mm": float(torch.cat([d_pt, d_tp]).mean())}


def case_volume(masks: np.ndarray, slice_index: np.ndarray) -> np.ndarray:
    """The ``(H, W, Z)`` bool volume of one case's ``(R, H, W)`` rows at their slice
    positions ``slice_index`` (``Z`` = last - first + 1; missing slices empty).

    Raises:
        DataValueError: two rows claim one slice (rows of several modalities: split them
            first, see :func:`per_case_distances`).
    """
    k = np.asarray(slice_index, dtype=np.int64).reshape(-1)
    if masks.ndim != 3 or masks.shape[0] != k.size:
        raise OptionError(f"{k.size} slice positions for masks of shape {masks.shape}")
    if np.unique(k).size != k.size:
        raise DataValueError("two rows of one case volume have the same slice_index")
    first = int(k.min())
    volume = np.zeros((*masks.shape[1:], int(k.max()) - first + 1), dtype=bool)
    volume[..., k - first] = np.moveaxis(masks.astype(bool), 0, -1)
    return volume


def per_case_distances(
    prediction: Any,
    truth: Any,
    case_ids: Any,
    slice_index: Any,
    spacing: np.ndarray,
    modality: Any = None,
) -> dict[str, dict[str, float]]:
    """Per case id, :func:`volume_distances` of its volume (the mean over its modalities'
    volumes in the one-modality-per-sample layout).

    Args:
        prediction, truth: ``(N, H, W)`` bool masks, one row per cache row: arrays, or
            anything with ``shape`` that indexing by an array of row numbers turns into one.
        case_ids, slice_index, modality: per row (index.csv's columns; ``modality`` None
            when every row of a case is one volume).
        spacing: ``(N, 3)`` mm (``spacing_x, spacing_y, spacing_z``); one per case is used.
    """
    ids = np.asarray(case_ids).reshape(-1).astype(str)
    kinds = np.zeros(ids.size, dtype=str) if modality is None else np.asarray(modality, str)
    mm = np.asarray(spacing, dtype=np.float64)
    if not (prediction.shape == truth.shape and prediction.shape[0] == ids.size == mm.shape[0]):
        raise OptionError(
            f"prediction {prediction.shape}, truth {truth.shape}, {ids.size} case ids and "
            f"{mm.shape[0]} spacings must describe the same rows"
        )
    # one volume per (case, modality); rows grouped by one stable sort
    _, group = np.unique(np.stack([ids, kinds.reshape(-1)], axis=1), axis=0, return_inverse=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    by_case: dict[str, list[dict[str, float]]] = {}
    for rows in np.split(order, bounds) if order.size else []:
        spacing_mm = mm[rows[0]]
        if not np.all(mm[rows] == spacing_mm):
            raise DataValueError(f"case {ids[rows[0]]} has rows of different voxel spacing")
        k = np.asarray(slice_index)[rows]
        volumes = (case_volume(prediction[rows], k), case_volume(truth[rows], k))
        by_case.setdefault(ids[rows[0]], []).append(volume_distances(*volumes, spacing_mm))
    return {
        case: {m: float(np.mean([d[m] for d in parts])) for m in SURFACE_METRICS}
        for case, parts in by_case.items()
    }


def _as_bool(mask: Any, name: str) -> np.ndarray:
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.ndim != 3:
        raise OptionError(f"{name} must be a 3D mask, got shape {array.shape}")
    return np.ascontiguousarray(array != 0)
