"""An independent float64 NumPy reference of CALF's branch losses, written from docs/method.md
section 3 (paper clamp), with their gradients with respect to the logits.

Per-element values; bce_dice adds the batch-global ``1 - Dice`` to every element.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.where(
        z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z)))
    )


def paper_probability(z: np.ndarray) -> np.ndarray:
    """p = clip(sigmoid(z), 1e-7, 1 - 1e-7), with the clip bounds as float32 holds them
    (the authors computed in float32, where 1 - 1e-7 is 1 - 1.19e-7)."""
    lo, hi = float(np.float32(EPS)), float(np.float32(1 - EPS))
    return np.clip(sigmoid(z), lo, hi)


def f32(x: np.ndarray) -> np.ndarray:
    """Round to float32 and back: the authors computed in float32, so 1 - p near 1 is
    1 - 1.19e-7, not 1 - 1e-7, and that difference is visible in atanh and log."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def _atanh(x):
    return 0.5 * np.log((1 + x) / (1 - x))


def _logit(x):
    return np.log(x / (1 - x))


# Per-element loss from p and its complement q = 1 - p (passed separately so that the paper
# reference can round q to float32 as the authors' code did, and the exact one need not).
FORMULAS = {
    "fisher": lambda p, q, y: -(y * _atanh(p) + (1 - y) * _atanh(q)),
    "logit": lambda p, q, y: -(y * _logit(p) + (1 - y) * _logit(q)),
    "arcsine": lambda p, q, y: -(y * np.arcsin(np.sqrt(p)) + (1 - y) * np.arcsin(np.sqrt(q))),
    "log10": lambda p, q, y: -(y * np.log10(p) + (1 - y) * np.log10(q)),
    "ln": lambda p, q, y: -(y * np.log(p) + (1 - y) * np.log(q)),
}


# d(per-element loss)/dp, used with dp/dz = p (1 - p) where the clamp is inactive.
PAPER_DP = {
    "fisher": lambda p, y: -(y / (1 - p * p) - (1 - y) / (1 - (1 - p) ** 2)),
    "logit": lambda p, y: -(y - (1 - y)) / (p * (1 - p)),
    "arcsine": lambda p, y: (
        -(y / (2 * np.sqrt(p) * np.sqrt(1 - p)) - (1 - y) / (2 * np.sqrt(1 - p) * np.sqrt(p)))
    ),
    "log10": lambda p, y: -(y / p - (1 - y) / (1 - p)) / np.log(10),
    "ln": lambda p, y: -(y / p - (1 - y) / (1 - p)),
}


def _dice_terms(p, y):
    inter, denom = (p * y).sum(), p.sum() + y.sum()
    dice = (2 * inter + EPS) / (denom + EPS)
    ddice_dp = (2 * y * (denom + EPS) - (2 * inter + EPS)) / (denom + EPS) ** 2
    return dice, ddice_dp


def loss_and_grad(branch: str, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-element loss map and the gradient of its MEAN with respect to z (paper clamp)."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = z.size
    if branch == "bce_dice":
        # Unclamped p in float32: it saturates to exactly 0 or 1 beyond |z| of about 17, where
        # torch's BCE floors the log at -100 and the gradient through sigmoid is 0.
        p = f32(sigmoid(z))
        with np.errstate(divide="ignore"):
            bce = -(
                y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log(f32(1 - p)), -100)
            )
        dice, ddice_dp = _dice_terms(p, y)
        # torch's BCE backward divides by max(p (1 - p), 1e-12), then sigmoid multiplies by
        # p (1 - p): the gradient fades beyond |z| of about 27.6 and is 0 once p saturates.
        slope = p * f32(1 - p)
        dbce_dz = (p - y) / np.maximum(slope, 1e-12) * slope / n
        return bce + (1 - dice), dbce_dz - ddice_dp * p * (1 - p)
    p = paper_probability(z)
    raw = sigmoid(z)
    active = (raw > float(np.float32(EPS))) & (raw < float(np.float32(1 - EPS)))
    grad = np.where(active, PAPER_DP[branch](p, y) * p * (1 - p), 0.0) / n
    return FORMULAS[branch](p, f32(1 - p), y), grad


def exact(branch: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The unclamped definition in float64 (for moderate |z|, where float64 p is accurate)."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    p = sigmoid(z)
    if branch == "bce_dice":
        bce = -(y * np.log(p) + (1 - y) * np.log1p(-p))
        return bce + (1 - _dice_terms(p, y)[0])
    return FORMULAS[branch](p, 1 - p, y)


# -- the bounded default, written from docs/method.md section 3 in float64 ---------------------


def bounded(branch: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-element value of the default numerics, in float64, for any logit.

    fisher and logit: the paper's formula with p and 1 - p clipped to [1e-7, 1 - 1e-7] (both
    computed directly, sigmoid(z) and sigmoid(-z), so that 1 - p keeps its digits).
    arcsine: the unclamped formula. ln and log10: the exact BCE, -ln p = ln(1 + e^-z) written
    with ``np.logaddexp``. bce_dice: that BCE plus 1 - one Dice of the whole input, p unclamped.
    """
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    p, q = sigmoid(z), sigmoid(-z)
    if branch in ("fisher", "logit"):
        pc, qc = np.clip(p, EPS, 1 - EPS), np.clip(q, EPS, 1 - EPS)
        if branch == "fisher":
            return -(y * 0.5 * np.log((1 + pc) / qc) + (1 - y) * 0.5 * np.log((1 + qc) / pc))
        return -(y * np.log(pc / qc) + (1 - y) * np.log(qc / pc))
    if branch == "arcsine":
        # asin(sqrt(p)) as atan2(sqrt(p), sqrt(1 - p)) with 1 - p = q: the same angle, but
        # without rounding q to 1 where p is tiny (asin(sqrt(q)) would lose sqrt(p) there).
        sp, sq = np.sqrt(p), np.sqrt(q)
        return -(y * np.arctan2(sp, sq) + (1 - y) * np.arctan2(sq, sp))
    bce = y * np.logaddexp(0.0, -z) + (1 - y) * np.logaddexp(0.0, z)
    if branch == "ln":
        return bce
    if branch == "log10":
        return bce / np.log(10)
    return bce + (1 - _dice_terms(p, y)[0])
