"""The model names and presets every part of :mod:`calfseg.models` agrees on."""

from __future__ import annotations

from calfseg.errors import unknown_choice

MODELS: tuple[str, ...] = ("unet", "deeplabv3", "fpn")
SMP_PRESETS: tuple[str, ...] = ("tiny", "paper")
AUTHORS_PRESET = "authors"
MODEL_PRESETS: tuple[str, ...] = (*SMP_PRESETS, AUTHORS_PRESET)

LABELS: dict[str, str] = {"unet": "U-Net", "deeplabv3": "DeepLabV3", "fpn": "FPN"}


def check_name(name: str) -> None:
    """Raise a ValueError listing :data:`MODELS` if ``name`` is not one of them."""
    if name not in MODELS:
        raise unknown_choice("model", name, MODELS)


def check_preset(preset: str) -> None:
    """Raise a ValueError listing :data:`MODEL_PRESETS` if ``preset`` is not one of them."""
    if preset not in MODEL_PRESETS:
        raise unknown_choice("preset", preset, MODEL_PRESETS, valid="valid presets")
