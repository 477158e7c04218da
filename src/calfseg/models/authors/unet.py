"""The authors' U-Net (``models/u_net.py`` of masa-byte/MICCAI-Submission; docs/method.md 5).

The classic U-Net of Ronneberger et al. (2015) with batch norm and "same" padding:

- encoder: four stages of two ``3x3 conv (bias) -> BN -> ReLU``, widths 64, 128, 256, 512,
  each followed by a 2x2 max pooling;
- bottleneck: the same double convolution at 1024 channels (at 1/16 of the input size);
- decoder: four times a 2x2 transposed convolution with stride 2 (halving the width), then
  concatenation with the encoder stage of that size and a double convolution back to that
  stage's width;
- head: a 1x1 convolution to one logit.

With one input channel: 31,042,369 parameters. The concatenations need each pooling to halve
exactly, so H and W must be multiples of 16 (the authors' code fails inside ``torch.cat``
otherwise; this one raises a ValueError naming the sizes that work).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from calfseg.models.authors.blocks import check_multiple, conv_bn_relu

WIDTHS = (64, 128, 256, 512)
BOTTLENECK = 1024
DIVISOR = 2 ** len(WIDTHS)  # four 2x2 poolings


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two ``3x3 conv (with bias) -> BN -> ReLU``, the U-Net's unit."""
    return nn.Sequential(
        conv_bn_relu(in_channels, out_channels, bias=True),
        conv_bn_relu(out_channels, out_channels, bias=True),
    )


class AuthorsUNet(nn.Module):
    """The authors' U-Net: ``(B, in_channels, H, W) -> (B, 1, H, W)`` logits, H and W
    multiples of 16."""

    name = "authors-unet"

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        inputs = (in_channels, *WIDTHS[:-1])
        self.down = nn.ModuleList(
            double_conv(n_in, n_out) for n_in, n_out in zip(inputs, WIDTHS, strict=True)
        )
        self.bottleneck = double_conv(WIDTHS[-1], BOTTLENECK)
        # Decoder, deepest first: upsampling from 2w to w channels, then 2w (after the skip
        # concatenation) back to w.
        deeper = (*WIDTHS[1:], BOTTLENECK)
        pairs = list(zip(deeper, WIDTHS, strict=True))[::-1]
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(wide, narrow, kernel_size=2, stride=2) for wide, narrow in pairs
        )
        self.merge = nn.ModuleList(double_conv(2 * narrow, narrow) for _, narrow in pairs)
        self.head = nn.Conv2d(WIDTHS[0], 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_multiple(tuple(x.shape), DIVISOR, "the authors' U-Net (preset 'authors')")
        skips = []
        for stage in self.down:
            x = stage(x)
            skips.append(x)
            x = F.max_pool2d(x, kernel_size=2, stride=2)
        x = self.bottleneck(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        logits: torch.Tensor = self.head(x)
        return logits
