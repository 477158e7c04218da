"""The output layer's bias at the foreground prior (Lin et al., "Focal Loss for Dense Object
Detection", ICCV 2017, section 4.1, "Initialization").

Every model of :mod:`calfseg.models` ends in one convolution to one channel of logits. With
a bias of 0 it starts at p = sigmoid(0) = 0.5 for every pixel, while a few per cent of the
pixels are lesion: the first steps of BCE (and of CALF's branches, which transform the
per-pixel BCE) are spent pushing the whole image towards background, and whether a run
then learns the lesion in time depends on its seed. A bias of ``log(pi / (1 - pi))``, with
``pi`` the share of foreground pixels in the training split, starts every pixel at the
prior instead. The weights are untouched (the seed alone still sets them).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from calfseg.errors import OptionError

PRIOR_BOUNDS = (1e-6, 1 - 1e-6)  # a split with no (or only) foreground: a finite bias


def output_layer(model: nn.Module) -> nn.Conv2d:
    """The model's last convolution to one channel: its output layer.

    Raises:
        ValueError: the model has no such convolution with a bias.
    """
    found = [
        m for m in model.modules()
        if isinstance(m, nn.Conv2d) and m.out_channels == 1 and m.bias is not None
    ]  # fmt: skip
    if not found:
        raise OptionError(
            "the model has no convolution to 1 channel with a bias: cannot set its output "
            "prior (train with output_prior=False)"
        )
    return found[-1]


def set_output_prior(model: nn.Module, prior: float) -> float:
    """Set the output layer's bias to ``log(prior / (1 - prior))`` (``prior`` clipped to
    :data:`PRIOR_BOUNDS`) and return that bias."""
    if not math.isfinite(prior) or not 0 <= prior <= 1:
        raise OptionError(f"the foreground prior must be in [0, 1], got {prior!r}")
    low, high = PRIOR_BOUNDS
    clipped = min(max(prior, low), high)
    bias = math.log(clipped / (1 - clipped))
    layer_bias = output_layer(model).bias
    assert layer_bias is not None  # output_layer only returns layers with a bias
    with torch.no_grad():
        layer_bias.fill_(bias)
    return bias
