"""Run a library loss (MONAI, segmentation_models_pytorch) under the project's loss contract.

The contract of every loss in the registry: logits ``(B, 1, *spatial)`` of any floating dtype
and a {0, 1} target of the same shape (or ``(B, *spatial)``) in; a float32 scalar out. The
libraries do not promise that under mixed precision, so :class:`BinaryLossAdapter` upcasts
both tensors to float32 and disables autocast before calling the wrapped loss, as nnU-Net
does for its sums.

MONAI and segmentation_models_pytorch are optional (the ``train`` extra): they are imported
here, on first use, through :func:`calfseg.extras.require`, never when ``calfseg.losses`` is
imported.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import nn

from calfseg.extras import require
from calfseg.losses.inputs import autocast_off, prepare_pair


def monai_losses() -> ModuleType:
    """``monai.losses``, or a :class:`~calfseg.extras.MissingExtraError` naming the extra."""
    return require("monai.losses", "this baseline loss (a MONAI implementation)")


def smp_losses() -> ModuleType:
    """``segmentation_models_pytorch.losses``, imported on demand."""
    return require(
        "segmentation_models_pytorch.losses",
        "this baseline loss (a segmentation_models_pytorch implementation)",
    )


class BinaryLossAdapter(nn.Module):
    """Call ``loss`` on float32 binary inputs with autocast off; return a float32 scalar.

    Args:
        loss: a module mapping ``(logits, target)``, both float32 ``(B, 1, *spatial)`` (float64
            for float64 logits), to a scalar (a MONAI or smp loss configured for sigmoid
            outputs, or one of ours).
        name: the registry name, shown in ``repr``.
        validate: also reject NaN/inf logits and target values outside {0, 1} (this reads
            the values, so it synchronises with a GPU). Target values outside [0, 1] (a 0/255
            mask) are an error in any case, checked without a host synchronisation
            (:func:`calfseg.losses.inputs.check_target_range`).
    """

    def __init__(self, loss: nn.Module, name: str, *, validate: bool = False) -> None:
        super().__init__()
        self.loss = loss
        self.name = name
        self.validate = validate

    def extra_repr(self) -> str:
        return f"name={self.name!r}"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z, y = prepare_pair(logits, target, mode="binary", validate=self.validate)
        with autocast_off(z.device):
            value = self.loss(z, y)
        if value.ndim != 0:
            raise RuntimeError(
                f"loss {self.name!r} returned shape {tuple(value.shape)}, expected a scalar"
            )
        return value.float()
