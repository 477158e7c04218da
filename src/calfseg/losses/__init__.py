"""CALF's losses: the six branch functionals, CALFLoss and RegionCALFLoss.

Functional core (pure tensor functions of logits) in :mod:`calfseg.losses.branches`; thin
``nn.Module`` wrappers that hold options and statistics in :mod:`calfseg.losses.calf` and
:mod:`calfseg.losses.region`.
"""

from calfseg.losses.branches import (
    BRANCH_LOSSES,
    CLAMPS,
    arcsine_loss,
    bce_dice_loss,
    branch_loss,
    fisher_loss,
    ln_loss,
    log10_loss,
    logit_loss,
)
from calfseg.losses.calf import STATISTICS, CALFLoss
from calfseg.losses.region import RegionCALFLoss, tile_bounds

__all__ = [
    "BRANCH_LOSSES",
    "CLAMPS",
    "STATISTICS",
    "CALFLoss",
    "RegionCALFLoss",
    "arcsine_loss",
    "bce_dice_loss",
    "branch_loss",
    "fisher_loss",
    "ln_loss",
    "log10_loss",
    "logit_loss",
    "tile_bounds",
]
