"""Checkpoint files: written atomically, read with torch's safe loader.

A checkpoint file is a ``torch.save`` dict tagged ``format: calfseg.checkpoint/2`` and made
only of tensors, numbers, strings, ``None``, lists, tuples and dicts, so that it is read with
``torch.load(..., weights_only=True)``: torch's restricted unpickler, which builds those types
and nothing else, so a file cannot run code when it is loaded (docs/security.md). This module
moves such dicts to and from disk; :class:`calfseg.train.checkpoint.Checkpoint` says what the
dict of a training run holds and checks it. Nothing is ever unpickled: a file that would
need it is refused, whatever it says it is (docs/security.md).
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

import calfseg.run_files as files
from calfseg.atomic import atomic_write
from calfseg.errors import DataValueError

CHECKPOINT_FORMAT = "calfseg.checkpoint/2"


class CheckpointError(DataValueError):
    """A checkpoint that cannot be used: missing, of another architecture or run."""


class CheckpointFileError(CheckpointError):
    """A file that is not a readable calf-seg model file, or one that would need unpickling
    (running code) to be read. The CLI exits 1 on it (a bad file)."""


# -- writing and reading ----------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` (with the format tag added) to ``path`` atomically: a crash mid-save
    leaves the previous file intact."""
    payload = {"format": CHECKPOINT_FORMAT, **state}
    atomic_write(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with torch's safe loader
    (``weights_only=True``): nothing in the file runs.

    Raises :class:`CheckpointError` if ``path`` does not exist, and
    :class:`CheckpointFileError` for a file that is not a calf-seg checkpoint of format 2:
    torn, foreign, or needing anything but tensors and plain data (the message names the
    file and what it asked for; nothing in it runs).
    """
    source = Path(path)
    if source.is_dir():
        raise CheckpointFileError(
            f"{source} is a folder, not a checkpoint file: give a .pt file such as "
            f"{source / files.BEST_CHECKPOINT}"
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
        raise CheckpointFileError(_refusal_message(source, err)) from None
    except Exception as err:  # torch raises many kinds on a torn or foreign file
        raise CheckpointFileError(
            f"{source} is not a readable checkpoint ({_first_line(err)})"
        ) from None
    return _checked(state, source)


# -- helpers ------------------------------------------------------------------------------------


def _checked(state: Any, source: Path) -> dict[str, Any]:
    """``state`` if it is a dict tagged with the format-2 tag, else a clear error."""
    found = state.get("format") if isinstance(state, dict) else None
    if found != CHECKPOINT_FORMAT:
        what = f"format {found!r}" if isinstance(found, str) else "no calf-seg format tag"
        raise CheckpointFileError(
            f"{source} is not a calfseg checkpoint ({what}; expected {CHECKPOINT_FORMAT!r})"
        )
    assert isinstance(state, dict)
    return state


def _is_refusal(err: Exception) -> bool:
    """Whether torch's safe loader refused something (rather than met a torn file)."""
    return "Weights only load failed" in str(err) or "WeightsUnpickler" in str(err)


def _refusal_message(source: Path, err: Exception) -> str:
    return (
        f"{source} was refused: reading it would need unpickling ({_refusal_reason(err)}), "
        f"which can run code from the file; nothing in it was run. calf-seg reads its own "
        f"checkpoints ({CHECKPOINT_FORMAT}) and exported models (calf export); see "
        "docs/security.md"
    )


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
