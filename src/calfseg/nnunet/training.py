"""Train with a CALF trainer through nnU-Net's own API, without writing into nnunetv2's
folder.

nnU-Net looks trainers up by name in its package and then in the folders listed by the
environment variable ``nnUNet_extTrainer``. :func:`train` writes the same small module that
``calf nnunet register`` would install into a temporary folder, lists that folder in
``nnUNet_extTrainer`` for the duration of the call, and runs
``nnunetv2.run.run_training.run_training``: nnU-Net's planning output, data loading,
training, checkpoints and final validation, exactly as ``nnUNetv2_train`` runs them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calfseg.errors import DataError, DataValueError, check_choice
from calfseg.nnunet.registration import MODULE_TEXT, TRAINER_NAMES
from calfseg.nnunet.requirement import require_nnunet

EXT_TRAINER = "nnUNet_extTrainer"
REQUIRED_PATHS: tuple[str, ...] = ("nnUNet_preprocessed", "nnUNet_results")
DEVICES: tuple[str, ...] = ("auto", "cuda", "cpu", "mps")


class NotPlannedError(DataError):
    """The dataset has no plans in ``nnUNet_preprocessed``: nnU-Net's planning and
    preprocessing must run first (the message gives the command)."""


def planned_dataset(dataset: str, plans: str = "nnUNetPlans") -> Path:
    """The dataset's folder in ``nnUNet_preprocessed`` (``dataset``: an id such as ``990``
    or a name such as ``Dataset990_Tiny``), checked to hold ``PLANS.json``.

    Raises:
        NotPlannedError: no such folder, or no plans file in it.
    """
    root = Path(os.environ["nnUNet_preprocessed"])
    text = str(dataset)
    number: int | None
    if text.isdigit():
        found = sorted(root.glob(f"Dataset{int(text):03d}_*"))
        folder = found[0] if found else None
        number = int(text)
    else:
        folder = root / text if (root / text).is_dir() else None
        digits = "".join(c for c in text.split("_")[0] if c.isdigit())
        number = int(digits) if digits else None
    command = f"nnUNetv2_plan_and_preprocess -d {number if number is not None else 'ID'}"
    if folder is None:
        raise NotPlannedError(
            f"dataset {text} is not in nnUNet_preprocessed ({root}): plan and preprocess it "
            f"first ({command} --verify_dataset_integrity)"
        )
    if not (folder / f"{plans}.json").is_file():
        raise NotPlannedError(
            f"{folder} has no {plans}.json: plan and preprocess the dataset first ({command}), "
            "or name the plans it has with -p"
        )
    return folder


def resolve_device(device: str) -> str:
    """``"auto"``: the rule of ``calf train`` (:func:`calfseg.train.distributed.resolve_device`:
    CUDA when torch finds a GPU, else the CPU); any other name as given."""
    if device != "auto":
        return device
    from calfseg.train.distributed import resolve_device as train_device

    return train_device("auto").type


def check_paths(names: tuple[str, ...] = REQUIRED_PATHS) -> None:
    """Refuse to start when nnU-Net's folders are not set (nnU-Net would fail later)."""
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise DataValueError(
            f"the environment variable(s) {', '.join(missing)} are not set: nnU-Net keeps its "
            "datasets and results in the folders nnUNet_raw, nnUNet_preprocessed and "
            "nnUNet_results name (export them before training; docs/nnunet.md)"
        )


@contextmanager
def trainers_on_ext_path() -> Iterator[Path]:
    """A temporary folder holding the trainer module, first in ``nnUNet_extTrainer``."""
    before = os.environ.get(EXT_TRAINER)
    with tempfile.TemporaryDirectory(prefix="calfseg-nnunet-") as folder:
        Path(folder, "calfseg_ext_trainers.py").write_text(MODULE_TEXT)
        os.environ[EXT_TRAINER] = os.pathsep.join(p for p in (folder, before) if p)
        try:
            yield Path(folder)
        finally:
            if before is None:
                os.environ.pop(EXT_TRAINER, None)
            else:
                os.environ[EXT_TRAINER] = before


def train(
    dataset: str,
    configuration: str,
    fold: str,
    *,
    trainer: str = "nnUNetTrainerCALF",
    plans: str = "nnUNetPlans",
    device: str = "auto",
    continue_training: bool = False,
    validation_only: bool = False,
    save_probabilities: bool = False,
) -> None:
    """Run nnU-Net's training of ``dataset`` (id or ``DatasetXXX_Name``), ``configuration``
    (``2d``, ``3d_fullres``, ...) and ``fold`` (``0``..``4`` or ``all``) with a CALF trainer.

    Raises:
        MissingExtraError / NnUNetVersionError: nnunetv2 missing or too old.
        ValueError: an unknown trainer or device, or nnU-Net's folders not set.
        NotPlannedError: the dataset is not planned and preprocessed (``device`` ``"auto"``:
            :func:`resolve_device`).
    """
    require_nnunet("calf nnunet train")
    check_choice("trainer", trainer, TRAINER_NAMES, valid="the CALF trainers")
    check_choice("device", device, DEVICES, valid="devices")
    check_paths()
    planned_dataset(dataset, plans)

    import torch
    from nnunetv2.run.run_training import run_training

    with trainers_on_ext_path():
        run_training(
            str(dataset),
            configuration,
            fold,
            trainer_class_name=trainer,
            plans_identifier=plans,
            export_validation_probabilities=save_probabilities,
            continue_training=continue_training,
            only_run_validation=validation_only,
            device=torch.device(resolve_device(device)),
        )
