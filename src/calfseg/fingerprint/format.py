"""The fingerprint of a set of masks and its one JSON format, ``calfseg.fingerprint/1``.

A fingerprint is what CALF's dataset-level rule needs to know about the training masks: the
mergeable moments of their foreground areas (:class:`~calfseg.stats.AreaMoments`: count,
mean, central sums M2..M4), hence the skewness S and excess kurtosis K, hence the branch
(docs/method.md, sections 2 and 3; arXiv 2504.04458, section 2). ``calf prepare`` writes one
for a cache's train split (``fingerprint.json``), ``calf analyze --json`` and
:func:`calfseg.analyze` for any masks; :meth:`CALFLoss.fit <calfseg.losses.CALFLoss.fit>`,
``build_loss("calf-dataset", fingerprint=...)`` and ``calf analyze`` read it back through
:func:`~calfseg.fingerprint.load_fingerprint`.

The JSON document (strict JSON, NaN written as ``null``)::

    {"format": "calfseg.fingerprint/1", "calfseg_version": "0.2.0",
     "count": 930, "mean": 825.2, "mean_lo": 0.0, "m2": ..., "m3": ..., "m4": ...,
     "skewness": 1.479, "kurtosis": 1.49, "branch": "log10", "condition": "S >= 1",
     "thresholds": {"fisher": -1.0, ...},
     "measured": {"path": ..., "source": "masks", "unit": "slices", ...},
     "summary": {"n_measured": ..., "quantiles": ..., "batch": ..., "bootstrap": ...}}

Read back: the state (``count``, ``mean``, ``mean_lo``, ``m2``..``m4``), ``thresholds``,
``measured`` and ``summary``; S, K, branch and condition are written for people and
recomputed on reading. Older documents: ``calfseg.area_moments/1`` (the flat moments of
``AreaMoments.to_dict``, in caches prepared before this format) holds the same state and is
converted; ``calfseg.analysis/1`` (reports of the old ``calf analyze --json``) is refused
with the command that rewrites it.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calfseg.atomic import atomic_write_json
from calfseg.errors import DataValueError
from calfseg.fingerprint.jsonsafe import json_safe
from calfseg.fingerprint.summary import AreaSummary
from calfseg.rule import Selection, Thresholds, select_branch
from calfseg.stats.moments import AreaMoments

FINGERPRINT_FORMAT = "calfseg.fingerprint/1"
MOMENTS_FORMAT = "calfseg.area_moments/1"  # read and converted: the same state, flat
OLD_REPORT_FORMAT = "calfseg.analysis/1"  # refused: rerun calf analyze
FINGERPRINT_FILE = "fingerprint.json"  # the name inside a cache folder
STATE_KEYS = ("count", "mean", "mean_lo", "m2", "m3", "m4")


class FingerprintError(DataValueError):
    """A document (or a file) that cannot be read as a fingerprint; the message names it
    and says how to get a valid one."""


@dataclass(frozen=True)
class Fingerprint:
    """The area distribution of a set of masks, and the branch CALF's rule picks for it.

    Args:
        moments: count, mean and central sums of the areas (the only field CALF needs).
        thresholds: the rule's thresholds behind :attr:`branch` (default: the paper's).
        measured: what was measured, JSON-safe (path, source, unit, files, options).
        summary: counts, quantiles, batch and bootstrap behaviour, when the fingerprint was
            computed from the areas themselves (None from moments alone).
        areas: the analysed areas, kept in memory for a histogram; never written to the
            file (None when read back) and not compared.
    """

    moments: AreaMoments
    thresholds: Thresholds = field(default_factory=Thresholds)
    measured: dict[str, Any] = field(default_factory=dict)
    summary: AreaSummary | None = None
    areas: np.ndarray | None = field(default=None, compare=False, repr=False)

    # -- what the rule sees ----------------------------------------------------------------

    @property
    def count(self) -> int:
        """How many areas S and K come from (after excluding empties, if asked)."""
        return self.moments.count

    @property
    def skewness(self) -> float:
        """Biased skewness g1 = m3 / m2^1.5 (scipy.stats.skew); NaN when undefined."""
        return self.moments.skewness()

    @property
    def kurtosis(self) -> float:
        """Excess kurtosis g2 = m4 / m2^2 - 3 (scipy.stats.kurtosis); NaN when undefined."""
        return self.moments.kurtosis()

    @property
    def selection(self) -> Selection:
        """The rule's pick for (S, K) with :attr:`thresholds`."""
        return select_branch(self.skewness, self.kurtosis, self.thresholds, count=self.count)

    @property
    def branch(self) -> str:
        return self.selection.branch

    @property
    def condition(self) -> str:
        return self.selection.condition

    @property
    def undefined_reason(self) -> str | None:
        """Why S and K are undefined (the pick is the rule's fallback, not a choice made from
        the data), or None when both are defined."""
        if not (math.isnan(self.skewness) or math.isnan(self.kurtosis)):
            return None
        n = self.count
        if n < 2:
            return f"only {n} area: S and K need at least 2 different values"
        summary = self.summary
        if summary is not None and not summary.excluded_empty and summary.n_empty == n:
            return f"all {n} masks are empty (area 0): no foreground of the chosen labels"
        return f"all {n} areas are equal ({self.moments.mean:g}): S and K are undefined"

    # -- the JSON document -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The ``calfseg.fingerprint/1`` document (strict-JSON safe)."""
        from calfseg import __version__

        m = self.moments
        return json_safe(
            {
                "format": FINGERPRINT_FORMAT,
                "calfseg_version": __version__,
                "count": m.count,
                "mean": m.mean,
                "mean_lo": m.mean_lo,
                "m2": m.m2,
                "m3": m.m3,
                "m4": m.m4,
                "skewness": self.skewness,
                "kurtosis": self.kurtosis,
                "branch": self.branch,
                "condition": self.condition,
                "thresholds": asdict(self.thresholds),
                "measured": self.measured,
                "summary": None if self.summary is None else self.summary.to_dict(),
            }
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the document to ``path`` as strict JSON, atomically (a crash leaves the old
        file or the new one); parent folders are created. Returns the path."""
        atomic_write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def from_dict(cls, data: Any, *, origin: str = "fingerprint") -> Fingerprint:
        """Read a ``calfseg.fingerprint/1`` document (or convert a ``calfseg.area_moments/1``
        one). ``origin`` names the document in errors (the file it came from).

        Raises:
            FingerprintError: not a JSON object, no or an unknown ``format``, the old
                report format, a missing or invalid field.
        """
        if not isinstance(data, dict):
            raise FingerprintError(
                f"{origin}: not a fingerprint (a JSON object is expected, got "
                f"{type(data).__name__}); {_HOW_TO_WRITE}"
            )
        fmt = data.get("format")
        if fmt == MOMENTS_FORMAT:
            return cls(_moments(data, origin))
        if fmt == OLD_REPORT_FORMAT:
            raise FingerprintError(
                f"{origin}: a report of the old format {OLD_REPORT_FORMAT!r}, which this "
                f"calf-seg no longer reads; rewrite it as {FINGERPRINT_FORMAT!r} by running "
                f"`calf analyze MASKS --json {origin}` again on the same masks"
            )
        if fmt != FINGERPRINT_FORMAT:
            what = "no 'format' key" if fmt is None else f"unknown format {fmt!r}"
            raise FingerprintError(
                f"{origin}: not a fingerprint ({what}; expected {FINGERPRINT_FORMAT!r}, or "
                f"{MOMENTS_FORMAT!r}); {_HOW_TO_WRITE}"
            )
        try:
            thresholds = Thresholds.coerce(data.get("thresholds"))
            summary = data.get("summary")
            measured = data.get("measured") or {}
            if not isinstance(measured, dict):
                raise TypeError(f"'measured' must be an object, got {type(measured).__name__}")
            return cls(
                _moments(data, origin),
                thresholds=thresholds,
                measured=measured,
                summary=None if summary is None else AreaSummary.from_dict(summary),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            if isinstance(err, FingerprintError):
                raise
            raise FingerprintError(f"{origin}: invalid fingerprint ({err!r})") from err


_HOW_TO_WRITE = (
    "write one with `calf analyze MASKS --json OUT`, calfseg.analyze(...).save(OUT), or use the "
    "fingerprint.json of a cache written by calf prepare"
)


def _moments(data: dict[str, Any], origin: str) -> AreaMoments:
    """The state fields, validated (finite numbers, whole count, even sums >= 0)."""
    missing = [k for k in STATE_KEYS if k not in data and k != "mean_lo"]
    if missing:
        raise FingerprintError(f"{origin}: invalid fingerprint: lacks the field(s) {missing}")
    try:
        return AreaMoments.from_dict({k: data[k] for k in STATE_KEYS if k in data})
    except (TypeError, ValueError) as err:
        raise FingerprintError(f"{origin}: invalid fingerprint: {err}") from err
