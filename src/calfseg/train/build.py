"""Build what a run needs from its :class:`TrainConfig`: datasets, model and losses, with
the start-up checks (split present, input size, loss name) that fail with clear messages;
the seeding and determinism settings, the mixed-precision mode and each rank's batches.
:func:`calfseg.train.state.start_training` puts these together in the order a run needs."""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from calfseg.data import SliceCache, SliceDataset, parse_filter
from calfseg.data.cache import FINGERPRINT_FILE
from calfseg.data.splits.assign import cv_splits, paper_slice_splits
from calfseg.errors import DataValueError
from calfseg.losses import build_loss
from calfseg.losses.registry import LOSSES
from calfseg.models import build_model, check_input_size
from calfseg.stats import AreaMoments
from calfseg.train import distributed as D
from calfseg.train.config import TrainConfig


class RunSetupError(DataValueError):
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


def run_splits(config: TrainConfig) -> np.ndarray | None:
    """The split name of every cache row for ``config.split``: None for ``"cache"`` (the
    cache's own split column), re-dealt at run time for ``"paper-slices"`` and ``"cv"``.

    Training, evaluation (:func:`calfseg.train.evaluate.evaluate_checkpoint` opens the test
    split with the run's config) and the benchmark all go through this one assignment.

    Raises:
        RunSetupError: a cross-validation the cache cannot hold (fewer patients than folds).
    """
    if config.split == "paper-slices":  # re-deal the cache's rows the paper's way
        return paper_slice_splits(SliceCache.open(config.cache).index, seed=config.seed)
    if config.split == "cv":
        assert config.cv_folds is not None and config.cv_fold is not None  # validate() did
        try:
            return cv_splits(
                SliceCache.open(config.cache).index, config.cv_folds, config.cv_fold,
                seed=config.cv_seed,
            )  # fmt: skip
        except ValueError as err:
            raise RunSetupError(f"split='cv' on {config.cache}: {err}") from err
    return None


def open_split(
    config: TrainConfig, split: str, *, train: bool = False, purpose: str = ""
) -> SliceDataset:
    """The dataset of ``split``; training splits get the filters and augmentation."""
    filters = [parse_filter(text, seed=config.seed) for text in config.filters] if train else []
    splits = run_splits(config)
    try:
        dataset = SliceDataset(
            config.cache, split, filters=filters, augment=config.augment and train,
            seed=config.seed, splits=splits,
        )  # fmt: skip
    except ValueError as err:
        hint = f" ({purpose})" if purpose else ""
        raise RunSetupError(f"cannot use split {split!r}{hint}: {err}") from err
    if train and len(dataset) and not (np.asarray(dataset.areas) > 0).any():
        # Degenerate: every target is empty, S and K are undefined, nothing to learn.
        raise RunSetupError(
            f"the {split} split of {config.cache} has no slice with a lesion (all "
            f"{len(dataset)} masks empty): training cannot learn the lesion; check the "
            "labels it was prepared with (calf analyze CACHE --split train) and re-prepare"
        )
    return dataset


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


def foreground_share(dataset: SliceDataset, info: CacheInfo) -> float:
    """The share of foreground pixels over the slices of ``dataset``: the prior the output
    layer starts at (:func:`calfseg.models.set_output_prior`)."""
    pixels = len(dataset) * info.height * info.width
    return float(np.asarray(dataset.areas, dtype=np.float64).sum() / pixels) if pixels else 0.0


def loss_for(config: TrainConfig, *, sync: bool = True) -> nn.Module:
    """The run's loss; ``calf-dataset`` gets the cache's fingerprint.json. ``sync=False``
    turns off CALF's cross-rank batch statistics (validation shards differ in length)."""
    options = dict(config.loss_options)
    if not sync and "sync" in LOSSES[config.loss].options:
        options["sync"] = False
    path = Path(config.cache) / FINGERPRINT_FILE
    fingerprint: Path | AreaMoments | None = path if path.is_file() else None
    if config.split == "cv" and LOSSES[config.loss].needs_fingerprint:
        fingerprint = fold_fingerprint(config)
    return build_loss(config.loss, fingerprint=fingerprint, **options)


def fold_fingerprint(config: TrainConfig) -> AreaMoments:
    """The area moments of a cross-validation fold's training rows, what ``calf-dataset``
    fits on: the cache's fingerprint.json describes the cache's own train split, which holds
    test patients of the fold."""
    splits = run_splits(config)
    assert splits is not None  # split="cv"
    areas = np.asarray(SliceCache.open(config.cache).index["area"])
    return AreaMoments.from_areas(areas[splits == "train"].astype(np.float64))


def uses_branches(config: TrainConfig) -> bool:
    """CALF losses report which branch each step used."""
    return config.loss.startswith("calf")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (third-party code may use it)
    torch.manual_seed(seed)


def set_determinism(enabled: bool) -> None:
    """Deterministic kernels where torch has them (warn-only elsewhere), no cuDNN autotune."""
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``config.amp`` on ``device``: None (float32) for ``"none"`` and,
    with a warning, off CUDA."""
    if config.amp == "none":
        return None
    if device.type != "cuda":
        warnings.warn(
            f"amp={config.amp!r} needs CUDA; training in float32 on {device}", stacklevel=4
        )
        return None
    return torch.bfloat16 if config.amp == "bf16" else torch.float16


def rank_batches(
    n: int, config: TrainConfig, ctx: D.DistContext, *, epoch: int
) -> list[np.ndarray]:
    """This rank's batches of ``epoch`` (at most ``max_steps``); the same count every epoch.

    Raises:
        ValueError: the split gives not one batch of at least 2 slices per process.
    """
    batches = D.epoch_batches(
        n, config.batch_size, seed=config.seed, epoch=epoch, rank=ctx.rank,
        world_size=ctx.world_size,
    )  # fmt: skip
    if config.max_steps is not None:
        batches = batches[: config.max_steps]
    if not batches:
        raise DataValueError(
            f"the training split has {n} slices: not one batch of at least 2 per "
            f"process (batch_size {config.batch_size}, {ctx.world_size} process(es))"
        )
    return batches
