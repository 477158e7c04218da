"""The empty-mask policy, and the mean over images (or cases) that applies it.

A score is *undefined* for an image when its denominator is 0: Dice and IoU when truth and
prediction are both empty, sensitivity when the truth is empty, precision when the
prediction is empty, specificity when the truth covers the whole image, HD95 and ASSD when
both masks are empty. :data:`EmptyPolicy` says what such an image contributes to a mean:

- ``"one"`` (default): the perfect value, 1 for the overlap scores (0 mm for distances,
  0 for MAE). The paper's choice: Dice is 1 when both masks are empty and precision is 1
  when its denominator is 0 (docs/method.md section 5).
- ``"exclude"``: the image is left out of the mean; the number left out is reported.

Undefined scores never turn into NaN inside a mean. A mean with nothing to average (no
images, or all of them excluded) is NaN *together with* ``n_used == 0``, and a
:class:`UndefinedMetricWarning` is emitted; :meth:`Score.json_value` turns it into ``None``.
Raising instead would make, for instance, the sensitivity of the tumour-free slices
unreportable under ``"exclude"``, although "no image to average" is a legitimate answer.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from calfseg.errors import OptionError, check_choice

EmptyPolicy = Literal["one", "exclude"]
EMPTY_POLICIES: tuple[str, ...] = get_args(EmptyPolicy)


class UndefinedMetricWarning(RuntimeWarning):
    """A mean had no image to average (all excluded, or none given); its value is NaN."""


def check_policy(policy: str) -> EmptyPolicy:
    """Return ``policy`` if it is one of :data:`EMPTY_POLICIES`, else raise UnknownChoiceError."""
    check_choice("policy", policy, EMPTY_POLICIES)
    return policy  # type: ignore[return-value]


@dataclass(frozen=True)
class Score:
    """A reduced score and how it was obtained.

    Attributes:
        value: the mean (NaN only when ``n_used == 0``).
        n: units (images, cases, batches) given.
        n_undefined: units whose score was undefined (denominator 0).
        n_used: units in the mean: ``n`` under ``"one"``, ``n - n_undefined`` under
            ``"exclude"``.
    """

    value: float
    n: int
    n_undefined: int
    n_used: int

    @property
    def n_excluded(self) -> int:
        return self.n - self.n_used

    def json_value(self) -> float | None:
        """``value``, or None when there was nothing to average (never NaN)."""
        return None if math.isnan(self.value) else self.value


@dataclass(frozen=True)
class ImageScores:
    """One score per unit (image or case) and which of them are undefined.

    ``values`` holds the perfect value where ``undefined`` is True, so it never contains
    NaN; :meth:`mean` decides, by the policy, whether those entries count.
    """

    values: np.ndarray
    undefined: np.ndarray
    perfect: float = 1.0

    def __post_init__(self) -> None:
        if self.values.shape != self.undefined.shape or self.values.ndim != 1:
            raise OptionError("values and undefined must be 1-D arrays of the same length")

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def select(self, mask: np.ndarray) -> ImageScores:
        """The units where ``mask`` is True (a bool array of the same length)."""
        return ImageScores(self.values[mask], self.undefined[mask], self.perfect)

    def mean(self, policy: EmptyPolicy = "one", name: str = "score") -> Score:
        """Mean over units under ``policy`` (see the module docstring)."""
        check_policy(policy)
        use = ~self.undefined if policy == "exclude" else np.ones(len(self), dtype=bool)
        n_used = int(use.sum())
        n_undefined = int(self.undefined.sum())
        if n_used == 0:
            warnings.warn(
                f"{name}: no unit to average ({len(self)} given, {n_undefined} undefined, "
                f"policy {policy!r}); the value is NaN with n_used = 0",
                UndefinedMetricWarning,
                stacklevel=2,
            )
            return Score(math.nan, len(self), n_undefined, 0)
        value = float(np.mean(self.values[use], dtype=np.float64))
        return Score(value, len(self), n_undefined, n_used)


def ratio(numerator: np.ndarray, denominator: np.ndarray, perfect: float = 1.0) -> ImageScores:
    """``numerator / denominator`` per unit, undefined (and set to ``perfect``) where the
    denominator is 0."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    undefined = den == 0
    values = np.divide(
        num, den, out=np.full(num.shape, perfect, dtype=np.float64), where=~undefined
    )
    return ImageScores(values, undefined, perfect)
