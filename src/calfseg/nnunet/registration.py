"""Make nnU-Net find the CALF trainers by name: write (or remove) one small module inside
nnunetv2's trainer folder.

nnU-Net looks a trainer up by class name among the modules below
``nnunetv2/training/nnUNetTrainer`` (``recursive_find_trainer_class_by_name``), so
``nnUNetv2_train ... -tr nnUNetTrainerCALF`` needs a module there that holds the class.
:func:`register` writes ``variants/calfseg_trainers.py``, which only imports
:mod:`calfseg.nnunet.trainers`; :func:`unregister` removes it (and only a file that carries
calf-seg's marker line). The module tolerates a calf-seg that has since been uninstalled, so
that it never breaks nnU-Net's search for its other trainers.
"""

from __future__ import annotations

from pathlib import Path

from calfseg.atomic import atomic_write_text
from calfseg.nnunet.requirement import require_nnunet

MODULE_NAME = "calfseg_trainers.py"
MARKER = "# Written by `calf nnunet register` (calf-seg)."
TRAINER_NAMES: tuple[str, ...] = ("nnUNetTrainerCALF", "nnUNetTrainerCALF_1epoch")

MODULE_TEXT = f'''{MARKER} `calf nnunet unregister` removes it.
"""The CALF trainers of calf-seg, made findable by nnU-Net (nnUNetv2_train -tr NAME)."""

try:
    from calfseg.nnunet.trainers import {", ".join(TRAINER_NAMES)}
except ImportError:  # calf-seg uninstalled: stay importable so nnU-Net's search goes on
    pass
'''


class RegistrationError(OSError):
    """The trainer module cannot be written into (or removed from) nnunetv2's folder."""


def trainer_folder(package: Path | None = None) -> Path:
    """``nnunetv2/training/nnUNetTrainer/variants`` of ``package`` (the folder of the
    nnunetv2 package; default: the installed one, after its version check)."""
    root = require_nnunet("calf nnunet register") if package is None else Path(package)
    folder = root / "training" / "nnUNetTrainer" / "variants"
    if not folder.is_dir():
        raise RegistrationError(
            f"{folder} does not exist: {root} does not look like an nnunetv2 package"
        )
    return folder


def module_path(package: Path | None = None) -> Path:
    """Where :func:`register` writes the trainer module."""
    return trainer_folder(package) / MODULE_NAME


def _alternative() -> str:
    return (
        "Train without registering instead: calf nnunet train DATASET CONFIGURATION FOLD "
        "(it runs nnU-Net's own training with the CALF trainer), or install nnunetv2 where "
        "you can write (a virtual environment)"
    )


def register(package: Path | None = None) -> Path:
    """Write the trainer module; returns its path. Writing it again is harmless.

    Raises:
        RegistrationError: a file of that name that calf-seg did not write (no marker line)
            is in the way: it is left alone, as :func:`unregister` leaves it; or the folder
            is read-only.
    """
    path = module_path(package)
    if path.exists():
        if not _written_by_us(path):
            raise RegistrationError(
                f"{path} exists and was not written by calf-seg (no marker line); it is left "
                f"in place: move it away if it is not needed. {_alternative()}"
            )
    try:
        atomic_write_text(path, MODULE_TEXT)
    except OSError as err:
        raise RegistrationError(
            f"cannot write {path} ({err.strerror or err}): nnunetv2's folder is read-only "
            f"for this user. {_alternative()}"
        ) from err
    return path


def _written_by_us(path: Path) -> bool:
    """Whether the module file at ``path`` holds calf-seg's marker line."""
    try:
        return MARKER in path.read_text(errors="replace")
    except OSError as err:
        raise RegistrationError(f"cannot read {path} ({err.strerror or err})") from err


def unregister(package: Path | None = None) -> Path | None:
    """Remove the trainer module; returns its path, or None when it was not there.

    Raises:
        RegistrationError: the file there was not written by calf-seg (no marker line; it
            is left alone), or it cannot be removed.
    """
    path = module_path(package)
    if not path.exists():
        return None
    if not _written_by_us(path):
        raise RegistrationError(
            f"{path} was not written by calf nnunet register (no calf-seg marker line); "
            "it is left in place: remove it yourself if it is yours to remove"
        )
    try:
        path.unlink()
    except OSError as err:
        raise RegistrationError(
            f"cannot remove {path} ({err.strerror or err}): nnunetv2's folder is read-only "
            "for this user"
        ) from err
    # Tidy up its cached bytecode too (Python never imports it without the source).
    for cached in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        cached.unlink(missing_ok=True)
    return path


def is_registered(package: Path | None = None) -> bool:
    """True when the trainer module is in nnunetv2's folder."""
    return module_path(package).is_file()
