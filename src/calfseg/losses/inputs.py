"""Checks and conversions shared by every loss: logits and target in, float32 tensors out.

Cheap checks (dtype, shape, empty batch) always run: they read only metadata, so they cost
nothing and never synchronise with a GPU. Checks that read values (NaN or inf logits,
target values outside {0, 1}) run only with ``validate=True``, because they force a
host-device synchronisation and would break ``torch.compile(fullgraph=True)``.
"""

from __future__ import annotations

from typing import Literal

import torch

Mode = Literal["binary", "multilabel"]
MODES: tuple[str, ...] = ("binary", "multilabel")
Reduction = Literal["mean", "none"]
REDUCTIONS: tuple[str, ...] = ("mean", "none")


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise a ValueError naming the argument when ``value`` is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def prepare_pair(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    mode: Mode | None = None,
    validate: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(logits, target)`` as float32 tensors of the same shape.

    Args:
        logits: raw scores, any floating dtype (float16/bfloat16 are upcast, so every
            formula and reduction runs in float32).
        target: {0, 1} mask of the logits' shape; bool, integer or floating. In
            ``mode="binary"`` a target without the channel axis, ``(B, *spatial)`` for logits
            ``(B, 1, *spatial)``, is accepted.
        mode: ``"binary"`` expects ``(B, 1, *spatial)`` logits, ``"multilabel"``
            ``(B, C, *spatial)``; ``None`` accepts any matching shapes (the functionals).
        validate: also reject NaN/inf logits and target values outside {0, 1}.
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
            raise ValueError(
                f"mode={mode!r} expects logits shaped (B, C, *spatial), got {tuple(logits.shape)}"
            )
        if mode == "binary" and logits.shape[1] != 1:
            raise ValueError(
                f"mode='binary' expects one channel, logits (B, 1, *spatial); got "
                f"{tuple(logits.shape)} (use mode='multilabel' for several channels)"
            )
        if mode == "binary" and target.ndim == logits.ndim - 1:
            target = target.unsqueeze(1)
    if target.shape != logits.shape:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits shape {tuple(logits.shape)}"
        )
    if logits.numel() == 0:
        raise ValueError(f"empty batch: logits of shape {tuple(logits.shape)} have no elements")
    if validate:
        if not torch.isfinite(logits).all():
            raise ValueError("logits contain NaN or inf")
        if not ((target == 0) | (target == 1)).all():
            raise ValueError("target values must be 0 or 1")
    return logits.float(), target.to(torch.float32)
