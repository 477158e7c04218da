"""Model factory: U-Net, DeepLabV3 and FPN from segmentation_models_pytorch (smp).

Every model maps ``(B, in_channels, H, W)`` images to ``(B, 1, H, W)`` logits. Encoders are
randomly initialised (``encoder_weights=None`` always): nothing is ever downloaded, as in the
paper, whose models had no pretraining.

Two size presets (docs/models.md has the parameter counts and what differs from the paper):

- ``tiny``: small enough that a training step of 8 images of 64x64 takes tens of
  milliseconds on two CPU cores; for tests, examples and quick benchmarks.
- ``paper``: capacity close to the paper's hand-written models (METHOD.md section 5).

===========  ==================================================  =============================
model        tiny                                                 paper
===========  ==================================================  =============================
unet         tu-resnet10t, depth 4, decoder (64, 32, 16, 8)       vgg16_bn, depth 5, decoder
                                                                  (512, 256, 128, 64, 32)
deeplabv3    tu-resnet10t, depth 3 (stride 8), ASPP 64 ch,        resnet34, output stride 32,
             rates (6, 12, 18)                                    ASPP 256 ch, rates (6, 12, 18)
fpn          tu-resnet10t, pyramid 64, segmentation 32            tu-resnet26 (bottleneck
                                                                  [2, 2, 2, 2]), 256 / 128
===========  ==================================================  =============================

Input sizes (:func:`input_size_rule`): DeepLabV3 and FPN need H and W divisible by the
encoder's output stride (32, or 8 for the tiny DeepLabV3); U-Net takes any size of at least
``2 ** encoder_depth``. :func:`check_input_size` says so at start-up, with the nearest sizes
that work, instead of failing at the first batch.

smp is an optional dependency (the ``train`` extra), imported when a model is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from calfseg.extras import require

MODELS: tuple[str, ...] = ("unet", "deeplabv3", "fpn")
PRESETS: tuple[str, ...] = ("tiny", "paper")

_LABELS = {"unet": "U-Net", "deeplabv3": "DeepLabV3", "fpn": "FPN"}
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
        "tu-resnet10t", {"encoder_depth": 4, "decoder_channels": (64, 32, 16, 8)}
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
    """The :class:`ModelPreset` of model ``name`` at ``size`` (``tiny`` or ``paper``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    if size not in PRESETS:
        raise ValueError(f"unknown preset {size!r}; valid presets: {', '.join(PRESETS)}")
    return _PRESETS[(name, size)]


def _resolve(
    name: str, size: str, encoder: str | None, options: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The encoder and the merged smp options, with the arguments checked."""
    chosen = get_preset(name, size)
    if "encoder_name" in options:
        raise ValueError("pass the encoder as encoder=..., not encoder_name=...")
    if options.get("encoder_weights") is not None:
        raise ValueError(
            f"encoder_weights must be None (got {options['encoder_weights']!r}): calf-seg "
            "trains from random initialisation, as the paper did, and never downloads weights"
        )
    merged = {**chosen.options, **options}
    merged.pop("encoder_weights", None)
    depth = merged.get("encoder_depth", 5)
    if not isinstance(depth, int) or not 1 <= depth <= 5:
        raise ValueError(f"encoder_depth must be an integer from 1 to 5, got {depth!r}")
    if name == "fpn" and depth != 5:
        raise ValueError(
            f"FPN needs encoder_depth=5, got {depth}: smp's FPN decoder always merges four "
            "pyramid levels and upsamples as if there were five encoder stages"
        )
    if name == "unet":
        channels = merged.get("decoder_channels", (256, 128, 64, 32, 16))
        if len(channels) != depth:
            raise ValueError(
                f"U-Net needs one decoder_channels entry per encoder stage: encoder_depth is "
                f"{depth} but decoder_channels has {len(channels)} ({tuple(channels)})"
            )
    if name == "deeplabv3":
        stride = merged.get("encoder_output_stride", _SMP_DEFAULT_OUTPUT_STRIDE)
        if stride not in _DEEPLAB_OUTPUT_STRIDES:
            raise ValueError(
                f"encoder_output_stride must be one of {_DEEPLAB_OUTPUT_STRIDES}, got {stride!r}"
            )
    return encoder or chosen.encoder, merged


@dataclass(frozen=True)
class SizeRule:
    """Which input sizes a model takes: H and W multiples of ``divisor``, at least ``minimum``."""

    divisor: int
    minimum: int

    def accepts(self, height: int, width: int) -> bool:
        return all(n >= self.minimum and n % self.divisor == 0 for n in (height, width))


def input_size_rule(
    name: str, size: str = "tiny", *, encoder: str | None = None, **options: Any
) -> SizeRule:
    """The input sizes model ``name`` takes with these :func:`build_model` arguments.

    DeepLabV3 and FPN: multiples of the encoder's output stride,
    ``min(output_stride, 2 ** encoder_depth)`` (smp's rule; the output stride is 32 except
    DeepLabV3's 8, 16 or 32), since their decoders upsample by fixed factors. U-Net: any size
    of at least ``2 ** encoder_depth`` (smp's U-Net resizes each upsampled map to its skip
    connection's size, so odd sizes work; multiples of ``2 ** encoder_depth`` avoid that
    resampling, and smaller images leave a pooling stage with nothing to pool).
    """
    _, merged = _resolve(name, size, encoder, options)
    depth = merged.get("encoder_depth", 5)
    if name == "unet":
        return SizeRule(divisor=1, minimum=2**depth)
    stride = 32
    if name == "deeplabv3":
        stride = merged.get("encoder_output_stride", _SMP_DEFAULT_OUTPUT_STRIDE)
    divisor = int(min(stride, 2**depth))
    return SizeRule(divisor=divisor, minimum=divisor)


def _nearest(n: int, rule: SizeRule) -> str:
    below = (n // rule.divisor) * rule.divisor
    above = max(below + rule.divisor, rule.minimum)
    return f"{below} or {above}" if below >= rule.minimum else str(above)


def check_input_size(
    name: str,
    size: str,
    height: int,
    width: int,
    *,
    encoder: str | None = None,
    **options: Any,
) -> None:
    """Raise a ValueError, naming the sizes that work, if model ``name`` at preset ``size``
    (with ``encoder`` and smp ``options`` as given to :func:`build_model`) cannot take
    ``height x width`` inputs; see :func:`input_size_rule`."""
    for label, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    rule = input_size_rule(name, size, encoder=encoder, **options)
    if rule.accepts(height, width):
        return
    enc, _ = _resolve(name, size, encoder, options)
    bad = [(axis, n) for axis, n in (("H", height), ("W", width)) if not rule.accepts(n, n)]
    needs = f"H and W divisible by {rule.divisor}"
    if rule.divisor == 1:
        needs = f"H and W of at least {rule.minimum}"
    elif rule.minimum > rule.divisor:
        needs += f" and at least {rule.minimum}"
    tries = ", ".join(f"{axis} = {_nearest(n, rule)}" for axis, n in bad)
    raise ValueError(
        f"{_LABELS[name]} with encoder {enc} (preset {size!r}) needs {needs}; "
        f"got {height}x{width}: try {tries}"
    )


def build_model(
    name: str,
    *,
    preset: str = "tiny",
    in_channels: int = 1,
    encoder: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build model ``name`` (``unet``, ``deeplabv3`` or ``fpn``) at ``preset`` size.

    Args:
        name: one of :data:`MODELS`.
        preset: ``"tiny"`` or ``"paper"`` (see the module docstring).
        in_channels: image channels (the paper: 1, one MR sequence per sample).
        encoder: an smp encoder name replacing the preset's (e.g. ``"resnet18"``,
            ``"tu-resnet10t"``); randomly initialised.
        kwargs: smp constructor options overriding the preset's (``encoder_depth``,
            ``decoder_channels``, ``decoder_atrous_rates``, ``encoder_output_stride``, ...).
            ``encoder_weights`` may only be None. DeepLabV3 also takes
            ``encoder_output_stride=32`` (smp allows 8 or 16): an undilated encoder, as in the
            paper.

    Returns:
        An ``nn.Module`` mapping ``(B, in_channels, H, W)`` to ``(B, 1, H, W)`` logits, for H
        and W accepted by :func:`check_input_size`. DeepLabV3 cannot train on batches of one
        image (its ASPP pooling branch has batch norm over a 1x1 map).
    """
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
    enc, options = _resolve(name, preset, encoder, kwargs)
    smp = require("segmentation_models_pytorch", "building a segmentation model")
    options.setdefault("classes", 1)
    cls = getattr(smp, _SMP_CLASSES[name])
    if name == "deeplabv3" and options.get("encoder_output_stride") == 32:
        return _deeplabv3_stride_32(smp, enc, in_channels, options)
    model: nn.Module = cls(
        encoder_name=enc, encoder_weights=None, in_channels=in_channels, **options
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
