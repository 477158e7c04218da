"""Checkpoint files: written atomically, read with torch's safe loader, format 1 refused.

A checkpoint file is a ``torch.save`` dict tagged ``format: calfseg.checkpoint/2`` and made
only of tensors, numbers, strings, ``None``, lists, tuples and dicts, so that it is read with
``torch.load(..., weights_only=True)``: torch's restricted unpickler, which builds those types
and nothing else, so a file cannot run code when it is loaded (docs/security.md). This module
moves such dicts to and from disk; :class:`calfseg.train.checkpoint.Checkpoint` says what the
dict of a training run holds and checks it.

Format 1 (calf-seg 0.1) pickled numpy's RNG state: it cannot be read without unpickling, so
it is refused with :class:`OldCheckpointFormatError`, which says how to convert a file one
trusts (:func:`upgrade_checkpoint`). Format 1 is recognised by scanning the pickle's opcodes
with :mod:`pickletools`, which builds nothing and runs nothing.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from calfseg.atomic import atomic_write
from calfseg.errors import DataError
from calfseg.train.rng import encode_numpy_state, encode_python_state

CHECKPOINT_FORMAT = "calfseg.checkpoint/2"
PREVIOUS_FORMAT = "calfseg.checkpoint/1"
# The part of a pickle that is scanned (without running it) to recognise format 1.
_SCAN_LIMIT = 64 * 2**20


class CheckpointError(DataError, ValueError):
    """A checkpoint that cannot be used: missing, of another architecture or run."""


class CheckpointFileError(CheckpointError):
    """A file that is not a readable calf-seg model file, or one that would need unpickling
    (running code) to be read. The CLI exits 1 on it (a bad file)."""


class OldCheckpointFormatError(CheckpointFileError):
    """A calf-seg checkpoint of format 1: readable only by unpickling it."""


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
        if not _is_previous_format(source):
            raise CheckpointFileError(_refusal_message(source, err)) from None
        if not trust_pickle:
            raise OldCheckpointFormatError(_previous_format_message(source)) from None
        return _load_previous_format(source, map_location)
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


# -- helpers ------------------------------------------------------------------------------------


def _checked(state: Any, source: Path) -> dict[str, Any]:
    """``state`` if it is a dict tagged with the format-2 tag, else a clear error."""
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
        rng["python"] = encode_python_state(rng["python"])
    if isinstance(rng.get("numpy"), tuple):
        rng["numpy"] = encode_numpy_state(rng["numpy"])
    converted = {**state, "rng": rng, "format": CHECKPOINT_FORMAT}
    converted.setdefault("cache", None)  # format 1 kept no record of the cache's content
    return _checked(converted, source)
