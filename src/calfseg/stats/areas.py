"""Foreground area of each mask in a batch: the quantity whose distribution CALF summarises.

Two definitions (docs/method.md section 2):

- ``"pixels"`` (default): the number of nonzero elements of each sample (voxels for 3D).
- ``"contour"``: the authors' polygon area. The mask is binarised (> 0), scaled to uint8
  0/255, OpenCV ``findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)`` finds every contour and the
  area is the sum of ``contourArea`` over all of them. A one-pixel blob has area 0 and holes
  are added, not subtracted: faithful to the paper's code, not a geometric area. 2D only.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from calfseg.errors import OptionError, check_choice
from calfseg.extras import require

AreaMethod = Literal["pixels", "contour"]
AREA_METHODS: tuple[str, ...] = ("pixels", "contour")

# Bytes of a bool mask are 0 or 1, so eight of them read as one int64 word hold eight
# independent 8-bit counters: summing up to 255 words cannot carry between counters.
_WORD_BYTES = 8
_MAX_WORDS_PER_CHUNK = 255


def foreground_areas(
    masks: torch.Tensor | np.ndarray,
    method: AreaMethod = "pixels",
    *,
    per_channel: bool = False,
) -> torch.Tensor:
    """Return the foreground area of every sample of a batch of masks.

    Args:
        masks: ``(B, H, W)``, ``(B, 1, H, W)`` or ``(B, 1, D, H, W)``; bool, integer or
            floating. Any nonzero value is foreground. (A torch bool tensor must hold the
            bytes 0/1 that torch itself writes; numpy bool arrays are checked.) With
            ``per_channel=True`` the input is ``(B, C, *spatial)`` and each channel is
            measured on its own.
        method: ``"pixels"`` counts nonzero elements; ``"contour"`` reproduces the authors'
            OpenCV polygon area (2D masks only, needs the ``contour`` extra).
        per_channel: measure each channel separately (multilabel masks).

    Returns:
        float64 tensor of ``B`` areas (``(B, C)`` with ``per_channel``) on the masks' device.
        An empty mask has area 0; an empty batch gives an empty tensor.
    """
    check_choice("method", method, AREA_METHODS)
    if isinstance(masks, np.ndarray) and any(stride < 0 for stride in masks.strides):
        masks = np.ascontiguousarray(masks)  # torch cannot view negative strides (np.flip)
    if isinstance(masks, np.ndarray) and masks.dtype == np.bool_ and masks.size:
        # numpy lets ``.view(bool)`` reinterpret 0/255 bytes as bool; torch's bool tensors
        # (and the fast count) assume bytes 0/1, so such arrays are normalised here.
        if masks.view(np.uint8).max() > 1:
            masks = masks.view(np.uint8) != 0
    tensor = torch.as_tensor(masks)
    if tensor.is_complex():
        raise TypeError("masks must be bool, integer or floating, got a complex tensor")
    rows, out_shape = _as_rows(tensor, per_channel)
    if method == "contour":
        return _contour_areas(rows, tensor.shape, per_channel).reshape(out_shape).to(tensor.device)
    # Explicit row length: reshape(0, -1) is ambiguous for an empty batch.
    counts = _count_nonzero_rows(rows.reshape(rows.shape[0], math.prod(rows.shape[1:])))
    return counts.to(torch.float64).reshape(out_shape)


def _as_rows(masks: torch.Tensor, per_channel: bool) -> tuple[torch.Tensor, tuple[int, ...]]:
    """View the masks as ``(samples, *spatial)`` and give the shape of the result."""
    if per_channel:
        if masks.ndim < 3:
            raise OptionError(
                f"per_channel masks must be (B, C, *spatial), got shape {tuple(masks.shape)}"
            )
        b, c = masks.shape[:2]
        return masks.reshape(b * c, *masks.shape[2:]), (b, c)
    if masks.ndim == 3:
        return masks, (masks.shape[0],)
    if masks.ndim in (4, 5) and masks.shape[1] == 1:
        return masks[:, 0], (masks.shape[0],)
    raise OptionError(
        "masks must be (B, H, W), (B, 1, H, W) or (B, 1, D, H, W) "
        f"(use per_channel=True for several channels), got shape {tuple(masks.shape)}"
    )


def _count_nonzero_rows(rows: torch.Tensor) -> torch.Tensor:
    """Count nonzero elements in each row of a 2D tensor, as int64.

    ``torch.count_nonzero`` and bool sums run at a few GB/s on a CPU; reading the bool bytes
    as int64 words and adding eight 8-bit counters at a time runs near memory bandwidth
    (see ``python -m benchmarks.bench_areas``). Other devices, and row lengths that are not
    a multiple of 8, take the plain reduction.
    """
    fg = rows.bool()  # nonzero -> True; a vectorised cast, several times faster than `!= 0`
    n_rows, n = fg.shape
    if fg.device.type != "cpu" or n % _WORD_BYTES or n_rows == 0 or n == 0:
        return fg.sum(dim=1, dtype=torch.int64)
    fg = fg.contiguous()
    if fg.storage_offset() % _WORD_BYTES:  # an int64 view needs an 8-byte aligned start
        fg = fg.clone()
    # torch bool tensors hold bytes 0 and 1 (numpy input is normalised in foreground_areas).
    words = fg.view(torch.uint8).view(torch.int64)  # (n_rows, n_words), eight counters a word
    n_words = n // _WORD_BYTES
    n_chunks = n_words // _MAX_WORDS_PER_CHUNK
    full = n_chunks * _MAX_WORDS_PER_CHUNK
    # Whole chunks of 255 words (a view, no copy), plus the < 255 words left over.
    lanes = words[:, :full].reshape(n_rows, n_chunks, _MAX_WORDS_PER_CHUNK).sum(dim=2)
    if full < n_words:
        lanes = torch.cat([lanes, words[:, full:].sum(dim=1, keepdim=True)], dim=1)
    # Fold the counters pairwise: 8 x 8-bit -> 4 x 16-bit -> 2 x 32-bit -> 1 count. The
    # masks drop the sign bits that >> copies in when the top counter is >= 128.
    lanes = (lanes & 0x00FF00FF00FF00FF) + ((lanes >> 8) & 0x00FF00FF00FF00FF)
    lanes = (lanes & 0x0000FFFF0000FFFF) + ((lanes >> 16) & 0x0000FFFF0000FFFF)
    lanes = (lanes & 0xFFFFFFFF) + (lanes >> 32)
    return lanes.sum(dim=1)


def _contour_areas(rows: torch.Tensor, shape: torch.Size, per_channel: bool) -> torch.Tensor:
    """The authors' OpenCV polygon area of each 2D mask (one Python call per mask)."""
    if rows.ndim != 3:
        raise OptionError(
            f"method='contour' needs 2D masks, got shape {tuple(shape)}"
            + (" (per channel)" if per_channel else "")
        )
    cv2 = require("cv2", "method='contour'")
    binary = rows.bool().to(torch.uint8).mul_(255).cpu().numpy()
    areas = np.empty(binary.shape[0], dtype=np.float64)
    for i, mask in enumerate(binary):
        contours, _ = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        areas[i] = sum(cv2.contourArea(c) for c in contours)
    return torch.from_numpy(areas)
