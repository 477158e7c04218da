"""The authors' DeepLabV3 (``models/deeplabv3.py`` of masa-byte/MICCAI-Submission, a class
they call ``Deeplabv3Plus``; docs/method.md 5).

- encoder: a PLAIN convolutional network, no residual connections: a ``7x7 conv, stride 2
  -> BN -> ReLU`` stem and a 3x3 max pooling with stride 2, then four stages of
  ``3x3 conv -> BN -> ReLU`` units, 3, 4, 6 and 3 units wide 64, 128, 256 and 512 (the layout
  of a ResNet-34, one convolution per "block" instead of two, no shortcuts); the first unit of
  stages 2-4 has stride 2. Output stride 32, no dilation. 9,779,776 parameters.
- ASPP on the stride-32 map: a 1x1 branch, three 3x3 branches dilated 6, 12 and 18, and an
  image-pooling branch (global average, 1x1 conv), each 256 channels with BN and ReLU;
  concatenated (1280 channels) and projected by a 1x1 conv to 256, BN, ReLU, dropout 0.5.
  4,131,840 parameters.
- head: ``3x3 conv -> BN -> ReLU`` at 256 channels and a 1x1 conv to one logit (with bias),
  then bilinear upsampling by 32 (``align_corners=False``). 590,593 parameters.

No convolution has a bias except the last. Total with one input channel: 14,502,209.

At 256x256 the ASPP sees an 8x8 map, where dilations of 12 and 18 reach mostly padding.
The fixed upsampling by 32 needs H and W multiples of 32 (the authors' code silently returns
``32 * ceil(H / 32)`` rows otherwise; this one raises a ValueError naming the sizes that
work). Training needs batches of 2 or more: the pooling branch normalises a 1x1 map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from calfseg.models.authors.blocks import check_multiple, conv_bn_relu

STAGE_UNITS = (3, 4, 6, 3)
STAGE_WIDTHS = (64, 128, 256, 512)
ATROUS_RATES = (6, 12, 18)
ASPP_WIDTH = 256
OUTPUT_STRIDE = 32


def plain_encoder(in_channels: int) -> nn.Sequential:
    """Stem, max pooling and four stages of single-conv units, one flat chain of modules."""
    layers: list[nn.Module] = [
        conv_bn_relu(in_channels, STAGE_WIDTHS[0], 7, stride=2, bias=False),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    ]
    width = STAGE_WIDTHS[0]
    for index, (units, out) in enumerate(zip(STAGE_UNITS, STAGE_WIDTHS, strict=True)):
        stride = 1 if index == 0 else 2  # the stem and pooling already divide by 4
        stage = [conv_bn_relu(width, out, stride=stride, bias=False)]
        stage += [conv_bn_relu(out, out, bias=False) for _ in range(units - 1)]
        layers.append(nn.Sequential(*stage))
        width = out
    return nn.Sequential(*layers)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: parallel 1x1, dilated 3x3 and image-pooling branches,
    concatenated and projected (Chen et al. 2017, as the authors configure it)."""

    def __init__(self, in_channels: int, width: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        self.point = conv_bn_relu(in_channels, width, 1, bias=False)
        self.dilated = nn.ModuleList(
            conv_bn_relu(in_channels, width, dilation=rate, bias=False) for rate in rates
        )
        self.image = conv_bn_relu(in_channels, width, 1, bias=False)
        self.project = nn.Sequential(
            conv_bn_relu((len(rates) + 2) * width, width, 1, bias=False), nn.Dropout(0.5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.point(x), *(conv(x) for conv in self.dilated)]
        pooled = self.image(F.adaptive_avg_pool2d(x, 1))
        # Bilinear resizing of a 1x1 map (the authors' code) is this broadcast.
        branches.append(pooled.expand(-1, -1, *x.shape[-2:]))
        projected: torch.Tensor = self.project(torch.cat(branches, dim=1))
        return projected


class AuthorsDeepLabV3(nn.Module):
    """The authors' DeepLabV3: ``(B, in_channels, H, W) -> (B, 1, H, W)`` logits, H and W
    multiples of 32."""

    name = "authors-deeplabv3"

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.encoder = plain_encoder(in_channels)
        self.aspp = ASPP(STAGE_WIDTHS[-1], ASPP_WIDTH, ATROUS_RATES)
        self.head = nn.Sequential(
            conv_bn_relu(ASPP_WIDTH, ASPP_WIDTH, bias=False), nn.Conv2d(ASPP_WIDTH, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_multiple(tuple(x.shape), OUTPUT_STRIDE, "the authors' DeepLabV3 (preset 'authors')")
        coarse = self.head(self.aspp(self.encoder(x)))
        return F.interpolate(
            coarse, scale_factor=OUTPUT_STRIDE, mode="bilinear", align_corners=False
        )
