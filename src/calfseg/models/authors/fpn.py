"""The authors' FPN (``models/fpn_net.py`` of masa-byte/MICCAI-Submission; docs/method.md 5).

- encoder: a ResNet with bottleneck blocks [2, 2, 2, 2] (He et al. 2016): a ``7x7 conv,
  stride 2 -> BN -> ReLU`` stem and a 3x3 max pooling with stride 2, then four stages of two
  bottlenecks (``1x1 -> 3x3 -> 1x1`` convolutions, widths 64, 128, 256, 512, expanded 4x to
  256, 512, 1024, 2048; a 1x1 projection shortcut with BN where the shape changes; stride 2
  in the 3x3 of the first block of stages 2-4). No convolution bias. 13,939,904 parameters.
- head (Lin et al. 2017's top-down path, used at P2 only): a 1x1 conv maps C5 to 256
  channels; three 1x1 laterals map C4, C3, C2 to 256; each level is the coarser one resized
  bilinearly (``align_corners=False``) to the lateral's size plus the lateral; P2 is smoothed
  by one 3x3 conv; a 1x1 conv gives one logit, resized bilinearly (``align_corners=True``) to
  the input size. All head convolutions have a bias. 1,574,401 parameters.

Total with one input channel: 15,514,305. Every resize goes to an explicit size, and every
stride-2 layer gives ``ceil(n / 2)``, so any H, W >= 1 works (to be useful, the image must
be much larger than the stride of 32 at C5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STAGE_BLOCKS = (2, 2, 2, 2)
STAGE_WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
PYRAMID_WIDTH = 256


class Bottleneck(nn.Module):
    """``relu(BN(1x1) of relu(BN(3x3, stride)) of relu(BN(1x1)) + shortcut)``; the shortcut is
    the identity, or a strided 1x1 conv with BN when the shape changes."""

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out = EXPANSION * width
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.spatial = nn.Sequential(
            nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        self.expand = nn.Sequential(nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.expand(self.spatial(self.reduce(x)))
        return F.relu(residual + self.shortcut(x))


class BottleneckEncoder(nn.Module):
    """Stem, pooling and four bottleneck stages; returns C2, C3, C4, C5 (strides 4 to 32)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, STAGE_WIDTHS[0], 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(STAGE_WIDTHS[0]),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        stages = []
        channels = STAGE_WIDTHS[0]
        for index, (blocks, width) in enumerate(zip(STAGE_BLOCKS, STAGE_WIDTHS, strict=True)):
            strides = [1 if index == 0 else 2] + [1] * (blocks - 1)
            stage = []
            for stride in strides:
                stage.append(Bottleneck(channels, width, stride))
                channels = EXPANSION * width
            stages.append(nn.Sequential(*stage))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class P2Head(nn.Module):
    """The top-down path from C5 to P2, one 3x3 smoothing conv on P2, one logit per pixel."""

    def __init__(self) -> None:
        super().__init__()
        c2, c3, c4, c5 = (EXPANSION * w for w in STAGE_WIDTHS)
        self.top = nn.Conv2d(c5, PYRAMID_WIDTH, 1)
        # Laterals of C4, C3, C2, in top-down order.
        self.laterals = nn.ModuleList(nn.Conv2d(c, PYRAMID_WIDTH, 1) for c in (c4, c3, c2))
        self.smooth = nn.Conv2d(PYRAMID_WIDTH, PYRAMID_WIDTH, 3, padding=1)
        self.classifier = nn.Conv2d(PYRAMID_WIDTH, 1, 1)

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        c2, c3, c4, c5 = features
        level = self.top(c5)
        for lateral, c in zip(self.laterals, (c4, c3, c2), strict=True):
            side = lateral(c)
            level = side + F.interpolate(
                level, size=side.shape[-2:], mode="bilinear", align_corners=False
            )
        logits = self.classifier(self.smooth(level))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=True)


class AuthorsFPN(nn.Module):
    """The authors' FPN: ``(B, in_channels, H, W) -> (B, 1, H, W)`` logits, any H and W."""

    name = "authors-fpn"

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.encoder = BottleneckEncoder(in_channels)
        self.head = P2Head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.encoder(x), (x.shape[-2], x.shape[-1]))
        return out
