"""CALF's decision rule: from the skewness S and excess kurtosis K of the area distribution
to one of six branch losses (docs/method.md section 3; arXiv 2504.04458, the authors' code).

The table is data: an ordered list of :class:`Row` built from named :class:`Thresholds`; the
first row whose skewness interval (and kurtosis bound, where it has one) contains (S, K)
fires, and ``bce_dice`` is the fallback, which also catches S = 0 and NaN.

======  ================================  ==========
order   condition (default thresholds)    branch
======  ================================  ==========
1       S <= -1                           fisher
2       -1 < S <= -0.5                    logit
3       -0.5 < S < 0                      arcsine
4       S >= 1                            log10
5       0.5 <= S < 1                      ln
6       0 < S <= 0.5 and K < 0            log10
7       anything else (S = 0, NaN, ...)   bce_dice
======  ================================  ==========

Plain Python, no torch: the rule can be used, tested and printed anywhere.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from calfseg.errors import OptionError

Branch = Literal["fisher", "logit", "arcsine", "log10", "ln", "bce_dice"]
BRANCHES: tuple[str, ...] = ("fisher", "logit", "arcsine", "log10", "ln", "bce_dice")


@dataclass(frozen=True)
class Thresholds:
    """The cut points of the table, named after the row they bound. Must be ordered
    ``fisher <= logit <= centre <= ln <= log10``."""

    fisher: float = -1.0  # S <= fisher
    logit: float = -0.5  # fisher < S <= logit
    centre: float = 0.0  # logit < S < centre -> arcsine; S = centre -> fallback
    ln: float = 0.5  # ln <= S < log10; centre < S <= ln uses the kurtosis
    log10: float = 1.0  # S >= log10
    kurtosis: float = 0.0  # centre < S <= ln and K < kurtosis -> log10

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(value)
            ):
                raise OptionError(f"threshold {f.name!r} must be a finite number, got {value!r}")
            object.__setattr__(self, f.name, float(value))  # numpy scalars, ints -> float
        order = [self.fisher, self.logit, self.centre, self.ln, self.log10]
        if order != sorted(order):
            raise OptionError(
                "thresholds must satisfy fisher <= logit <= centre <= ln <= log10, got "
                f"{self.fisher}, {self.logit}, {self.centre}, {self.ln}, {self.log10}"
            )

    @classmethod
    def coerce(cls, value: Thresholds | Mapping[str, float] | None) -> Thresholds:
        """Accept a Thresholds, a dict of overrides (unknown names are an error) or None."""
        if value is None:
            return cls()
        if isinstance(value, Thresholds):
            return value
        if not isinstance(value, Mapping):
            raise OptionError(
                f"thresholds must be a Thresholds, a dict of overrides or None, got {value!r}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise OptionError(f"unknown threshold(s) {unknown}; known: {sorted(known)}")
        return cls(**value)


@dataclass(frozen=True)
class Row:
    """One row: ``lo <(=) S <(=) hi`` and, where ``k_below`` is set, ``K < k_below``."""

    name: str
    branch: Branch
    lo: float = -math.inf
    lo_inclusive: bool = False
    hi: float = math.inf
    hi_inclusive: bool = False
    k_below: float | None = None

    def matches(self, s: float, k: float) -> bool:
        # An infinite bound means "no bound": S = -inf is "S <= -1", S = +inf is "S >= 1".
        # NaN fails every comparison that remains, so it still reaches the fallback.
        above = self.lo == -math.inf or (s >= self.lo if self.lo_inclusive else s > self.lo)
        below = self.hi == math.inf or (s <= self.hi if self.hi_inclusive else s < self.hi)
        return above and below and (self.k_below is None or k < self.k_below)

    @property
    def condition(self) -> str:
        """The row as text, e.g. ``-1 < S <= -0.5`` or ``0 < S <= 0.5 and K < 0``."""
        parts = []
        if self.lo > -math.inf:
            parts.append(f"{_num(self.lo)} {'<=' if self.lo_inclusive else '<'} ")
        parts.append("S")
        if self.hi < math.inf:
            parts.append(f" {'<=' if self.hi_inclusive else '<'} {_num(self.hi)}")
        text = "".join(parts)
        if self.lo > -math.inf and self.hi == math.inf:  # "S >= 1" reads better than "1 <= S"
            text = f"S {'>=' if self.lo_inclusive else '>'} {_num(self.lo)}"
        if self.k_below is not None:
            text += f" and K < {_num(self.k_below)}"
        return text


FALLBACK_CONDITION = "otherwise"


def decision_table(thresholds: Thresholds | Mapping[str, float] | None = None) -> tuple[Row, ...]:
    """The ordered rows of the rule for these thresholds (the fallback is not a row)."""
    return _table_of(Thresholds.coerce(thresholds))


@functools.lru_cache(maxsize=64)
def _table_of(t: Thresholds) -> tuple[Row, ...]:
    # Cached: per-batch CALF applies the rule at every step, and building the rows (with
    # their condition text) cost more than the rule itself. Rows are frozen, so sharing is safe.
    return (
        Row("strong_left_skew", "fisher", hi=t.fisher, hi_inclusive=True),
        Row("moderate_left_skew", "logit", lo=t.fisher, hi=t.logit, hi_inclusive=True),
        Row("mild_left_skew", "arcsine", lo=t.logit, hi=t.centre),
        Row("strong_right_skew", "log10", lo=t.log10, lo_inclusive=True),
        Row("moderate_right_skew", "ln", lo=t.ln, lo_inclusive=True, hi=t.log10),
        Row(
            "near_symmetric_platykurtic",
            "log10",
            lo=t.centre,
            hi=t.ln,
            hi_inclusive=True,
            k_below=t.kurtosis,
        ),
    )


@dataclass(frozen=True)
class Selection:
    """What the rule picked, and from what."""

    branch: Branch
    condition: str  # the row that fired, as text
    skewness: float
    kurtosis: float
    count: int | None = None  # how many areas the statistics came from, where known

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_DEFAULT_TABLE = decision_table()


def select_branch(
    skewness: float,
    kurtosis: float,
    thresholds: Thresholds | Mapping[str, float] | None = None,
    *,
    count: int | None = None,
) -> Selection:
    """Apply the decision rule to (S, K); NaN anywhere relevant falls to ``bce_dice``."""
    s, k = float(skewness), float(kurtosis)
    table = _DEFAULT_TABLE if thresholds is None else decision_table(thresholds)
    for row in table:
        if row.matches(s, k):
            return Selection(row.branch, row.condition, s, k, count)
    return Selection("bce_dice", FALLBACK_CONDITION, s, k, count)


def _num(x: float) -> str:
    """Short text for a threshold (``-1``, ``0.5``), exact where ``:g`` would round it."""
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))
