"""``build_model``, ``input_size_rule`` and ``check_input_size`` over both kinds of model:
the smp presets (``tiny``, ``paper``) and the authors' hand-written models (``authors``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from calfseg.errors import OptionError
from calfseg.models import authors
from calfseg.models.names import AUTHORS_PRESET, LABELS, SMP_PRESETS, check_name, check_preset
from calfseg.models.sizes import SizeRule, check_size_values, size_message
from calfseg.models.smp_presets import build_smp_model, resolve_smp, smp_size_rule


def _check_authors_arguments(name: str, encoder: str | None, options: Mapping[str, Any]) -> None:
    """The authors' models have fixed layers: an smp encoder or option is an error."""
    smp = ", ".join(SMP_PRESETS)
    if encoder is not None:
        raise OptionError(
            f"encoder={encoder!r} does not apply to preset {AUTHORS_PRESET!r}: the authors' "
            f"{LABELS[name]} is hand-written, with no smp encoder; choose an encoder with "
            f"preset {smp}"
        )
    if options:
        raise OptionError(
            f"preset {AUTHORS_PRESET!r} takes no smp options (got {', '.join(sorted(options))}):"
            f" the authors' {LABELS[name]} has fixed layers; use preset {smp} for smp options"
        )


def input_size_rule(
    name: str, size: str = "tiny", *, encoder: str | None = None, **options: Any
) -> SizeRule:
    """The input sizes model ``name`` takes with these :func:`build_model` arguments.

    smp presets: DeepLabV3 and FPN take multiples of the encoder's output stride,
    ``min(output_stride, 2 ** encoder_depth)``; U-Net any size of at least
    ``2 ** encoder_depth`` (see :func:`calfseg.models.smp_presets.smp_size_rule`).
    ``authors``: U-Net multiples of 16, DeepLabV3 multiples of 32, FPN any size (see
    :mod:`calfseg.models.authors`).
    """
    check_name(name)
    check_preset(size)
    if size == AUTHORS_PRESET:
        _check_authors_arguments(name, encoder, options)
        return authors.SIZE_RULES[name]
    _, merged = resolve_smp(name, size, encoder, options)
    return smp_size_rule(name, merged)


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
    check_size_values(height, width)
    rule = input_size_rule(name, size, encoder=encoder, **options)
    if rule.accepts(height, width):
        return
    if size == AUTHORS_PRESET:
        model = f"the authors' {LABELS[name]} (preset {size!r})"
    else:
        enc, _ = resolve_smp(name, size, encoder, options)
        model = f"{LABELS[name]} with encoder {enc} (preset {size!r})"
    raise OptionError(size_message(model, rule, height, width))


def build_model(
    name: str,
    *,
    preset: str = "tiny",
    in_channels: int = 1,
    encoder: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build model ``name`` (``unet``, ``deeplabv3`` or ``fpn``) at ``preset``.

    Args:
        name: one of :data:`~calfseg.models.MODELS`.
        preset: ``"tiny"`` or ``"paper"`` (smp models, the project's recommended ones; see
            :mod:`calfseg.models.smp_presets`), or ``"authors"`` (the authors' hand-written
            models, exactly their layers and parameter counts; see
            :mod:`calfseg.models.authors`).
        in_channels: image channels (the paper: 1, one MR sequence per sample).
        encoder: an smp encoder name replacing the preset's (e.g. ``"resnet18"``,
            ``"tu-resnet10t"``); randomly initialised. Not for ``authors``.
        kwargs: smp constructor options overriding the preset's (``encoder_depth``,
            ``decoder_channels``, ``decoder_atrous_rates``, ``encoder_output_stride``, ...).
            ``encoder_weights`` may only be None. DeepLabV3 also takes
            ``encoder_output_stride=32`` (smp allows 8 or 16): an undilated encoder, as in the
            paper. Not for ``authors``.

    Returns:
        An ``nn.Module`` mapping ``(B, in_channels, H, W)`` to ``(B, 1, H, W)`` logits, for H
        and W accepted by :func:`check_input_size`. DeepLabV3 (both kinds) cannot train on
        batches of one image (its ASPP pooling branch has batch norm over a 1x1 map).

    Raises:
        ValueError: an unknown name or preset (the message lists the valid ones), a bad
            option, or an smp option with ``preset="authors"``.
    """
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise OptionError(f"in_channels must be a positive integer, got {in_channels!r}")
    check_name(name)
    check_preset(preset)
    if preset == AUTHORS_PRESET:
        _check_authors_arguments(name, encoder, kwargs)
        return authors.BUILDERS[name](in_channels)
    enc, options = resolve_smp(name, preset, encoder, kwargs)
    return build_smp_model(name, enc, in_channels, options)
