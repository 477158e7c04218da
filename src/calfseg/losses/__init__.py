"""CALF's losses: the six branch functionals, CALFLoss and RegionCALFLoss; and the registry
of every loss the project trains with (CALF and the baselines).

Functional core (pure tensor functions of logits) in :mod:`calfseg.losses.branches`; thin
``nn.Module`` wrappers that hold options and statistics in :mod:`calfseg.losses.calf` and
:mod:`calfseg.losses.region`. The baselines (:mod:`calfseg.losses.baselines`,
:mod:`calfseg.losses.alternatives`) come from MONAI or segmentation_models_pytorch, imported
only when such a loss is built; :func:`build_loss` builds any registered loss by name.
"""

from calfseg.losses.adapter import BinaryLossAdapter
from calfseg.losses.alternatives import FocalTverskyLoss
from calfseg.losses.branches import (
    BRANCH_LOSSES,
    NUMERICS,
    arcsine_loss,
    bce_dice_loss,
    branch_loss,
    fisher_loss,
    ln_loss,
    log10_loss,
    logit_loss,
)
from calfseg.losses.calf import STATISTICS, CALFLoss, DegenerateStatisticsWarning
from calfseg.losses.region import RegionCALFLoss, tile_bounds
from calfseg.losses.registry import (
    LOSSES,
    PAPER_LOSSES,
    LossSpec,
    build_loss,
    format_losses,
    list_losses,
)

__all__ = [
    "BRANCH_LOSSES",
    "LOSSES",
    "NUMERICS",
    "PAPER_LOSSES",
    "STATISTICS",
    "BinaryLossAdapter",
    "CALFLoss",
    "DegenerateStatisticsWarning",
    "FocalTverskyLoss",
    "LossSpec",
    "RegionCALFLoss",
    "arcsine_loss",
    "bce_dice_loss",
    "branch_loss",
    "build_loss",
    "fisher_loss",
    "format_losses",
    "list_losses",
    "ln_loss",
    "log10_loss",
    "logit_loss",
    "tile_bounds",
]
