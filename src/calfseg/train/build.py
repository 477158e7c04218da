"""Build what a run needs from its :class:`TrainConfig`: datasets, model and losses, with
the start-up checks (split present, input size, loss name) that fail with clear messages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from calfseg.data import SliceCache, SliceDataset, parse_filter
from calfseg.data.cache import FINGERPRINT_FILE
from calfseg.losses import build_loss
from calfseg.losses.registry import LOSSES
from calfseg.models import build_model, check_input_size
from calfseg.train.config import TrainConfig


class RunSetupError(ValueError):
    """A run that cannot start: a missing split, a size the model rejects, a bad option."""


@dataclass
class CacheInfo:
    """What a model needs to know of a cache: channels, slice size, preprocessing options."""

    channels: int
    height: int
    width: int
    options: dict[str, Any]
    image_dtype: str


def cache_info(cache: str | Path) -> CacheInfo:
    """Read a cache's meta (:class:`calfseg.data.CacheError` if it is not a finished one)."""
    meta = SliceCache.open(cache).meta
    height, width = (int(v) for v in meta["size"])
    return CacheInfo(
        channels=len(meta["channels"]),
        height=height,
        width=width,
        options=dict(meta.get("options", {})),
        image_dtype=str(meta["image_dtype"]),
    )


def open_split(
    config: TrainConfig, split: str, *, train: bool = False, purpose: str = ""
) -> SliceDataset:
    """The dataset of ``split``; training splits get the filters and augmentation."""
    filters = [parse_filter(text, seed=config.seed) for text in config.filters] if train else []
    try:
        return SliceDataset(
            config.cache, split, filters=filters, augment=config.augment and train, seed=config.seed
        )
    except ValueError as err:
        hint = f" ({purpose})" if purpose else ""
        raise RunSetupError(f"cannot use split {split!r}{hint}: {err}") from err


def model_for(config: TrainConfig, info: CacheInfo) -> nn.Module:
    """The run's model, after checking that it takes the cache's slice size."""
    try:
        check_input_size(
            config.model, config.preset, info.height, info.width, encoder=config.encoder
        )
    except ValueError as err:
        raise RunSetupError(
            f"{err} (the cache {config.cache} holds {info.height}x{info.width} slices: "
            "prepare it again with calf prepare --size N, or choose another model)"
        ) from err
    return build_model(
        config.model, preset=config.preset, in_channels=info.channels, encoder=config.encoder
    )


def loss_for(config: TrainConfig, *, sync: bool = True) -> nn.Module:
    """The run's loss; ``calf-dataset`` gets the cache's fingerprint.json. ``sync=False``
    turns off CALF's cross-rank batch statistics (validation shards differ in length)."""
    options = dict(config.loss_options)
    if not sync and "sync" in LOSSES[config.loss].options:
        options["sync"] = False
    fingerprint = Path(config.cache) / FINGERPRINT_FILE
    return build_loss(
        config.loss, fingerprint=fingerprint if fingerprint.is_file() else None, **options
    )


def uses_branches(config: TrainConfig) -> bool:
    """CALF losses report which branch each step used."""
    return config.loss.startswith("calf")
