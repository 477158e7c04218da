"""The building block the authors' three models share: convolution, batch norm, ReLU."""

from __future__ import annotations

from torch import nn

from calfseg.errors import OptionError


def conv_bn_relu(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    *,
    stride: int = 1,
    dilation: int = 1,
    bias: bool,
) -> nn.Sequential:
    """``Conv2d -> BatchNorm2d -> ReLU`` with "same" padding (``dilation * (k - 1) / 2``), so a
    stride of 1 keeps the size and a stride of 2 gives ``ceil(n / 2)``.

    ``bias`` is explicit because the authors' models differ: their U-Net keeps the
    convolution bias in front of batch norm (redundant, but counted in its 31,042,369
    parameters), their DeepLabV3 drops it."""
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=bias,
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def check_multiple(x_shape: tuple[int, ...], divisor: int, model: str) -> None:
    """Raise a ValueError if the last two sizes of ``x_shape`` are not multiples of
    ``divisor`` (shape metadata only: no device synchronisation)."""
    height, width = x_shape[-2], x_shape[-1]
    if height % divisor or width % divisor or height < divisor or width < divisor:
        # Imported here: sizes.py is a sibling package module with no torch state.
        from calfseg.models.sizes import SizeRule, size_message

        raise OptionError(size_message(model, SizeRule(divisor, divisor), height, width))
