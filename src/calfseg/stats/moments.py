"""Streaming, mergeable moments of an area distribution, and its skewness and kurtosis.

State: count ``n``, mean, and the central sums ``M_k = sum((A_i - mean)^k)`` for k = 2, 3, 4,
all float64. A batch is summarised two-pass (mean first, then centred powers, with the
corrected two-pass mean of Björck) and folded in with the pairwise update of Chan, Golub &
LeVeque (1979) extended to third and fourth moments by Pébay, "Formulas for robust, one-pass
parallel computation of covariances and arbitrary-order statistical moments", Sandia report
SAND2008-6212, eq. 3.1. Merging is associative up to rounding, so the same areas give the
same statistics in any order of updates and merges, on one process or gathered from many
(:func:`calfseg.stats.sync.all_reduce_moments`, which imports this module, never the reverse).

The mean is kept as an unevaluated sum ``mean + mean_lo`` of two floats (double-double).
Without the low part, the mean carries an error of half an ulp of its magnitude, and every
merge feeds that error into the difference of two means; for areas packed tightly around a
large value (spread ~1 around 1e9) that alone cost seven significant digits of the skewness.
``mean_lo`` is 0 or tiny; :class:`AreaMoments` built from five numbers simply has none.

Skewness and kurtosis follow the definitions of ``scipy.stats.skew`` / ``scipy.stats.kurtosis``
(and agree with them to ~1e-12 wherever scipy's own rounding allows; for areas packed within
~1e-5 of their mean's size scipy loses digits, even returning -1 for 46 copies of one number,
while this summary stays within ~1e-12 of the exact value):

- biased (default): ``g1 = m3 / m2^1.5`` and excess ``g2 = m4 / m2^2 - 3`` with
  ``m_k = M_k / n`` (docs/method.md section 2);
- ``bias=False``: ``G1 = g1 * sqrt(n (n-1)) / (n-2)`` for n > 2 and
  ``G2 = ((n^2 - 1) m4/m2^2 - 3 (n-1)^2) / ((n-2)(n-3))`` for n > 3; smaller n keep the
  biased value, as scipy does;
- NaN when undefined: n = 0, or a variance at or below float64 epsilon relative to the
  mean (``m2 <= (eps * mean)^2`` with eps = 2.2e-16; it covers sigma = 0 and n = 1). This is
  the test of current scipy (checked with 1.17); older releases (from 1.9) used
  ``resolution`` = 1e-15 instead of eps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from calfseg.errors import DataValueError

FINGERPRINT_FORMAT = "calfseg.area_moments/1"
ZERO_VARIANCE_EPS = float(np.finfo(np.float64).eps)  # 2.2e-16, scipy's "zero variance" scale
_STATE_KEYS = ("mean", "m2", "m3", "m4")


def _two_sum(a: float, b: float) -> tuple[float, float]:
    """``s + e == a + b`` exactly, with ``s = fl(a + b)`` (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@dataclass
class AreaMoments:
    """Count, mean and central sums M2..M4 of a set of areas (float64).

    Example::

        moments = AreaMoments()
        for batch in loader:
            moments.update(foreground_areas(batch["mask"]))
        moments.skewness(), moments.kurtosis()
    """

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    m3: float = 0.0
    m4: float = 0.0
    mean_lo: float = 0.0  # low-order part of the mean: the mean is ``mean + mean_lo``

    @classmethod
    def from_areas(cls, areas: torch.Tensor | np.ndarray | Sequence[float]) -> AreaMoments:
        """Summarise a set of areas (any shape; every element is one area)."""
        return cls().update(areas)

    def update(self, areas: torch.Tensor | np.ndarray | Sequence[float]) -> AreaMoments:
        """Add areas to the summary, in place; returns ``self``. NaN or inf is an error."""
        if isinstance(areas, torch.Tensor):
            values = areas.detach().to("cpu", torch.float64).numpy().ravel()
        else:
            values = np.asarray(areas, dtype=np.float64).ravel()
        if values.size == 0:
            return self
        if not np.isfinite(values).all():
            raise DataValueError("areas must be finite; got NaN or inf")
        n = int(values.size)
        mean = float(values.mean())
        centred = values - mean
        # Corrected two-pass: the centred values of a tight cluster are exact (Sterbenz), so
        # their mean is the rounding error of ``mean``; keep it as the low part.
        correction = float(centred.sum()) / n
        centred -= correction
        sq = centred * centred
        hi, lo = _two_sum(mean, correction)
        batch = AreaMoments(
            count=n,
            mean=hi,
            m2=float(sq.sum()),
            m3=float((sq * centred).sum()),
            m4=float((sq * sq).sum()),
            mean_lo=lo,
        )
        return self.merge(batch)

    def merge(self, other: AreaMoments) -> AreaMoments:
        """Fold another summary into this one, in place (Pébay 2008, eq. 3.1); returns ``self``."""
        na, nb = self.count, other.count
        if nb == 0:
            return self
        if na == 0:
            self.count, self.mean, self.mean_lo = other.count, other.mean, other.mean_lo
            self.m2, self.m3, self.m4 = other.m2, other.m3, other.m4
            return self
        n = na + nb
        # delta = other's mean - self's mean, from the double-double parts (the difference of
        # the high parts is exact when the means are close, which is when it matters).
        d_hi, d_lo = _two_sum(other.mean, -self.mean)
        delta = d_hi + (d_lo + (other.mean_lo - self.mean_lo))
        d_n = delta / n
        d_n2 = d_n * d_n
        cross = delta * d_n * na * nb  # delta^2 na nb / n
        m2 = self.m2 + other.m2 + cross
        m3 = (
            self.m3
            + other.m3
            + cross * d_n * (na - nb)
            + 3.0 * d_n * (na * other.m2 - nb * self.m2)
        )
        m4 = (
            self.m4
            + other.m4
            + cross * d_n2 * (na * na - na * nb + nb * nb)
            + 6.0 * d_n2 * (na * na * other.m2 + nb * nb * self.m2)
            + 4.0 * d_n * (na * other.m3 - nb * self.m3)
        )
        hi, lo = _two_sum(self.mean, nb * d_n)
        self.count = n
        self.mean, self.mean_lo = _two_sum(hi, lo + self.mean_lo)
        self.m2, self.m3, self.m4 = m2, m3, m4
        return self

    def copy(self) -> AreaMoments:
        return AreaMoments(self.count, self.mean, self.m2, self.m3, self.m4, self.mean_lo)

    # -- statistics -------------------------------------------------------------------------

    @property
    def variance(self) -> float:
        """Population variance ``M2 / n`` (NaN when empty)."""
        return self.m2 / self.count if self.count else math.nan

    def _degenerate(self) -> bool:
        # scipy.stats.skew/kurtosis: m2 <= (eps * mean)^2 -> NaN (covers n = 1 too).
        return self.count == 0 or self.m2 / self.count <= (ZERO_VARIANCE_EPS * self.mean) ** 2

    def skewness(self, bias: bool = True) -> float:
        """Skewness g1 (``bias=False``: adjusted Fisher-Pearson G1), NaN where undefined."""
        if self._degenerate():
            return math.nan
        n = self.count
        m2, m3 = self.m2 / n, self.m3 / n
        scale = m2**1.5
        if scale == 0.0:  # a spread below ~1e-103 underflows float64: nothing to measure
            return math.nan
        g1 = m3 / scale
        if not bias and n > 2:
            return g1 * math.sqrt((n - 1.0) * n) / (n - 2.0)
        return g1

    def kurtosis(self, bias: bool = True, fisher: bool = True) -> float:
        """Kurtosis, excess (``fisher=True``) or plain; ``bias=False`` gives scipy's G2."""
        if self._degenerate():
            return math.nan
        n = self.count
        m2, m4 = self.m2 / n, self.m4 / n
        if m2 * m2 == 0.0:  # a spread below ~1e-77 underflows float64: nothing to measure
            return math.nan
        value = m4 / (m2 * m2)
        if not bias and n > 3:
            value = ((n * n - 1.0) * value - 3.0 * (n - 1.0) ** 2) / ((n - 2.0) * (n - 3.0)) + 3.0
        return value - 3.0 if fisher else value

    # -- collectives (calfseg.stats.sync.all_reduce_moments sends these rows) ---------------

    def as_row(self) -> list[float]:
        """The state as six floats (count, mean, m2, m3, m4, mean_lo), for collectives."""
        return [float(self.count), self.mean, self.m2, self.m3, self.m4, self.mean_lo]

    @classmethod
    def from_row(cls, row: Sequence[float]) -> AreaMoments:
        """Inverse of :meth:`as_row`."""
        return cls(int(row[0]), row[1], row[2], row[3], row[4], row[5])

    # -- fingerprint (de)serialisation ------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dict: the state, plus skewness/kurtosis for people (null when NaN)."""

        def finite_or_none(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "format": FINGERPRINT_FORMAT,
            "count": self.count,
            "mean": self.mean,
            "mean_lo": self.mean_lo,
            "m2": self.m2,
            "m3": self.m3,
            "m4": self.m4,
            "skewness": finite_or_none(self.skewness()),
            "kurtosis": finite_or_none(self.kurtosis()),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AreaMoments:
        """Inverse of :meth:`to_dict` (derived keys are ignored; ``mean_lo`` may be absent)."""
        if not isinstance(data, dict):
            raise DataValueError(f"a fingerprint must be a JSON object, got {type(data).__name__}")
        fmt = data.get("format", FINGERPRINT_FORMAT)
        if fmt != FINGERPRINT_FORMAT:
            raise DataValueError(
                f"unknown fingerprint format {fmt!r}; expected {FINGERPRINT_FORMAT!r}"
            )
        missing = [k for k in ("count", *_STATE_KEYS) if k not in data]
        if missing:
            raise DataValueError(f"fingerprint lacks the field(s) {missing}")
        raw = {k: data[k] for k in ("count", *_STATE_KEYS)}
        raw["mean_lo"] = data.get("mean_lo", 0.0)
        for key, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DataValueError(f"fingerprint field {key!r} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise DataValueError(f"fingerprint field {key!r} must be finite, got {value!r}")
        count = raw["count"]
        if count != int(count) or count < 0:
            raise DataValueError(f"fingerprint count must be a whole number >= 0, got {count!r}")
        if raw["m2"] < 0 or raw["m4"] < 0:
            raise DataValueError("fingerprint m2 and m4 are sums of even powers and must be >= 0")
        return cls(
            int(count),
            float(raw["mean"]),
            float(raw["m2"]),
            float(raw["m3"]),
            float(raw["m4"]),
            float(raw["mean_lo"]),
        )
