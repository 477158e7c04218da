"""Hostile and outdated model files for the loading tests, and a tiny trained run.

A *crafted* file holds an object whose unpickling calls ``pathlib.Path.touch(marker)``: any
loader that unpickles it creates the marker file, so "the marker never appears" proves that
nothing in the file ran.
"""

from __future__ import annotations

import pathlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calfseg.train import TrainConfig, fit, load_checkpoint


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


def as_previous_format(checkpoint: Path, out: Path) -> Path:
    """``checkpoint`` rewritten the way calf-seg 0.1 wrote it (calfseg.checkpoint/1):
    python's and numpy's RNG states as the tuples ``getstate()`` returns (numpy's holding a
    uint32 array, which needs unpickling numpy), and no cache record."""
    state = load_checkpoint(checkpoint)
    python, numpy_state = state["rng"]["python"], state["rng"]["numpy"]
    rng = dict(state["rng"])
    rng["python"] = (python["version"], tuple(python["state"].tolist()), python["gauss_next"])
    rng["numpy"] = (
        numpy_state["name"],
        numpy_state["keys"].numpy().astype(np.uint32),
        numpy_state["pos"],
        numpy_state["has_gauss"],
        numpy_state["cached_gaussian"],
    )
    old = {**state, "format": "calfseg.checkpoint/1", "rng": rng}
    old.pop("cache", None)
    torch.save(old, out)
    return out
