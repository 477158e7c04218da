"""Checkpoints: everything needed to continue a run exactly, written atomically, read safely.

A checkpoint is a ``torch.save`` dict (format ``calfseg.checkpoint/2``) made only of tensors,
numbers, strings, ``None``, lists, tuples and dicts, so that it is read with
``torch.load(..., weights_only=True)``: torch's restricted unpickler, which builds those
types and nothing else, so a file cannot run code when it is loaded (docs/security.md). It
holds the model's and the loss's state dicts, the optimizer, scheduler and gradient-scaler
states, ``epoch`` (epochs completed), the RNG states of torch (CPU and CUDA), numpy and
python (as tensors and numbers: :func:`rng_states`), the run's :class:`TrainConfig` as a
dict, the best validation score and its epoch, the cache's preprocessing options
(``cache_options``, which ``calf predict`` applies to new images) and ``cache``: what the
training cache held (:mod:`calfseg.train.cache_record`).

Format 1 (calf-seg 0.1) pickled numpy's RNG state: it cannot be read without unpickling, so
it is refused with :class:`OldCheckpointFormatError`, which says how to convert a file one
trusts (:func:`upgrade_checkpoint`).
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import random
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from calfseg.train.atomic import atomic_write
from calfseg.train.config import TrainConfig

CHECKPOINT_FORMAT = "calfseg.checkpoint/2"
PREVIOUS_FORMAT = "calfseg.checkpoint/1"
# Options that define the network's architecture: a checkpoint is refused if they differ.
ARCHITECTURE = ("model", "preset", "encoder")
# What every checkpoint must hold to give back its model.
MODEL_KEYS = ("model", "config", "in_channels", "size")
# The part of a pickle that is scanned (without running it) to recognise format 1.
_SCAN_LIMIT = 64 * 2**20


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, of another architecture or run."""


class CheckpointFileError(CheckpointError):
    """A file that is not a readable calf-seg model file, or one that would need unpickling
    (running code) to be read. The CLI exits 1 on it (a bad file)."""


class OldCheckpointFormatError(CheckpointFileError):
    """A calf-seg checkpoint of format 1: readable only by unpickling it."""


# -- RNG states as tensors and numbers --------------------------------------------------------


def rng_states() -> dict[str, Any]:
    """The RNG states of python, numpy and torch (CPU, and every CUDA device if any), in
    types the safe loader reads: python's ``random.getstate()`` and numpy's legacy
    ``np.random.get_state()`` become dicts of an int64 tensor and numbers."""
    states: dict[str, Any] = {
        "python": _encode_python_state(random.getstate()),
        "numpy": _encode_numpy_state(np.random.get_state()),  # noqa: NPY002 (legacy global)
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


def _encode_python_state(state: tuple[Any, ...]) -> dict[str, Any]:
    """``(version, 625 ints below 2**32, gauss_next)``: the ints fit an int64 tensor."""
    version, internal, gauss_next = state
    return {
        "version": int(version),
        "state": torch.tensor(internal, dtype=torch.int64),
        "gauss_next": None if gauss_next is None else float(gauss_next),
    }


def _encode_numpy_state(state: Any) -> dict[str, Any]:
    """``('MT19937', uint32[624], pos, has_gauss, cached_gaussian)`` as a dict."""
    name, keys, pos, has_gauss, cached = state
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


# -- writing and reading ----------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` (with the format tag added) to ``path`` atomically: a crash mid-save
    leaves the previous file intact."""
    payload = {"format": CHECKPOINT_FORMAT, **state}
    atomic_write(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    *,
    trust_pickle: bool = False,
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with torch's safe loader
    (``weights_only=True``): nothing in the file runs.

    Raises :class:`CheckpointError` if ``path`` does not exist, and
    :class:`CheckpointFileError` for a file that is not a calf-seg checkpoint of format 2:
    torn, foreign, or needing anything but tensors and plain data (the message names the
    file and what it asked for). A format-1 checkpoint raises
    :class:`OldCheckpointFormatError` unless ``trust_pickle``: then, and only for a file
    recognised as format 1, it is unpickled (which runs whatever the file holds: only for
    files you made) and returned converted to format 2.
    """
    source = Path(path)
    if source.is_dir():
        raise CheckpointFileError(
            f"{source} is a folder, not a checkpoint file: give a .pt file such as "
            f"{source / 'best.pt'}"
        )
    if not source.is_file():
        raise CheckpointError(f"no checkpoint at {source}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on pickle protocols, not ours
            state = torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if not _is_refusal(err):
            raise CheckpointFileError(
                f"{source} is not a readable checkpoint ({_first_line(err)})"
            ) from None
        if _is_previous_format(source):
            if trust_pickle:
                return _load_previous_format(source, map_location)
            raise OldCheckpointFormatError(_previous_format_message(source)) from None
        raise CheckpointFileError(
            f"{source} was refused: reading it would need unpickling "
            f"({_refusal_reason(err)}), which can run code from the file; nothing in it was "
            f"run. calf-seg reads its own checkpoints ({CHECKPOINT_FORMAT}) and exported "
            "models (calf export); see docs/security.md"
        ) from None
    except Exception as err:  # torch raises many kinds on a torn or foreign file
        raise CheckpointFileError(
            f"{source} is not a readable checkpoint ({_first_line(err)})"
        ) from None
    return _checked(state, source)


def upgrade_checkpoint(
    old: str | os.PathLike[str], new: str | os.PathLike[str], *, trust_pickle: bool = False
) -> Path:
    """Convert a format-1 checkpoint ``old`` into a format-2 one at ``new`` (resumable,
    safe to load from then on). Format 1 can only be read by unpickling, which runs code:
    pass ``trust_pickle=True`` only for a file you made yourself. The converted file has no
    record of its training cache's digest (format 1 had none)."""
    if not trust_pickle:
        raise CheckpointFileError(
            f"{old}: converting needs trust_pickle=True: the file is unpickled, which runs "
            "any code it holds; do it only for a file you made yourself"
        )
    state = load_checkpoint(old, trust_pickle=True)
    state.pop("format", None)
    save_checkpoint(new, state)
    return Path(new)


def checkpoint_config(state: dict[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` stored in a checkpoint."""
    return TrainConfig.from_dict(state["config"])


def check_architecture(state: dict[str, Any], config: TrainConfig, path: str | Path) -> None:
    """Raise :class:`CheckpointError` if the checkpoint's model, preset or encoder differ
    from ``config``'s, naming both."""
    stored = state["config"]
    wanted = config.to_dict()
    diffs = [f"{k} {stored.get(k)!r} (checkpoint) vs {wanted[k]!r}" for k in ARCHITECTURE]
    diffs = [d for k, d in zip(ARCHITECTURE, diffs, strict=True) if stored.get(k) != wanted[k]]
    if diffs:
        raise CheckpointError(
            f"{path} holds another model: {'; '.join(diffs)}. Use a checkpoint of the same "
            "model, preset and encoder, or another run folder"
        )


# -- helpers ------------------------------------------------------------------------------------


def _checked(state: Any, source: Path) -> dict[str, Any]:
    """``state`` if it is a format-2 checkpoint with a model, else a clear error."""
    found = state.get("format") if isinstance(state, dict) else None
    if found == PREVIOUS_FORMAT:  # a format-1 file that happens to hold no numpy state
        raise OldCheckpointFormatError(_previous_format_message(source))
    if found != CHECKPOINT_FORMAT:
        what = f"format {found!r}" if isinstance(found, str) else "no calf-seg format tag"
        raise CheckpointFileError(
            f"{source} is not a calfseg checkpoint ({what}; expected {CHECKPOINT_FORMAT!r})"
        )
    assert isinstance(state, dict)
    return state


def require_model_keys(state: dict[str, Any], source: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointFileError` unless ``state`` holds what gives back its model."""
    missing = [key for key in MODEL_KEYS if key not in state]
    if not missing and not isinstance(state["config"], dict):
        missing = ["config (a dict)"]
    if missing:
        raise CheckpointFileError(
            f"{source} is a damaged calfseg checkpoint: it lacks {', '.join(missing)}"
        )


def _is_refusal(err: Exception) -> bool:
    """Whether torch's safe loader refused something (rather than met a torn file)."""
    return "Weights only load failed" in str(err) or "WeightsUnpickler" in str(err)


def _refusal_reason(err: Exception) -> str:
    """What torch's safe loader refused, in one line (e.g. 'Unsupported global: GLOBAL
    posix.system ...'), from its long message."""
    match = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\s*\n|Check the documentation)",
                      str(err), flags=re.S)  # fmt: skip
    text = " ".join((match.group(1) if match else _first_line(err)).split())
    named = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if named:  # torch goes on to advise allowlisting it: not advice to give here
        return f"it asks for the global {named.group(1)}"
    opcode = re.search(r"Unsupported operand (\d+)", text)
    if opcode:
        return f"it uses pickle opcode {opcode.group(1)}, which only a full unpickler runs"
    return text[:300]


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(err).__name__


def _pickle_strings(source: Path) -> set[str]:
    """The strings in a torch checkpoint's pickle, read with :mod:`pickletools` (a parser of
    opcodes: nothing is built and nothing runs). Empty if the file cannot be parsed."""
    found: set[str] = set()
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                if not names:
                    return found
                with archive.open(names[0]) as handle:
                    data = handle.read(_SCAN_LIMIT)
        else:
            with open(source, "rb") as handle:
                data = handle.read(_SCAN_LIMIT)
        for _, arg, _ in pickletools.genops(io.BytesIO(data)):
            if isinstance(arg, str):
                found.add(arg)
    except Exception:  # a torn pickle: keep what was read before the tear
        pass
    return found


def _is_previous_format(source: Path) -> bool:
    return PREVIOUS_FORMAT in _pickle_strings(source)


def _previous_format_message(source: Path) -> str:
    return (
        f"{source} is a calf-seg checkpoint of the previous format ({PREVIOUS_FORMAT}): it "
        "holds numpy's RNG state as a pickled object, and reading it would need unpickling, "
        "which can run code from the file, so it was not read. If you trust it (you made "
        f"it), convert it: `calf export --trust-pickle {source} OUT` writes a shareable "
        "model for calf predict and calf evaluate, and in Python `from "
        "calfseg.train.checkpoint import upgrade_checkpoint; upgrade_checkpoint(OLD, NEW, "
        f"trust_pickle=True)` writes a {CHECKPOINT_FORMAT} checkpoint (resumable). "
        "See docs/security.md"
    )


def _load_previous_format(source: Path, map_location: str | torch.device) -> dict[str, Any]:
    """Unpickle a format-1 checkpoint (the caller trusts it) and convert it to format 2."""
    try:
        state = torch.load(source, map_location=map_location, weights_only=False)
    except Exception as err:
        raise CheckpointFileError(
            f"{source} is not a readable checkpoint ({_first_line(err)})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != PREVIOUS_FORMAT:
        raise CheckpointFileError(f"{source} is not a calfseg checkpoint ({PREVIOUS_FORMAT})")
    rng = dict(state.get("rng") or {})
    if isinstance(rng.get("python"), tuple):
        rng["python"] = _encode_python_state(rng["python"])
    if isinstance(rng.get("numpy"), tuple):
        rng["numpy"] = _encode_numpy_state(rng["numpy"])
    converted = {**state, "rng": rng, "format": CHECKPOINT_FORMAT}
    converted.setdefault("cache", None)  # format 1 kept no record of the cache's content
    return _checked(converted, source)
