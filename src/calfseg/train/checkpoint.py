"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a ``torch.save`` dict (format ``calfseg.checkpoint/1``): the model's and the
loss's state dicts, the optimizer, scheduler and gradient-scaler states, ``epoch`` (epochs
completed), the RNG states of torch (CPU and CUDA), numpy and python, the run's
:class:`TrainConfig`, the best validation score and its epoch, and the cache's preprocessing
options (``cache_options``, which ``calf predict`` applies to new images).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calfseg.train.atomic import atomic_write
from calfseg.train.config import TrainConfig

CHECKPOINT_FORMAT = "calfseg.checkpoint/1"
# Options that define the network's architecture: a checkpoint is refused if they differ.
ARCHITECTURE = ("model", "preset", "encoder")


class CheckpointError(ValueError):
    """A file that is not a calfseg checkpoint, or one of another architecture."""


def rng_states() -> dict[str, Any]:
    """The RNG states of python, numpy and torch (CPU, and every CUDA device if any)."""
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (the legacy global RNG)
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])  # noqa: NPY002
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` (with the format tag added) to ``path`` atomically: a crash mid-save
    leaves the previous file intact."""
    payload = {"format": CHECKPOINT_FORMAT, **state}
    atomic_write(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (trusted: it holds numpy and
    python RNG states, so it is unpickled with ``weights_only=False``)."""
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"no checkpoint at {source}")
    try:
        state = torch.load(source, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many kinds on a torn or foreign file
        raise CheckpointError(f"{source} is not a readable checkpoint ({err})") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{source} is not a calfseg checkpoint ({CHECKPOINT_FORMAT})")
    return state


def checkpoint_config(state: dict[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` stored in a checkpoint."""
    return TrainConfig.from_dict(state["config"])


def check_architecture(state: dict[str, Any], config: TrainConfig, path: str | Path) -> None:
    """Raise :class:`CheckpointError` if the checkpoint's model, preset or encoder differ
    from ``config``'s, naming both."""
    stored = state["config"]
    wanted = config.to_dict()
    diffs = [f"{k} {stored.get(k)!r} (checkpoint) vs {wanted[k]!r}" for k in ARCHITECTURE]
    diffs = [d for k, d in zip(ARCHITECTURE, diffs) if stored.get(k) != wanted[k]]
    if diffs:
        raise CheckpointError(
            f"{path} holds another model: {'; '.join(diffs)}. Use a checkpoint of the same "
            "model, preset and encoder, or another run folder"
        )
