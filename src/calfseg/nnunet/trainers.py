"""nnU-Net trainers whose loss is CALF: ``nnUNetTrainerCALF`` and ``nnUNetTrainerCALF_1epoch``.

Everything but the loss is nnU-Net's own (planning, augmentation, deep supervision, the
sliding-window validation, checkpoints). The loss is :class:`calfseg.nnunet.loss.NnUNetCALFLoss`
with per-batch statistics: one CALF per foreground class, one-vs-rest, for softmax training;
CALF's multilabel mode for region-based (sigmoid) training. Under deep supervision it sits
inside nnU-Net's own ``DeepSupervisionWrapper`` with nnU-Net's scale weights, and every
output scale is scored against its own downsampled target (so each scale picks its own
branch).

The branch picked per class at full resolution is counted at every training step, written to
nnU-Net's training log at the end of each epoch (``print_to_log_file``) and kept in
``calf_branches.json`` beside the checkpoints (:mod:`calfseg.nnunet.branch_log`).

nnU-Net finds trainers by name inside its own package: ``calf nnunet register`` puts a
module there that imports this one, or ``calf nnunet train`` trains without touching
nnunetv2's folder (docs/nnunet.md). This module imports nnunetv2 and calf-seg's losses only.
"""

from __future__ import annotations

from typing import Any

import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from calfseg.errors import DataValueError
from calfseg.nnunet.branch_log import BranchTally
from calfseg.nnunet.loss import NnUNetCALFLoss, Training


class IgnoreLabelError(DataValueError):
    """nnUNetTrainerCALF cannot train a dataset whose dataset.json declares an ignore label."""


def _values(declared: Any) -> list[int]:
    """The label values of one dataset.json entry (an int, or a region's list of ints)."""
    return [int(v) for v in (declared if isinstance(declared, list | tuple) else [declared])]


def class_names(dataset_json: dict[str, Any], label_manager: Any) -> list[str]:
    """The names of the classes CALF scores, in output-channel order: the foreground labels
    (softmax training) or the regions (region-based training), named by dataset.json."""
    labels: dict[str, Any] = dataset_json["labels"]
    if label_manager.has_regions:
        # nnU-Net's regions: every entry but 'ignore' and those made of background only.
        return [
            str(name)
            for name, declared in labels.items()
            if name != "ignore" and any(v != 0 for v in _values(declared))
        ]
    by_value = {
        _values(declared)[0]: str(name)
        for name, declared in labels.items()
        if name != "ignore" and len(_values(declared)) == 1
    }
    return [by_value.get(int(v), str(v)) for v in label_manager.all_labels[1:]]


class nnUNetTrainerCALF(nnUNetTrainer):
    """nnU-Net's trainer with CALF (per-batch statistics) as the loss."""

    calf_loss: NnUNetCALFLoss
    branch_tally: BranchTally

    def _build_loss(self) -> torch.nn.Module:
        manager = self.label_manager
        if manager.has_ignore_label:
            raise IgnoreLabelError(
                f"nnUNetTrainerCALF does not support an ignore label, and dataset.json's "
                f"labels declare 'ignore': {manager.ignore_label}. CALF's statistics are areas "
                "of whole masks and its bce_dice branch has one Dice per batch, neither of "
                "which can leave voxels out. Train this dataset with nnUNetTrainer, or relabel "
                "the ignored voxels and remove 'ignore' from dataset.json"
            )
        training: Training = "regions" if manager.has_regions else "softmax"
        self.calf_loss = NnUNetCALFLoss(training, sync=self.is_ddp)
        self.branch_tally = BranchTally(
            class_names(self.dataset_json, manager),
            trainer=type(self).__name__,
            training=training,
        )
        # nnU-Net's own loss gives its deep-supervision wrapper and scale weights (halved per
        # scale, the lowest scale at 0, normalised); CALF replaces the wrapped loss.
        loss = super()._build_loss()
        if isinstance(loss, DeepSupervisionWrapper):
            loss.loss = self.calf_loss
            return loss
        return self.calf_loss

    def on_train_start(self) -> None:
        super().on_train_start()
        if self.local_rank == 0:
            self.branch_tally.resume(self.output_folder)

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.branch_tally.start_epoch(self.current_epoch)

    def train_step(self, batch: dict) -> dict:
        self.calf_loss.reset()
        result = super().train_step(batch)
        # The first call is the full-resolution output (deep supervision scores it first).
        self.branch_tally.add(self.calf_loss.picks[0])
        return result

    def on_train_epoch_end(self, train_outputs: list[dict]) -> None:
        super().on_train_epoch_end(train_outputs)
        line = self.branch_tally.end_epoch()
        self.print_to_log_file(line)
        if self.local_rank == 0:
            self.branch_tally.write(self.output_folder)


class nnUNetTrainerCALF_1epoch(nnUNetTrainerCALF):
    """:class:`nnUNetTrainerCALF` for one epoch (a smoke test), like nnU-Net's own
    ``nnUNetTrainer_1epoch``: one epoch of nnU-Net's 250 training iterations."""

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008 - nnU-Net's signature
    ) -> None:
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
