"""The project's recommended models: U-Net, DeepLabV3 and FPN from
segmentation_models_pytorch (smp), at two sizes.

Encoders are randomly initialised (``encoder_weights=None`` always): nothing is ever
downloaded, as in the paper, whose models had no pretraining.

- ``tiny``: small enough that a training step of 8 images of 64x64 takes tens of
  milliseconds on two CPU cores; for tests, examples and quick benchmarks.
- ``paper``: capacity close to the paper's hand-written models (docs/method.md section 5), on
  standard smp encoders. The authors' exact models are the ``authors`` preset
  (:mod:`calfseg.models.authors`).

===========  ==================================================  =============================
model        tiny                                                 paper
===========  ==================================================  =============================
unet         tu-resnet10t, depth 3, decoder (32, 16, 8)           vgg16_bn, depth 5, decoder
                                                                  (512, 256, 128, 64, 32)
deeplabv3    tu-resnet10t, depth 3 (stride 8), ASPP 64 ch,        resnet34, output stride 32,
             rates (6, 12, 18)                                    ASPP 256 ch, rates (6, 12, 18)
fpn          tu-resnet10t, pyramid 64, segmentation 32            tu-resnet26 (bottleneck
                                                                  [2, 2, 2, 2]), 256 / 128
===========  ==================================================  =============================

smp is an optional dependency (the ``train`` extra), imported when a model is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from calfseg.errors import OptionError
from calfseg.extras import require
from calfseg.models.names import AUTHORS_PRESET, SMP_PRESETS, check_name, check_preset
from calfseg.models.sizes import SizeRule

_SMP_CLASSES = {"unet": "Unet", "deeplabv3": "DeepLabV3", "fpn": "FPN"}
_SMP_DEFAULT_OUTPUT_STRIDE = 8  # smp.DeepLabV3's default encoder_output_stride
_DEEPLAB_OUTPUT_STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class ModelPreset:
    """An encoder and the smp constructor options of one (model, size) pair."""

    encoder: str
    options: Mapping[str, Any] = field(default_factory=dict)


_PRESETS: dict[tuple[str, str], ModelPreset] = {
    ("unet", "tiny"): ModelPreset(
        "tu-resnet10t", {"encoder_depth": 3, "decoder_channels": (32, 16, 8)}
    ),
    ("unet", "paper"): ModelPreset(
        "vgg16_bn", {"encoder_depth": 5, "decoder_channels": (512, 256, 128, 64, 32)}
    ),
    ("deeplabv3", "tiny"): ModelPreset(
        "tu-resnet10t",
        {
            "encoder_depth": 3,
            "encoder_output_stride": 8,
            "decoder_channels": 64,
            "decoder_atrous_rates": (6, 12, 18),
        },
    ),
    ("deeplabv3", "paper"): ModelPreset(
        "resnet34",
        {
            "encoder_depth": 5,
            "encoder_output_stride": 32,
            "decoder_channels": 256,
            "decoder_atrous_rates": (6, 12, 18),
        },
    ),
    ("fpn", "tiny"): ModelPreset(
        "tu-resnet10t",
        {"encoder_depth": 5, "decoder_pyramid_channels": 64, "decoder_segmentation_channels": 32},
    ),
    ("fpn", "paper"): ModelPreset(
        "tu-resnet26",
        {"encoder_depth": 5, "decoder_pyramid_channels": 256, "decoder_segmentation_channels": 128},
    ),
}


def get_preset(name: str, size: str = "tiny") -> ModelPreset:
    """The :class:`ModelPreset` (smp encoder and options) of model ``name`` at ``size``
    (``tiny`` or ``paper``). The ``authors`` preset has none: its models are hand-written."""
    check_name(name)
    check_preset(size)
    if size == AUTHORS_PRESET:
        raise OptionError(
            f"preset {AUTHORS_PRESET!r} has no smp encoder or options: it is the authors' "
            f"hand-written model (calfseg.models.authors); get_preset describes the smp "
            f"presets {', '.join(SMP_PRESETS)}"
        )
    return _PRESETS[(name, size)]


def resolve_smp(
    name: str, size: str, encoder: str | None, options: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The encoder and the merged smp options, with the arguments checked."""
    chosen = get_preset(name, size)
    if "encoder_name" in options:
        raise OptionError("pass the encoder as encoder=..., not encoder_name=...")
    if options.get("encoder_weights") is not None:
        raise OptionError(
            f"encoder_weights must be None (got {options['encoder_weights']!r}): calf-seg "
            "trains from random initialisation, as the paper did, and never downloads weights"
        )
    merged = {**chosen.options, **options}
    merged.pop("encoder_weights", None)
    depth = merged.get("encoder_depth", 5)
    if not isinstance(depth, int) or not 1 <= depth <= 5:
        raise OptionError(f"encoder_depth must be an integer from 1 to 5, got {depth!r}")
    if name == "fpn" and depth != 5:
        raise OptionError(
            f"FPN needs encoder_depth=5, got {depth}: smp's FPN decoder always merges four "
            "pyramid levels and upsamples as if there were five encoder stages"
        )
    if name == "unet":
        channels = merged.get("decoder_channels", (256, 128, 64, 32, 16))
        if len(channels) != depth:
            raise OptionError(
                f"U-Net needs one decoder_channels entry per encoder stage: encoder_depth is "
                f"{depth} but decoder_channels has {len(channels)} ({tuple(channels)})"
            )
    if name == "deeplabv3":
        stride = merged.get("encoder_output_stride", _SMP_DEFAULT_OUTPUT_STRIDE)
        if stride not in _DEEPLAB_OUTPUT_STRIDES:
            raise OptionError(
                f"encoder_output_stride must be one of {_DEEPLAB_OUTPUT_STRIDES}, got {stride!r}"
            )
    return encoder or chosen.encoder, merged


def smp_size_rule(name: str, merged: Mapping[str, Any]) -> SizeRule:
    """DeepLabV3 and FPN: multiples of ``min(output_stride, 2 ** encoder_depth)`` (smp's
    rule; the output stride is 32 except DeepLabV3's 8, 16 or 32), since their decoders
    upsample by fixed factors. U-Net: any size of at least ``2 ** encoder_depth`` (smp's U-Net
    resizes each upsampled map to its skip connection's size, so odd sizes work; smaller
    images leave a pooling stage with nothing to pool)."""
    depth = merged.get("encoder_depth", 5)
    if name == "unet":
        return SizeRule(divisor=1, minimum=2**depth)
    stride = 32
    if name == "deeplabv3":
        stride = merged.get("encoder_output_stride", _SMP_DEFAULT_OUTPUT_STRIDE)
    divisor = int(min(stride, 2**depth))
    return SizeRule(divisor=divisor, minimum=divisor)


def build_smp_model(
    name: str, encoder: str, in_channels: int, options: dict[str, Any]
) -> nn.Module:
    """smp's model ``name`` on ``encoder`` (random weights) with the resolved ``options``."""
    smp = require("segmentation_models_pytorch", "building a segmentation model")
    options = {"classes": 1, **options}
    if name == "deeplabv3" and options.get("encoder_output_stride") == 32:
        return _deeplabv3_stride_32(smp, encoder, in_channels, options)
    cls = getattr(smp, _SMP_CLASSES[name])
    model: nn.Module = cls(
        encoder_name=encoder, encoder_weights=None, in_channels=in_channels, **options
    )
    return model


def _deeplabv3_stride_32(
    smp: Any, encoder: str, in_channels: int, options: dict[str, Any]
) -> nn.Module:
    """DeepLabV3 on an undilated encoder (output stride 32), which smp does not offer: build
    it at stride 16, then swap in the same encoder without dilation and upsample the logits
    by the encoder's true stride."""
    depth = options.get("encoder_depth", 5)
    stride = min(32, 2**depth)
    options = {**options, "encoder_output_stride": 16}
    options.setdefault("upsampling", stride)
    model = smp.DeepLabV3(
        encoder_name=encoder, encoder_weights=None, in_channels=in_channels, **options
    )
    model.encoder = smp.encoders.get_encoder(
        encoder, in_channels=in_channels, depth=depth, weights=None, output_stride=32
    )
    return model
