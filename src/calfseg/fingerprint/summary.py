"""What a fingerprint measured from the individual areas, beyond their moments: how many
masks were empty, quantiles, and how the rule's pick behaves over random mini-batches and
bootstrap resamples. Computed by :func:`calfseg.fingerprint.fingerprint_of_areas`; a
fingerprint built from moments alone has none.

Each class turns into a JSON-safe dict (NaN -> ``null``) and back, so that a fingerprint
file read again gives the same object.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from calfseg.fingerprint.jsonsafe import json_safe, nan_if_none


def _pair(value: Any) -> tuple[float, float]:
    lo, hi = value
    return nan_if_none(lo), nan_if_none(hi)


@dataclass(frozen=True)
class BatchSummary:
    """How the per-batch rule (the authors' dynamic CALF) behaves on this data."""

    batch_size: int
    batches: int
    branch_frequencies: dict[str, float]  # every branch, in BRANCHES order; sums to 1
    condition_frequencies: dict[str, float]  # the rows that fired, most frequent first
    undefined_fraction: float  # batches whose areas are all equal: S, K undefined
    skewness_median: float
    skewness_range95: tuple[float, float]  # 2.5 and 97.5 percentiles over batches
    kurtosis_median: float
    kurtosis_range95: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchSummary:
        return cls(
            batch_size=int(data["batch_size"]),
            batches=int(data["batches"]),
            branch_frequencies=dict(data["branch_frequencies"]),
            condition_frequencies=dict(data["condition_frequencies"]),
            undefined_fraction=float(data["undefined_fraction"]),
            skewness_median=nan_if_none(data["skewness_median"]),
            skewness_range95=_pair(data["skewness_range95"]),
            kurtosis_median=nan_if_none(data["kurtosis_median"]),
            kurtosis_range95=_pair(data["kurtosis_range95"]),
        )


@dataclass(frozen=True)
class BootstrapSummary:
    """Stability of the dataset-level pick under resampling the areas with replacement."""

    resamples: int
    branch_frequencies: dict[str, float]
    agreement: float  # share of resamples picking the dataset-level branch
    skewness_ci95: tuple[float, float]  # percentile interval
    kurtosis_ci95: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BootstrapSummary:
        return cls(
            resamples=int(data["resamples"]),
            branch_frequencies=dict(data["branch_frequencies"]),
            agreement=float(data["agreement"]),
            skewness_ci95=_pair(data["skewness_ci95"]),
            kurtosis_ci95=_pair(data["kurtosis_ci95"]),
        )


@dataclass(frozen=True)
class AreaSummary:
    """Counts and distribution of the areas a fingerprint was computed from."""

    n_measured: int  # areas measured, before excluding empties
    n_empty: int  # of which empty (no foreground pixel)
    excluded_empty: bool  # whether the empties were left out of the statistics
    quantiles: dict[str, float]  # min, p05, p25, p50, p75, p95, max of the analysed areas
    batch: BatchSummary | None = None  # None: no batch size given
    bootstrap: BootstrapSummary | None = None  # None: no bootstrap

    @property
    def empty_fraction(self) -> float:
        return self.n_empty / self.n_measured if self.n_measured else 0.0

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "n_measured": self.n_measured,
                "n_empty": self.n_empty,
                "empty_fraction": self.empty_fraction,
                "excluded_empty": self.excluded_empty,
                "quantiles": self.quantiles,
                "batch": self.batch.to_dict() if self.batch else None,
                "bootstrap": self.bootstrap.to_dict() if self.bootstrap else None,
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AreaSummary:
        """Inverse of :meth:`to_dict`; a missing or mistyped key raises KeyError,
        TypeError or ValueError (the loader names the file)."""
        batch, boot = data.get("batch"), data.get("bootstrap")
        return cls(
            n_measured=int(data["n_measured"]),
            n_empty=int(data["n_empty"]),
            excluded_empty=bool(data["excluded_empty"]),
            quantiles={str(k): float(v) for k, v in data["quantiles"].items()},
            batch=None if batch is None else BatchSummary.from_dict(batch),
            bootstrap=None if boot is None else BootstrapSummary.from_dict(boot),
        )
