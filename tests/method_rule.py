"""docs/method.md section 3, the decision table, written out once for the tests: independent
of calfseg.rule (nested ifs, scipy's statistics), so a test that compares calfseg's pick with
it can fail."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def method_branch(s: float, k: float) -> str:
    """The branch for skewness ``s`` and excess kurtosis ``k`` with the paper's thresholds;
    undefined statistics (NaN) fall to bce_dice."""
    if math.isnan(s):
        return "bce_dice"
    if s <= -1:
        return "fisher"
    if s <= -0.5:
        return "logit"
    if s < 0:
        return "arcsine"
    if s >= 1:
        return "log10"
    if s >= 0.5:
        return "ln"
    if s > 0 and k < 0:  # k < 0 is False for NaN
        return "log10"
    return "bce_dice"  # 0 < S <= 0.5 with K >= 0, or S = 0


def method_branch_of_areas(areas: np.ndarray) -> str:
    """The branch for a set of areas: scipy's biased g1 and excess g2 (undefined when there
    are fewer than two areas or all are equal)."""
    areas = np.asarray(areas, dtype=np.float64)
    if len(areas) < 2 or np.all(areas == areas[0]):
        return method_branch(math.nan, math.nan)
    return method_branch(float(stats.skew(areas)), float(stats.kurtosis(areas)))
