"""Parameter counts, and the one-line description the CLI prints."""

from __future__ import annotations

from torch import nn


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """The number of parameters (of those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def describe_model(model: nn.Module) -> str:
    """One line: the model's name and its parameter count, e.g.
    ``'u-tu-resnet10t: 1.57 M parameters (1,571,505, all trainable)'``."""
    total = count_parameters(model)
    trainable = count_parameters(model, trainable_only=True)
    label = getattr(model, "name", None) or type(model).__name__
    share = "all trainable" if trainable == total else f"{trainable:,} trainable"
    return f"{label}: {total / 1e6:.2f} M parameters ({total:,}, {share})"
