"""Streaming, mergeable moments of an area distribution, and its skewness and kurtosis.

State: count ``n``, mean, and the central sums ``M_k = sum((A_i - mean)^k)`` for k = 2, 3, 4,
all float64. A batch is summarised two-pass (mean first, then centred powers) and folded in
with the pairwise update of Chan, Golub & LeVeque (1979) extended to third and fourth
moments by Pébay, "Formulas for robust, one-pass parallel computation of covariances and
arbitrary-order statistical moments", Sandia report SAND2008-6212, eq. 3.1. Merging is
associative up to rounding, so the same areas give the same statistics in any order of
updates and merges, on one process or gathered from many (``all_reduce``).

Skewness and kurtosis follow ``scipy.stats.skew`` / ``scipy.stats.kurtosis`` exactly:

- biased (default): ``g1 = m3 / m2^1.5`` and excess ``g2 = m4 / m2^2 - 3`` with
  ``m_k = M_k / n`` (METHOD.md section 2);
- ``bias=False``: ``G1 = g1 * sqrt(n (n-1)) / (n-2)`` for n > 2 and
  ``G2 = ((n^2 - 1) m4/m2^2 - 3 (n-1)^2) / ((n-2)(n-3))`` for n > 3; smaller n keep the
  biased value, as scipy does;
- NaN when undefined: n = 0, or a variance at or below float64 resolution relative to the
  mean (``m2 <= (1e-15 * mean)^2``, scipy's test; it covers sigma = 0 and n = 1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

FINGERPRINT_FORMAT = "calfseg.area_moments/1"
_RESOLUTION = float(np.finfo(np.float64).resolution)  # 1e-15, scipy's "zero variance" scale


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
            raise ValueError("areas must be finite; got NaN or inf")
        mean = float(values.mean())
        centred = values - mean
        sq = centred * centred
        batch = AreaMoments(
            count=int(values.size),
            mean=mean,
            m2=float(sq.sum()),
            m3=float((sq * centred).sum()),
            m4=float((sq * sq).sum()),
        )
        return self.merge(batch)

    def merge(self, other: AreaMoments) -> AreaMoments:
        """Fold another summary into this one, in place (Pébay 2008, eq. 3.1); returns ``self``."""
        na, nb = self.count, other.count
        if nb == 0:
            return self
        if na == 0:
            self.count, self.mean = other.count, other.mean
            self.m2, self.m3, self.m4 = other.m2, other.m3, other.m4
            return self
        n = na + nb
        delta = other.mean - self.mean
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
        self.count = n
        self.mean = self.mean + nb * d_n
        self.m2, self.m3, self.m4 = m2, m3, m4
        return self

    def copy(self) -> AreaMoments:
        return AreaMoments(self.count, self.mean, self.m2, self.m3, self.m4)

    # -- statistics -------------------------------------------------------------------------

    @property
    def variance(self) -> float:
        """Population variance ``M2 / n`` (NaN when empty)."""
        return self.m2 / self.count if self.count else math.nan

    def _degenerate(self) -> bool:
        # scipy.stats.skew/kurtosis: m2 <= (resolution * mean)^2 -> NaN (covers n = 1 too).
        return self.count == 0 or self.m2 / self.count <= (_RESOLUTION * self.mean) ** 2

    def skewness(self, bias: bool = True) -> float:
        """Skewness g1 (``bias=False``: adjusted Fisher-Pearson G1), NaN where undefined."""
        if self._degenerate():
            return math.nan
        n = self.count
        m2, m3 = self.m2 / n, self.m3 / n
        g1 = m3 / m2**1.5
        if not bias and n > 2:
            return g1 * math.sqrt((n - 1.0) * n) / (n - 2.0)
        return g1

    def kurtosis(self, bias: bool = True, fisher: bool = True) -> float:
        """Kurtosis, excess (``fisher=True``) or plain; ``bias=False`` gives scipy's G2."""
        if self._degenerate():
            return math.nan
        n = self.count
        m2, m4 = self.m2 / n, self.m4 / n
        value = m4 / (m2 * m2)
        if not bias and n > 3:
            value = ((n * n - 1.0) * value - 3.0 * (n - 1.0) ** 2) / ((n - 2.0) * (n - 3.0)) + 3.0
        return value - 3.0 if fisher else value

    # -- distributed ------------------------------------------------------------------------

    def all_reduce(self, group: Any = None) -> AreaMoments:
        """Combine the summaries of all ranks of a torch.distributed group, in place.

        Every rank ends with the same numbers: the five fields of each rank are gathered and
        merged in rank order. A no-op when torch.distributed is not initialised.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        device = torch.device("cpu")
        if dist.get_backend(group) == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        mine = torch.tensor(
            [self.count, self.mean, self.m2, self.m3, self.m4], dtype=torch.float64, device=device
        )
        gathered = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
        dist.all_gather(gathered, mine, group=group)
        merged = AreaMoments()
        for row in torch.stack(gathered).cpu().tolist():
            merged.merge(AreaMoments(int(row[0]), row[1], row[2], row[3], row[4]))
        self.count, self.mean = merged.count, merged.mean
        self.m2, self.m3, self.m4 = merged.m2, merged.m3, merged.m4
        return self

    # -- fingerprint (de)serialisation ------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: the state, plus skewness/kurtosis for people (null when NaN)."""

        def finite_or_none(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "format": FINGERPRINT_FORMAT,
            "count": self.count,
            "mean": self.mean,
            "m2": self.m2,
            "m3": self.m3,
            "m4": self.m4,
            "skewness": finite_or_none(self.skewness()),
            "kurtosis": finite_or_none(self.kurtosis()),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AreaMoments:
        """Inverse of :meth:`to_dict` (derived keys are ignored)."""
        fmt = data.get("format", FINGERPRINT_FORMAT)
        if fmt != FINGERPRINT_FORMAT:
            raise ValueError(f"unknown fingerprint format {fmt!r}; expected {FINGERPRINT_FORMAT!r}")
        try:
            count = int(data["count"])
            fields = [float(data[k]) for k in ("mean", "m2", "m3", "m4")]
        except KeyError as err:
            raise ValueError(f"fingerprint lacks the field {err.args[0]!r}") from err
        if count < 0:
            raise ValueError(f"fingerprint count must be >= 0, got {count}")
        return cls(count, *fields)

    def save(self, path: str | Path) -> None:
        """Write the fingerprint as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> AreaMoments:
        """Read a fingerprint written by :meth:`save` (or any JSON with its keys)."""
        return cls.from_dict(json.loads(Path(path).read_text()))
