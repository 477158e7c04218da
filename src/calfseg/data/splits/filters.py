"""Which training slices to keep: filters over the cache's index columns.

Each filter takes index columns (numpy arrays, one entry per cache row) and returns the
selected row numbers, sorted. The functions work on one column; the frozen dataclasses
(:class:`TumourSliceRatio`, :class:`DropEmpty`, :class:`MinArea`,
:class:`KeepEveryKthEmpty`) hold their options, apply to a subset of rows, compose in
order with :func:`apply_filters`, and are written and read as CLI text
(``"ratio=0.25"``, ``"drop-empty"``, ``"min-area=20"``, ``"every-kth-empty=4"``).

The ratio filter is the paper's (docs/method.md section 5); see :func:`ratio_counts`.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from calfseg.errors import DataValueError, OptionError, did_you_mean

Index = Mapping[str, np.ndarray]


def ratio_counts(n_tumour: int, n_empty: int, r: float) -> tuple[int, int]:
    """How many tumour and non-tumour slices the paper's ratio filter keeps.

    With ``N = n_tumour + n_empty`` rows (docs/method.md section 5, floats as in the authors'
    code, ``int`` truncating)::

        n_seg = int(N * r);  n_non = int(N * (1 - r))
        if n_seg > n_tumour:           # too few tumour slices for N * r
            n_seg = n_tumour           # keep them all ...
            n_non = int((1 - r) / r * n_seg)       # ... and as many others as fit ratio r
        elif n_non > n_empty:          # too few non-tumour slices
            n_non = n_empty
            n_seg = int(n_non * r / (1 - r))

    Reading of the paper's text: in the first branch "keep all tumour slices and
    n_non = int((1-r)/r * n_seg)", ``n_seg`` is the number kept, ``n_tumour``. Read with the
    first ``n_seg = int(N r)`` instead, ``n_non`` would stay about ``N (1 - r)``, the ratio
    would not be reached and ``n_non`` could exceed ``n_empty``; likewise in the second
    branch. Both branches therefore keep a set whose tumour fraction is ``r`` (up to the
    truncation), and the counts never exceed what exists. At most one branch can apply.

    Returns:
        ``(n_seg, n_non)``.
    """
    _check_ratio(r)
    if n_tumour < 0 or n_empty < 0:
        raise OptionError(f"counts must be >= 0, got {n_tumour} tumour and {n_empty} empty")
    n = n_tumour + n_empty
    n_seg = int(n * r)
    n_non = int(n * (1 - r))
    if n_seg > n_tumour:
        n_seg = n_tumour
        n_non = int((1 - r) / r * n_seg)
    elif n_non > n_empty:
        n_non = n_empty
        n_seg = int(n_non * r / (1 - r))
    return n_seg, n_non


def tumour_ratio(has_tumour: np.ndarray, r: float, *, seed: int = 0) -> np.ndarray:
    """Subsample rows so that a fraction ``r`` of them contain tumour (the paper's filter).

    The counts come from :func:`ratio_counts`; which tumour and which non-tumour rows are
    kept is drawn uniformly without replacement by ``numpy.random.default_rng(seed)``.
    An empty input gives an empty result; a non-empty input with no tumour row, or no
    non-tumour row, cannot be brought to ``0 < r < 1`` and is an error.

    Returns:
        Sorted int64 row positions into ``has_tumour``.
    """
    positive = _binary(has_tumour, "has_tumour")
    _check_ratio(r)
    if positive.size == 0:
        return np.empty(0, dtype=np.int64)
    tumour = np.flatnonzero(positive)
    empty = np.flatnonzero(~positive)
    if tumour.size == 0 or empty.size == 0:
        raise DataValueError(
            f"ratio={r:g} needs both tumour and non-tumour slices; got {tumour.size} tumour and "
            f"{empty.size} non-tumour slices"
        )
    n_seg, n_non = ratio_counts(tumour.size, empty.size, r)
    rng = np.random.default_rng(seed)
    kept = np.concatenate(
        [rng.choice(tumour, n_seg, replace=False), rng.choice(empty, n_non, replace=False)]
    )
    return np.sort(kept).astype(np.int64)


def drop_empty(has_tumour: np.ndarray) -> np.ndarray:
    """Rows that contain tumour."""
    return np.flatnonzero(_binary(has_tumour, "has_tumour")).astype(np.int64)


def min_area(area: np.ndarray, minimum: float) -> np.ndarray:
    """Drop slices whose lesion is smaller than ``minimum`` (``0 < area < minimum``).

    Empty slices (area 0) are kept: this filter removes tiny, often noisy lesions, and
    :func:`drop_empty` removes empty slices; use both to keep only ``area >= minimum``.
    """
    values = np.asarray(area, dtype=np.float64)
    if values.ndim != 1:
        raise OptionError(f"area must be one-dimensional, got shape {values.shape}")
    _check_number(minimum, "minimum area", low=0.0)
    return np.flatnonzero((values == 0) | (values >= minimum)).astype(np.int64)


def keep_every_kth_empty(has_tumour: np.ndarray, k: int) -> np.ndarray:
    """Every tumour row, and the 1st, (k+1)-th, (2k+1)-th ... non-tumour row in row order.

    Deterministic thinning of empty slices: ``k = 1`` keeps everything, ``k = 4`` about a
    quarter of the empty slices.
    """
    positive = _binary(has_tumour, "has_tumour")
    _check_integer(k, "k", low=1)
    empty = np.flatnonzero(~positive)
    keep = positive.copy()
    keep[empty[::k]] = True
    return np.flatnonzero(keep).astype(np.int64)


class Filter(ABC):
    """A selection of cache rows; subclasses are frozen dataclasses holding the options."""

    @abstractmethod
    def select(self, index: Index, rows: np.ndarray) -> np.ndarray:
        """The subset of ``rows`` (sorted cache row numbers) this filter keeps, sorted."""

    @property
    @abstractmethod
    def spec(self) -> str:
        """The filter as CLI text, which :func:`parse_filter` reads back."""

    def __str__(self) -> str:
        return self.spec


@dataclass(frozen=True)
class TumourSliceRatio(Filter):
    """The paper's ratio filter (:func:`tumour_ratio`) over the rows it is given."""

    r: float
    seed: int = 0

    def __post_init__(self) -> None:
        _check_ratio(self.r)
        _check_integer(self.seed, "seed", low=0)

    def select(self, index: Index, rows: np.ndarray) -> np.ndarray:
        return rows[tumour_ratio(_column(index, "has_tumour")[rows], self.r, seed=self.seed)]

    @property
    def spec(self) -> str:
        return f"ratio={_text(self.r)}"


@dataclass(frozen=True)
class DropEmpty(Filter):
    """Keep only slices that contain tumour (:func:`drop_empty`)."""

    def select(self, index: Index, rows: np.ndarray) -> np.ndarray:
        return rows[drop_empty(_column(index, "has_tumour")[rows])]

    @property
    def spec(self) -> str:
        return "drop-empty"


@dataclass(frozen=True)
class MinArea(Filter):
    """Drop slices with ``0 < area < pixels`` (:func:`min_area`); empty slices stay."""

    pixels: float

    def __post_init__(self) -> None:
        _check_number(self.pixels, "pixels", low=0.0)

    def select(self, index: Index, rows: np.ndarray) -> np.ndarray:
        return rows[min_area(_column(index, "area")[rows], self.pixels)]

    @property
    def spec(self) -> str:
        return f"min-area={_text(self.pixels)}"


@dataclass(frozen=True)
class KeepEveryKthEmpty(Filter):
    """Keep all tumour slices and every k-th empty one (:func:`keep_every_kth_empty`)."""

    k: int

    def __post_init__(self) -> None:
        _check_integer(self.k, "k", low=1)

    def select(self, index: Index, rows: np.ndarray) -> np.ndarray:
        return rows[keep_every_kth_empty(_column(index, "has_tumour")[rows], self.k)]

    @property
    def spec(self) -> str:
        return f"every-kth-empty={self.k}"


def apply_filters(
    index: Index, filters: Sequence[Filter], rows: np.ndarray | None = None
) -> np.ndarray:
    """Apply ``filters`` in order, starting from ``rows`` (default: every row of ``index``).

    Returns sorted int64 cache row numbers.
    """
    if rows is None:
        selected = np.arange(_n_rows(index), dtype=np.int64)
    else:
        selected = np.sort(np.asarray(rows, dtype=np.int64))
    for f in filters:
        if not isinstance(f, Filter):
            raise TypeError(f"filters must be Filter objects (see parse_filter), got {f!r}")
        selected = f.select(index, selected)
    return selected


FILTER_SYNTAX = ("ratio=R (0 < R < 1)", "drop-empty", "min-area=PIXELS", "every-kth-empty=K")


def parse_filter(text: str, *, seed: int = 0) -> Filter:
    """Read a filter from CLI text: ``ratio=0.25``, ``drop-empty``, ``min-area=20``,
    ``every-kth-empty=4``. ``seed`` seeds the ratio filter's random choice.

    Raises:
        OptionError: the text is not a filter or its value is bad (``calf``: exit 2).
    """
    name, sep, value = text.strip().partition("=")
    name = name.strip().lower().replace("_", "-")
    value = value.strip()
    if name == "drop-empty":
        if sep:
            raise OptionError(f"filter 'drop-empty' takes no value, got {text!r}")
        return DropEmpty()
    makers = {
        "ratio": lambda v: TumourSliceRatio(float(v), seed),
        "min-area": lambda v: MinArea(float(v)),
        "every-kth-empty": lambda v: KeepEveryKthEmpty(int(v)),
    }
    if name not in makers:
        raise OptionError(
            f"unknown filter {text!r}{did_you_mean(name, makers)}; expected one of: "
            f"{', '.join(FILTER_SYNTAX)}"
        )
    if not value:
        raise OptionError(f"filter {name!r} needs a value, e.g. {name}=... (got {text!r})")
    try:
        return makers[name](value)
    except ValueError as err:
        raise OptionError(f"bad filter {text!r}: {err}") from None


def _text(x: float) -> str:
    """Short text for a number (``0.25``, ``20``) that reads back exactly."""
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))


def _column(index: Index, name: str) -> np.ndarray:
    if name not in index:
        raise KeyError(f"the index has no column {name!r}; columns: {sorted(index)}")
    return np.asarray(index[name])


def _n_rows(index: Index) -> int:
    for column in ("row", "has_tumour", "area"):
        if column in index:
            return len(index[column])
    if not index:
        raise DataValueError("the index has no columns")
    return len(next(iter(index.values())))


def _binary(values: np.ndarray, name: str) -> np.ndarray:
    """A 1D 0/1 (or bool) array as bool; anything else is an error."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise OptionError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.dtype != np.bool_:
        if array.size and not np.isin(array, (0, 1)).all():
            raise DataValueError(f"{name} must hold 0/1 values, got {np.unique(array)[:5]}")
        array = array.astype(bool)
    return array


def _check_ratio(r: float) -> None:
    _check_number(r, "ratio r")
    if not 0 < r < 1:
        raise OptionError(
            f"ratio r must be strictly between 0 and 1, got {r!r} (for tumour slices only use "
            "drop-empty)"
        )


def _check_number(value: float, name: str, low: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise OptionError(f"{name} must be a finite number, got {value!r}")
    if low is not None and value < low:
        raise OptionError(f"{name} must be >= {low:g}, got {value!r}")


def _check_integer(value: int, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise OptionError(f"{name} must be an integer >= {low}, got {value!r}")
