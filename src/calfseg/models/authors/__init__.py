"""The authors' three hand-written models (preset ``authors``), in plain torch.

Written for calf-seg from docs/method.md section 5 and the facts (widths, kernels, strides,
biases, norms, resizing) of the authors' public files ``models/u_net.py``,
``models/deeplabv3.py`` and ``models/fpn_net.py`` (GitHub masa-byte/MICCAI-Submission). One
logit out; ``in_channels`` input channels (the authors: 1). Parameter counts with one input
channel equal the authors' classes':

=========  ==========  ==============================================================
model      parameters  input sizes (:data:`SIZE_RULES`)
=========  ==========  ==============================================================
unet       31,042,369  H, W multiples of 16 (four poolings, undone exactly)
deeplabv3  14,502,209  H, W multiples of 32 (logits upsampled by a fixed 32)
fpn        15,514,305  any H, W (every resize goes to an explicit size)
=========  ==========  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from calfseg.models.authors.deeplabv3 import OUTPUT_STRIDE, AuthorsDeepLabV3
from calfseg.models.authors.fpn import AuthorsFPN
from calfseg.models.authors.unet import DIVISOR as UNET_DIVISOR
from calfseg.models.authors.unet import AuthorsUNet
from calfseg.models.sizes import SizeRule

BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    "unet": AuthorsUNet,
    "deeplabv3": AuthorsDeepLabV3,
    "fpn": AuthorsFPN,
}

SIZE_RULES: dict[str, SizeRule] = {
    "unet": SizeRule(divisor=UNET_DIVISOR, minimum=UNET_DIVISOR),
    "deeplabv3": SizeRule(divisor=OUTPUT_STRIDE, minimum=OUTPUT_STRIDE),
    "fpn": SizeRule(divisor=1, minimum=1),
}

__all__ = [
    "BUILDERS",
    "SIZE_RULES",
    "AuthorsDeepLabV3",
    "AuthorsFPN",
    "AuthorsUNet",
]
