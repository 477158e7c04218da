"""CALF as the loss of an nnU-Net training: softmax outputs as one CALF per foreground class
(one-vs-rest), sigmoid region outputs as CALF's multilabel mode.

Softmax training. nnU-Net's network gives ``C`` logits ``z_0 .. z_{C-1}`` per voxel (class 0
is the background) and the target holds the class index. For every foreground class ``c``
the binary logit is

    logit_c = z_c - logsumexp_{j != c} z_j

so that ``sigmoid(logit_c) = exp(z_c) / sum_j exp(z_j) = softmax(z)_c`` exactly: the binary
"class c against the rest" probability of CALF is the softmax probability of that class,
and its gradient flows into every logit. The binary target is ``y_c = [target == c]``. The
foreground classes are then CALF's multilabel channels: each class's foreground areas over
the batch give its own (S, K) and its own branch, and the loss is the mean of the classes'
branch losses (docs/method.md sections 2 and 3; :class:`calfseg.losses.CALFLoss`).

Region-based training (overlapping regions, sigmoid outputs): the target is already one
binary channel per region, so the logits and target go to CALF's multilabel mode unchanged.

Statistics are per batch, as in the authors' code (one host synchronisation per call). The
picks of every call since the last :meth:`NnUNetCALFLoss.reset` are kept in ``picks`` so that
a trainer can log them (under deep supervision, one call per output scale, full resolution
first).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from calfseg.errors import OptionError, check_choice
from calfseg.losses import CALFLoss
from calfseg.losses.inputs import autocast_off, compute_dtype
from calfseg.rule import Selection

Training = Literal["softmax", "regions"]
TRAININGS: tuple[str, ...] = ("softmax", "regions")


def one_vs_rest_logits(logits: torch.Tensor) -> torch.Tensor:
    """Binary logits of the foreground classes from softmax logits ``(B, C, *spatial)``:
    ``(B, C - 1, *spatial)`` with channel ``c - 1`` holding ``z_c - logsumexp_{j != c} z_j``
    (so that its sigmoid is ``softmax(z)_c``). Computed in float32 at least."""
    if logits.ndim < 3 or logits.shape[1] < 2:
        raise OptionError(
            "softmax logits must be (B, C, *spatial) with C >= 2 (background and at least one "
            f"class), got {tuple(logits.shape)}"
        )
    z = logits.to(compute_dtype(logits))
    channels = []
    for c in range(1, z.shape[1]):
        # logsumexp over every channel but c: the cat drops c instead of masking it with -inf,
        # so that no inf enters the graph.
        rest = torch.cat([z[:, :c], z[:, c + 1 :]], dim=1).logsumexp(dim=1)
        channels.append(z[:, c] - rest)
    return torch.stack(channels, dim=1)


def one_vs_rest_targets(target: torch.Tensor, classes: int) -> torch.Tensor:
    """Binary targets ``(B, classes - 1, *spatial)`` of the foreground classes ``1 ..
    classes - 1`` from nnU-Net's class-index target ``(B, 1, *spatial)``."""
    if target.ndim < 3 or target.shape[1] != 1:
        raise OptionError(
            f"a softmax training's target must be (B, 1, *spatial), got {tuple(target.shape)}"
        )
    values = torch.arange(1, classes, device=target.device, dtype=target.dtype)
    shape = (1, classes - 1) + (1,) * (target.ndim - 2)
    return target == values.view(shape)


class NnUNetCALFLoss(nn.Module):
    """CALF for nnU-Net's outputs: ``training="softmax"`` (one-vs-rest over the foreground
    classes) or ``"regions"`` (sigmoid outputs, one channel per region).

    ``calf_options`` go to :class:`calfseg.losses.CALFLoss` (``area``, ``numerics``,
    ``thresholds``, ``sync``); the statistics are always per batch and the mode multilabel.
    """

    def __init__(self, training: Training, **calf_options: Any) -> None:
        super().__init__()
        check_choice("training", training, TRAININGS)
        self.training_kind = training
        self.calf = CALFLoss("batch", mode="multilabel", **calf_options)
        # One tuple of per-class (or per-region) selections per call since reset().
        self.picks: list[tuple[Selection, ...]] = []

    def reset(self) -> None:
        """Forget the picks of earlier calls."""
        self.picks = []

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with autocast_off(logits.device):
            if self.training_kind == "softmax":
                z = one_vs_rest_logits(logits)
                y = one_vs_rest_targets(target, logits.shape[1])
            else:
                z, y = logits, target
            loss = self.calf(z, y)
        selection = self.calf.last_selection
        assert isinstance(selection, tuple)  # multilabel mode: one per channel
        self.picks.append(selection)
        return loss

    def extra_repr(self) -> str:
        return f"training={self.training_kind!r}"
