"""nnunetv2, the optional dependency of :mod:`calfseg.nnunet`: found, and recent enough."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

from calfseg.extras import MissingExtraError

# The APIs used (nnUNetTrainer's hooks, run_training's device argument, nnUNet_extTrainer,
# the trainer folder's layout) are those of nnunetv2 2.8.
MINIMUM_VERSION = (2, 8)
INSTALL = 'pip install "calf-seg[nnunet]"'


class NnUNetVersionError(ImportError):
    """The installed nnunetv2 is older than the version whose APIs calf-seg uses."""


def _version_tuple(text: str) -> tuple[int, ...]:
    numbers = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        numbers.append(int(digits))
        if not part.isdigit():  # 2.8rc1: stop after the number the suffix is attached to
            break
    return tuple(numbers)


def check_version(found: str) -> None:
    """Raise :class:`NnUNetVersionError` naming ``found`` and the minimum when too old."""
    if _version_tuple(found) < MINIMUM_VERSION:
        needed = ".".join(map(str, MINIMUM_VERSION))
        raise NnUNetVersionError(
            f"calf-seg's nnU-Net trainers need nnunetv2 >= {needed}, found nnunetv2 {found}. "
            f"Upgrade it with: {INSTALL}"
        )


def require_nnunet(purpose: str = "CALF inside nnU-Net") -> Path:
    """The folder of the installed nnunetv2 package, after checking its version.

    Raises:
        MissingExtraError: nnunetv2 is not installed (the message gives the pip command).
        NnUNetVersionError: it is older than 2.8 (the message names both versions).
    """
    spec = importlib.util.find_spec("nnunetv2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            f"{purpose} needs nnU-Net (the package nnunetv2), which is not installed. "
            f"Install it with: {INSTALL}"
        )
    try:
        found = metadata.version("nnunetv2")
    except metadata.PackageNotFoundError:  # a source checkout on the path: no metadata
        found = "unknown"
    if found != "unknown":
        check_version(found)
    return Path(next(iter(spec.submodule_search_locations)))
