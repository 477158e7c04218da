"""The checkpoint of a training run as a typed record: :class:`Checkpoint`.

Everything needed to continue a run exactly, and to give back its model: the model's and the
loss's state dicts, the optimizer, scheduler and gradient-scaler states, ``epoch`` (epochs
completed), the RNG states of torch (CPU and CUDA), numpy and python
(:mod:`calfseg.train.rng`), the run's :class:`TrainConfig` as a dict, the best validation
score and its epoch, the early-stopping state, the cache's preprocessing options
(``cache_options``, which ``calf predict`` applies to new images) and ``cache``: what the
training cache held (:mod:`calfseg.train.cache_record`).

On disk it is the format-2 dict of :mod:`calfseg.train.checkpoint_file` (tensors and plain
data only, read with torch's safe loader): :meth:`Checkpoint.to_state` writes exactly that
dict and :meth:`Checkpoint.from_state` reads it back, checking every field; a missing field
or one of the wrong type is a :class:`CheckpointFileError` that names the file and the field.
Format-2 files of earlier calf-seg versions, which lacked ``stopping`` and ``cache``, read
with those ``None``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch

from calfseg.train.checkpoint_file import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    CheckpointFileError,
    load_checkpoint,
    save_checkpoint,
)
from calfseg.train.config import RESUMABLE_CHANGES, TrainConfig
from calfseg.train.rng import RNG_KEYS, rng_states, set_rng_states

__all__ = [
    "ARCHITECTURE",
    "CHECKPOINT_FORMAT",
    "MODEL_KEYS",
    "Checkpoint",
    "CheckpointError",
    "CheckpointFileError",
    "check_architecture",
    "load_checkpoint",
    "require_model_keys",
    "rng_states",
    "save_checkpoint",
    "set_rng_states",
]

# Options that define the network's architecture: a checkpoint is refused if they differ.
ARCHITECTURE = ("model", "preset", "encoder")
# What every checkpoint must hold to give back its model.
MODEL_KEYS = ("model", "config", "in_channels", "size")
# Fields that format-2 files written before early stopping and cache records lack.
OPTIONAL_FIELDS = ("stopping", "cache")

_NONE = type(None)
# Each field's accepted types and, for the error message, what it should be.
FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((dict,), "a dict of tensors (the model's state dict)"),
    "loss": ((dict,), "a dict (the loss's state dict)"),
    "optimizer": ((dict,), "a dict (the optimizer's state dict)"),
    "scheduler": ((dict, _NONE), "a dict (the learning-rate plan) or None"),
    "scaler": ((dict, _NONE), "a dict (the gradient scaler's state) or None"),
    "epoch": ((int,), "an integer >= 0"),
    "rng": ((dict,), f"a dict of the RNG states {', '.join(RNG_KEYS)}"),
    "config": ((dict,), "a dict (the TrainConfig)"),
    "best_score": ((float, int, _NONE), "a number or None"),
    "best_epoch": ((int,), "an integer >= 0"),
    "stopping": (
        (dict, _NONE),
        "a dict (the early-stopping state; its scores a list of numbers or None) or None",
    ),
    "cache_options": ((dict, _NONE), "a dict (the cache's calf prepare options) or None"),
    "cache_image_dtype": ((str, _NONE), "a dtype name or None"),
    "in_channels": ((int,), "an integer >= 1"),
    "size": ((list, tuple), "[height, width], two integers >= 1"),
    "cache": ((dict, _NONE), "a dict (the training cache's record) or None"),
}


class CheckpointFieldError(CheckpointFileError):
    """A checkpoint file whose dict lacks a field or holds one of the wrong type."""


@dataclass(kw_only=True)
class Checkpoint:
    """One epoch's checkpoint of a training run (module docstring); the fields are the
    keys of the format-2 file, in the order they are written."""

    model: dict[str, torch.Tensor]
    loss: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None  # the plan: schedule, warmup_steps, total_steps, next_step
    scaler: dict[str, Any] | None  # None: no gradient scaling (float32 or bf16)
    epoch: int  # epochs completed
    rng: dict[str, Any]
    config: dict[str, Any]  # TrainConfig.to_dict()
    best_score: float | None  # the best validation case Dice; None: no validation yet
    best_epoch: int  # the epoch of best.pt
    stopping: dict[str, Any] | None = None  # EarlyStopping.state(); None: an older file
    cache_options: dict[str, Any] | None
    cache_image_dtype: str | None
    in_channels: int
    size: tuple[int, int]  # (height, width) of the training slices
    cache: dict[str, Any] | None = None  # calfseg.train.cache_record; None: not recorded

    def to_state(self) -> dict[str, Any]:
        """The dict written to disk (without the format tag, which the writer adds)."""
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        state["size"] = [int(v) for v in self.size]
        return state

    @classmethod
    def from_state(cls, state: Any, source: str | os.PathLike[str]) -> Checkpoint:
        """The checkpoint in ``state`` (a dict read from ``source``; its ``format`` tag, if
        any, is ignored: the reader checked it).

        Raises:
            CheckpointFieldError: a field missing, unknown or of the wrong type; the
                message names ``source`` and every such field.
        """
        if not isinstance(state, dict):
            raise CheckpointFieldError(
                f"{source} is not a calfseg checkpoint: it holds a {type(state).__name__}, "
                "not a dict of fields"
            )
        values = {k: v for k, v in state.items() if k != "format"}
        problems = _field_problems(values)
        if problems:
            raise CheckpointFieldError(
                f"{source} is a damaged calfseg checkpoint: {'; '.join(problems)}"
            )
        for name in OPTIONAL_FIELDS:
            values.setdefault(name, None)
        score = values["best_score"]
        values["best_score"] = None if score is None else float(score)
        values["size"] = (int(values["size"][0]), int(values["size"][1]))
        return cls(**values)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
    ) -> Checkpoint:
        """Read and check the checkpoint file ``path`` (torch's safe loader: nothing runs).

        Raises:
            CheckpointError: no file at ``path``.
            CheckpointFileError: not a readable format-2 checkpoint, or a damaged one.
        """
        return cls.from_state(load_checkpoint(path, map_location), path)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write this checkpoint to ``path`` atomically (format 2)."""
        save_checkpoint(path, self.to_state())

    def train_config(self, source: str | os.PathLike[str]) -> TrainConfig:
        """The run's :class:`TrainConfig`; an invalid one is a file error naming ``source``."""
        try:
            return TrainConfig.from_dict(self.config)
        except (TypeError, ValueError) as err:
            raise CheckpointFieldError(
                f"{source} holds an invalid training config in its field 'config' ({err})"
            ) from None

    def check_resumable(self, config: TrainConfig, source: str | os.PathLike[str]) -> None:
        """Raise :class:`CheckpointError` unless training ``config`` on from this checkpoint
        continues the same run: same architecture, and no option changed but those in
        :data:`calfseg.train.config.RESUMABLE_CHANGES`."""
        check_architecture(self.config, config, source)
        stored = self.train_config(source)
        changed = [n for n in config.differences(stored) if n not in RESUMABLE_CHANGES]
        if changed:
            raise CheckpointError(
                f"{source} was trained with other options ({', '.join(changed)}); resuming "
                "would not continue the same run: use another run folder, or resume=False / "
                "no --resume to start again"
            )


def check_architecture(
    stored: dict[str, Any], config: TrainConfig, path: str | os.PathLike[str]
) -> None:
    """Raise :class:`CheckpointError` if the stored config's (a checkpoint's ``config``)
    model, preset or encoder differ from ``config``'s, naming both."""
    wanted = config.to_dict()
    diffs = [
        f"{k} {stored.get(k)!r} (checkpoint) vs {wanted[k]!r}"
        for k in ARCHITECTURE
        if stored.get(k) != wanted[k]
    ]
    if diffs:
        raise CheckpointError(
            f"{path} holds another model: {'; '.join(diffs)}. Use a checkpoint of the same "
            "model, preset and encoder, or another run folder"
        )


def require_model_keys(state: dict[str, Any], source: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointFileError` unless ``state`` holds what gives back its model
    (the fields :data:`MODEL_KEYS`; the rest of a checkpoint is not needed to predict)."""
    missing = [key for key in MODEL_KEYS if key not in state]
    if not missing and not isinstance(state["config"], dict):
        missing = ["config (a dict)"]
    if missing:
        raise CheckpointFileError(
            f"{source} is a damaged calfseg checkpoint: it lacks {', '.join(missing)}"
        )


# -- field checks ---------------------------------------------------------------------------


def _field_problems(values: dict[str, Any]) -> list[str]:
    """What is wrong with the fields of a checkpoint dict, one phrase each (empty: nothing)."""
    missing = [n for n in FIELD_TYPES if n not in values and n not in OPTIONAL_FIELDS]
    unknown = sorted(set(values) - set(FIELD_TYPES))
    problems = []
    if missing:
        problems.append(f"it lacks the field(s) {', '.join(missing)}")
    if unknown:
        problems.append(
            f"unknown field(s) {', '.join(unknown)} (a checkpoint holds {', '.join(FIELD_TYPES)})"
        )
    for name, value in values.items():
        if name in FIELD_TYPES and not _field_is_valid(name, value):
            wanted = FIELD_TYPES[name][1]
            problems.append(f"field {name!r} should be {wanted}, found {_describe(value)}")
    return problems


def _field_is_valid(name: str, value: Any) -> bool:
    types = FIELD_TYPES[name][0]
    if isinstance(value, bool) or not isinstance(value, types):  # bool is an int: not here
        return False
    check = _VALUE_CHECKS.get(name)
    return check is None or check(value)


def _is_count(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


# What a field's value must satisfy beyond its type.
_VALUE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "epoch": lambda v: v >= 0,
    "best_epoch": lambda v: v >= 0,
    "in_channels": lambda v: v >= 1,
    "size": lambda v: len(v) == 2 and all(_is_count(x, 1) for x in v),
    "model": lambda v: all(
        isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items()
    ),
    "rng": lambda v: all(key in v for key in RNG_KEYS),
    "stopping": lambda v: v is None or _are_scores(v.get("scores", [])),
}


def _are_scores(scores: Any) -> bool:
    """Early stopping's validation scores: a list of numbers or None (an undefined score)."""
    return isinstance(scores, list) and all(
        s is None or (isinstance(s, (int, float)) and not isinstance(s, bool)) for s in scores
    )


def _describe(value: Any) -> str:
    """A short account of a wrong value for an error message."""
    if isinstance(value, dict):
        return f"a dict with keys {', '.join(map(str, list(value)[:8])) or '(none)'}"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
