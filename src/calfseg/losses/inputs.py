"""Checks and conversions shared by every loss: logits and target in, tensors of the compute
dtype out.

Cheap checks (dtype, shape, empty batch) always run: they read only metadata, so they cost
nothing and never synchronise with a GPU. The target range check (values in [0, 1]; a 0/255
mask is the usual mistake) also always runs, at almost no cost: see
:func:`check_target_range`. The fuller checks (NaN or inf logits, target values outside
{0, 1}) run only with ``validate=True``, because they force a host-device synchronisation and
would break ``torch.compile(fullgraph=True)``.

Precision follows the logits (:func:`compute_dtype`): float64 in, float64 computation and
result; float32, float16, bfloat16 (and any other floating dtype) are computed in float32.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch

from calfseg.errors import DataValueError, OptionError, check_choice

Mode = Literal["binary", "multilabel"]
MODES: tuple[str, ...] = ("binary", "multilabel")
Reduction = Literal["mean", "none"]
REDUCTIONS: tuple[str, ...] = ("mean", "none")


TARGET_RANGE_MESSAGE = (
    "target values must lie in [0, 1]; a mask stored as 0/255 (usual for PNG) must be "
    "divided by 255 or binarised (mask > 0) before the loss"
)


_WIDE_UNSIGNED = (torch.uint16, torch.uint32, torch.uint64)
_ASSERTS_ASYNC = ("cuda", "meta")  # devices with torch._assert_async (no host read)


def compute_dtype(logits: torch.Tensor) -> torch.dtype:
    """The dtype a loss computes in: float64 for float64 logits, float32 for every other
    floating dtype (float16 and bfloat16 are upcast so that no sum runs in half precision)."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _raise_unless(ok: torch.Tensor, message: str) -> None:
    """Fail when the 0-d bool ``ok`` is False, without a host-device synchronisation.

    On a CPU, reading a scalar costs nothing, so the error is a plain ValueError. On CUDA (and
    while ``torch.compile`` traces) an asynchronous device assertion runs instead: the step
    is not stalled, and a failure surfaces at the next synchronisation (on CUDA as a
    device-side assertion; rerun with ``validate=True`` for the ValueError). The meta device
    takes the assertion too (it holds no values), which lets the CPU test suite prove that a
    loss path reads no device value (``tests/losses/test_nosync.py``). Other devices (MPS,
    ...) may lack that assertion, so they read the scalar, which synchronises.
    """
    if torch.compiler.is_compiling() or ok.device.type in _ASSERTS_ASYNC:
        torch._assert_async(ok, message)
    elif not bool(ok):
        raise DataValueError(message)


def check_target_range(target: torch.Tensor) -> None:
    """Reject target values outside [0, 1] at almost no cost (no host sync on a GPU).

    The cost depends on the dtype (measured by ``benchmarks/bench_losses.py``):

    - bool: nothing to check;
    - uint8: ``max <= 1``, one pass over one byte per element;
    - other integers: ``min >= 0`` and ``max <= 1`` (one ``aminmax`` pass; uint16/32/64, which
      torch reduces on few devices, are widened to int64 first, where a wrapped value is
      negative and still fails);
    - floating: ``min >= 0`` and ``max <= 1`` (one ``aminmax`` pass); NaN fails the check.
    """
    if target.dtype == torch.bool:
        return
    if target.dtype == torch.uint8:
        ok = target.amax() <= 1
    else:
        if target.dtype in _WIDE_UNSIGNED:
            target = target.to(torch.int64)
        low, high = torch.aminmax(target)
        ok = (low >= 0) & (high <= 1)
    _raise_unless(ok, TARGET_RANGE_MESSAGE)


def autocast_off(device: torch.device) -> AbstractContextManager[object]:
    """A context in which autocast is off on ``device``, so that the loss computes in the
    dtype :func:`compute_dtype` chose. Devices without autocast (the meta device) get a
    no-op context instead of torch's error."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return nullcontext()


def prepare_pair(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    mode: Mode | None = None,
    validate: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(logits, target)`` in the compute dtype (:func:`compute_dtype`), same shape.

    Args:
        logits: raw scores, any floating dtype (float64 stays float64; float16/bfloat16 are
            upcast, so every formula and reduction runs in float32 at least).
        target: mask of the logits' shape with values in [0, 1] ({0, 1} for a hard mask);
            bool, integer or floating. Values outside [0, 1] are always an error
            (:func:`check_target_range`). In
            ``mode="binary"`` a target without the channel axis, ``(B, *spatial)`` for logits
            ``(B, 1, *spatial)``, is accepted.
        mode: ``"binary"`` expects ``(B, 1, *spatial)`` logits, ``"multilabel"``
            ``(B, C, *spatial)``; ``None`` accepts any matching shapes (the functionals).
        validate: also reject NaN/inf logits and target values outside {0, 1} (fractional
            targets included); this synchronises with a GPU.
    """
    if not isinstance(logits, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(
            f"logits and target must be tensors, got {type(logits).__name__} "
            f"and {type(target).__name__}"
        )
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating tensor (raw scores), got {logits.dtype}")
    if target.is_complex():
        raise TypeError(f"target must be bool, integer or floating, got {target.dtype}")
    if mode is not None:
        check_choice("mode", mode, MODES)
        if logits.ndim < 3:
            raise OptionError(
                f"mode={mode!r} expects logits shaped (B, C, *spatial), got {tuple(logits.shape)}"
            )
        if mode == "binary" and logits.shape[1] != 1:
            raise OptionError(
                f"mode='binary' expects one channel, logits (B, 1, *spatial); got "
                f"{tuple(logits.shape)} (use mode='multilabel' for several channels)"
            )
        if mode == "binary" and target.ndim == logits.ndim - 1:
            target = target.unsqueeze(1)
    if target.shape != logits.shape:
        raise OptionError(
            f"target shape {tuple(target.shape)} does not match logits shape {tuple(logits.shape)}"
        )
    if logits.numel() == 0:
        raise OptionError(f"empty batch: logits of shape {tuple(logits.shape)} have no elements")
    if validate:
        if not torch.isfinite(logits).all():
            raise DataValueError("logits contain NaN or inf")
        if not ((target == 0) | (target == 1)).all():
            raise DataValueError("target values must be 0 or 1")
    else:
        check_target_range(target)
    dtype = compute_dtype(logits)
    return logits.to(dtype), target.to(dtype)
