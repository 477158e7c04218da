"""One loader for a trained model, whatever file it comes in: :func:`load_trained_model`.

It reads a checkpoint (``best.pt``, ``last.pt``, ..., or a run folder: its ``best.pt``) with
torch's safe loader, or an export (``calf export``: a folder of ``model.safetensors`` and
``model.json``, or either file), and gives back the network in eval mode with what
``calf predict`` and ``calf evaluate`` need to know of its training: the input size and
channels, the cache's preprocessing, the record of the cache (digest, fingerprint) and the
TrainConfig. Nothing in either kind of file runs code when it is read (docs/security.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import calfseg.run_files as files
from calfseg.train.checkpoint import (
    CheckpointError,
    CheckpointFileError,
    load_checkpoint,
    require_model_keys,
)
from calfseg.train.config import TrainConfig
from calfseg.train.export_format import (
    RECORD_FILE,
    WEIGHTS_FILE,
    export_files,
    is_export,
    read_export,
)


@dataclass
class TrainedModel:
    """A trained network and what it was trained on."""

    model: nn.Module
    source: Path  # the file read (a checkpoint, or the export's model.json)
    kind: str  # "checkpoint" or "export"
    config: TrainConfig
    in_channels: int
    size: tuple[int, int]
    cache_options: dict[str, Any] | None  # the cache's calf prepare options; None: unknown
    image_dtype: str | None
    cache: dict[str, Any] | None  # calfseg.train.cache_record; None: not recorded
    best_epoch: int | None
    best_score: float | None

    @property
    def has_preprocessing(self) -> bool:
        """Whether the file records the training cache's preprocessing."""
        return self.cache_options is not None and self.image_dtype is not None


def resolve_model_path(path: str | os.PathLike[str]) -> Path:
    """The file a path stands for: a run folder means its ``best.pt``; an export folder,
    a checkpoint or an export file stand for themselves."""
    where = Path(path)
    if where.is_dir() and not is_export(where):
        if (where / files.BEST_CHECKPOINT).is_file():
            return where / files.BEST_CHECKPOINT
        raise CheckpointError(
            f"{where} holds neither {files.BEST_CHECKPOINT} (a run folder) nor {WEIGHTS_FILE} "
            f"and {RECORD_FILE} (an export): give a checkpoint file, a run folder or an export"
        )
    return where


def load_trained_model(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
) -> TrainedModel:
    """The trained model at ``path`` (a checkpoint, a run folder or an export), weights
    loaded, in eval mode on ``device``.

    Raises :class:`CheckpointError` when ``path`` does not exist and
    :class:`CheckpointFileError` for a file that is not a readable calf-seg model (named in
    the message).
    """
    where = resolve_model_path(path)
    if is_export(where):
        return _from_export(where, torch.device(device))
    state = load_checkpoint(where, map_location="cpu")
    require_model_keys(state, where)
    config = config_of(state["config"], where)
    model = network_with_weights(config, int(state["in_channels"]), state["model"], where)
    score = state.get("best_score")
    return TrainedModel(
        model=model.to(device).eval(),
        source=where,
        kind="checkpoint",
        config=config,
        in_channels=int(state["in_channels"]),
        size=(int(state["size"][0]), int(state["size"][1])),
        cache_options=state.get("cache_options"),
        image_dtype=state.get("cache_image_dtype"),
        cache=state.get("cache"),
        best_epoch=state.get("best_epoch"),
        best_score=None if score is None else float(score),
    )


def build_network(config: TrainConfig, in_channels: int) -> nn.Module:
    """An untrained network of ``config``'s architecture."""
    from calfseg.models import build_model

    return build_model(
        config.model, preset=config.preset, in_channels=in_channels, encoder=config.encoder
    )


def _from_export(where: Path, device: torch.device) -> TrainedModel:
    tensors, record = read_export(where)
    record_path = where if where.suffix == ".json" else _record_path(where)
    config = config_of(record["training"]["config"], record_path)
    arch = record["architecture"]
    stored = {k: getattr(config, k) for k in ("model", "preset", "encoder")}
    if stored != {k: arch[k] for k in stored}:
        raise CheckpointFileError(
            f"{record_path}: architecture {arch} disagrees with training.config {stored}"
        )
    model = network_with_weights(config, int(arch["in_channels"]), tensors, record_path)
    preprocessing, training = record["preprocessing"], record["training"]
    score = training.get("best_score")
    return TrainedModel(
        model=model.to(device).eval(),
        source=record_path,
        kind="export",
        config=config,
        in_channels=int(arch["in_channels"]),
        size=(int(arch["size"][0]), int(arch["size"][1])),
        cache_options=preprocessing.get("options"),
        image_dtype=preprocessing.get("image_dtype"),
        cache=record.get("cache"),
        best_epoch=training.get("best_epoch"),
        best_score=None if score is None else float(score),
    )


def _record_path(where: Path) -> Path:
    return export_files(where)[1]


def config_of(data: dict[str, Any], where: str | os.PathLike[str]) -> TrainConfig:
    """The TrainConfig of a stored dict; an invalid one is a file error naming ``where``."""
    try:
        return TrainConfig.from_dict(data)
    except (TypeError, ValueError) as err:
        raise CheckpointFileError(f"{where} holds an invalid training config ({err})") from None


def network_with_weights(
    config: TrainConfig, in_channels: int, weights: dict[str, Any], where: str | os.PathLike[str]
) -> nn.Module:
    """The network with ``weights`` loaded; weights of another shape, or that are not all
    finite (a run that diverged: its masks would be all background), are a file error."""
    broken = [
        name
        for name, value in weights.items()
        if isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and not bool(torch.isfinite(value).all())
    ]
    if broken:
        more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        raise CheckpointFileError(
            f"{where}: {len(broken)} weight tensor(s) hold NaN or infinity ({', '.join(broken[:3])}"
            f"{more}): the training diverged, and this model cannot predict; retrain it (a "
            "lower --lr, or --grad-clip)"
        )
    try:
        model = build_network(config, in_channels)
    except ValueError as err:
        raise CheckpointFileError(f"{where}: cannot build its network ({err})") from None
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as err:
        lines = str(err).splitlines()
        raise CheckpointFileError(
            f"{where}: its weights do not fit a {config.model} ({config.preset}) network "
            f"({lines[0] if lines else err})"
        ) from None
    return model
