"""CALF's losses and the registry of every loss the project trains with.

What a user calls::

    CALFLoss(statistics="batch" | "dataset", ...)   the conditionally adaptive loss
    RegionCALFLoss(...)                              CALF's rule per tile of the image
    build_loss(name, **options), list_losses()       any registered loss (CALF, baselines)
    LOSSES, PAPER_LOSSES, LossSpec                   the registry and its entries
    branch_loss(name, logits, target), BRANCH_LOSSES one of CALF's six branch losses
    BranchLoss(name)                                 one branch as a fixed loss (branch-<name>)
    DegenerateStatisticsWarning                      areas too few or too alike for S and K

Functional core (pure tensor functions of logits) in :mod:`calfseg.losses.branches`; thin
``nn.Module`` wrappers that hold options and statistics in :mod:`calfseg.losses.calf` and
:mod:`calfseg.losses.region`. The baselines (:mod:`calfseg.losses.baselines`,
:mod:`calfseg.losses.alternatives`) come from MONAI or segmentation_models_pytorch, imported
only when such a loss is built. The method: docs/method.md.
"""

from calfseg.losses.branches import BRANCH_LOSSES, BranchLoss, branch_loss
from calfseg.losses.calf import CALFLoss, DegenerateStatisticsWarning
from calfseg.losses.region import RegionCALFLoss
from calfseg.losses.registry import LOSSES, PAPER_LOSSES, LossSpec, build_loss, list_losses

__all__ = [
    "BRANCH_LOSSES",
    "LOSSES",
    "PAPER_LOSSES",
    "BranchLoss",
    "CALFLoss",
    "DegenerateStatisticsWarning",
    "LossSpec",
    "RegionCALFLoss",
    "branch_loss",
    "build_loss",
    "list_losses",
]
