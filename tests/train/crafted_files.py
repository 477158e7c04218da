"""Hostile model files for the loading tests, and a tiny trained run.

A *crafted* file holds an object whose unpickling calls ``pathlib.Path.touch(marker)``: any
loader that unpickles it creates the marker file, so "the marker never appears" proves that
nothing in the file ran.
"""

from __future__ import annotations

import pathlib
import pickle
from pathlib import Path
from typing import Any

import torch

from calfseg.train import TrainConfig, fit


class TouchOnUnpickle:
    """Unpickling this object creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def crafted_torch_file(path: Path, marker: Path) -> Path:
    """A ``torch.save`` file with the calf-seg format tag and a payload that touches
    ``marker`` when unpickled."""
    payload = {"format": "calfseg.checkpoint/2", "model": {}, "config": {},
               "payload": TouchOnUnpickle(marker)}  # fmt: skip
    torch.save(payload, path)
    return path


def crafted_development_format(path: Path, marker: Path) -> Path:
    """A ``torch.save`` file tagged with the development builds' format 1
    (``calfseg.checkpoint/1``), which pickled numpy's RNG state, and the payload."""
    payload = {"format": "calfseg.checkpoint/1", "model": {}, "config": {},
               "rng": {"numpy": TouchOnUnpickle(marker)}}  # fmt: skip
    torch.save(payload, path)
    return path


def crafted_plain_pickle(path: Path, marker: Path) -> Path:
    """A bare ``pickle.dump`` of the payload (no torch container at all)."""
    with open(path, "wb") as handle:
        pickle.dump(TouchOnUnpickle(marker), handle)
    return path


def train_tiny_run(cache: Path, run: Path, **overrides: Any) -> Path:
    """One epoch of 2 steps of the tiny U-Net with BCE on the CPU into ``run``."""
    options: dict[str, Any] = dict(epochs=1, max_steps=2, device="cpu", loss="bce",
                                   tensorboard=False)  # fmt: skip
    options.update(overrides)
    fit(TrainConfig.tiny(cache, **options), run, progress=False)
    return run
