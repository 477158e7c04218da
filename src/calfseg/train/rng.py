"""The random generators' states, in types torch's safe loader reads back.

A resumed run must draw exactly what the uninterrupted run would have drawn, so a checkpoint
keeps the states of every generator the training touches: python's :mod:`random`, numpy's
legacy global generator (third-party augmentation code may use it), torch's CPU generator and
every CUDA device's. Python's and numpy's states are tuples holding big integers or a
``uint32`` array, which only a full unpickler rebuilds; they are stored here as dicts of an
int64 tensor and plain numbers, which ``torch.load(..., weights_only=True)`` reads.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

RNG_KEYS = ("python", "numpy", "torch")
"""The states every checkpoint holds (``cuda`` too where CUDA is available)."""


def rng_states() -> dict[str, Any]:
    """The RNG states of python, numpy and torch (CPU, and every CUDA device if any), in
    types the safe loader reads: python's ``random.getstate()`` and numpy's legacy
    ``np.random.get_state()`` become dicts of an int64 tensor and numbers."""
    states: dict[str, Any] = {
        "python": encode_python_state(random.getstate()),
        "numpy": encode_numpy_state(np.random.get_state()),  # noqa: NPY002 (legacy global)
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned, bit for bit."""
    python, numpy_state = states["python"], states["numpy"]
    random.setstate((int(python["version"]), tuple(python["state"].tolist()), python["gauss_next"]))
    np.random.set_state(  # noqa: NPY002
        (
            str(numpy_state["name"]),
            numpy_state["keys"].numpy().astype(np.uint32),
            int(numpy_state["pos"]),
            int(numpy_state["has_gauss"]),
            float(numpy_state["cached_gaussian"]),
        )
    )
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


def encode_python_state(state: tuple[Any, ...]) -> dict[str, Any]:
    """``(version, 625 ints below 2**32, gauss_next)``: the ints fit an int64 tensor."""
    version, internal, gauss_next = state
    return {
        "version": int(version),
        "state": torch.tensor(internal, dtype=torch.int64),
        "gauss_next": None if gauss_next is None else float(gauss_next),
    }


def encode_numpy_state(state: Any) -> dict[str, Any]:
    """``('MT19937', uint32[624], pos, has_gauss, cached_gaussian)`` as a dict."""
    name, keys, pos, has_gauss, cached = state
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }
