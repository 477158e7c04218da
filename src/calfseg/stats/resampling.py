"""Vectorised resampling of an area set: mini-batches drawn without replacement, bootstrap
resamples with replacement, and the skewness and excess kurtosis of every row at once.

The per-row statistics are the same as :class:`calfseg.stats.AreaMoments` (biased g1 and
g2, scipy's defaults; NaN where the variance is zero relative to the mean), computed on a
``(rows, size)`` array so that a thousand batches cost a few numpy passes, not a thousand
Python loops. Memory is bounded by working through the rows in chunks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from calfseg.errors import DataValueError, OptionError
from calfseg.stats.moments import ZERO_VARIANCE_EPS

_CHUNK_ELEMENTS = 1 << 21  # values per chunk of rows (16 MiB of float64)
# Draw-and-redraw is used for batches while a batch drawn with replacement has no
# repeated index with at least this probability; otherwise rows of random keys are ranked.
_MIN_ACCEPTANCE = 0.05


def row_skew_kurt(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skewness g1 and excess kurtosis g2 of each row of a 2D array (NaN where undefined)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise OptionError(f"values must be 2D (rows, size), got shape {values.shape}")
    if values.shape[1] == 0:
        raise OptionError("each row needs at least one value")
    mean = values.mean(axis=1, keepdims=True)
    centred = values - mean
    centred -= centred.mean(axis=1, keepdims=True)  # corrected two-pass, as AreaMoments
    sq = centred * centred
    m2 = sq.mean(axis=1)
    m3 = (sq * centred).mean(axis=1)
    m4 = (sq * sq).mean(axis=1)
    undefined = m2 <= (ZERO_VARIANCE_EPS * mean[:, 0]) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = m3 / m2**1.5
        kurt = m4 / (m2 * m2) - 3.0
    skew[undefined] = np.nan
    kurt[undefined] = np.nan
    return skew, kurt


def batch_indices(
    rng: np.random.Generator, population: int, batch_size: int, batches: int
) -> Iterator[np.ndarray]:
    """Index arrays ``(rows, batch_size)``, ``batches`` rows in all, each row drawn without
    replacement from ``range(population)`` (rows are independent of one another)."""
    if not 1 <= batch_size <= population:
        raise OptionError(
            f"batch_size must be between 1 and the number of areas ({population}), got {batch_size}"
        )
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(batch_size, population))
    log_acceptance = sum(math.log1p(-i / population) for i in range(batch_size))
    redraw = log_acceptance >= math.log(_MIN_ACCEPTANCE)
    for start in range(0, batches, rows_per_chunk):
        rows = min(rows_per_chunk, batches - start)
        if redraw:
            yield _draw_distinct(rng, population, batch_size, rows)
        else:
            keys = rng.random((rows, population))
            yield np.argpartition(keys, batch_size - 1, axis=1)[:, :batch_size]


def _draw_distinct(
    rng: np.random.Generator, population: int, batch_size: int, rows: int
) -> np.ndarray:
    """Draw with replacement, then redraw the rows that repeat an index (rejection)."""
    idx = rng.integers(0, population, size=(rows, batch_size))
    while True:
        ordered = np.sort(idx, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not repeated.any():
            return idx
        idx[repeated] = rng.integers(0, population, size=(int(repeated.sum()), batch_size))


def bootstrap_indices(
    rng: np.random.Generator, population: int, resamples: int
) -> Iterator[np.ndarray]:
    """Index arrays ``(rows, population)``, ``resamples`` rows in all, drawn with
    replacement (the ordinary nonparametric bootstrap)."""
    if population < 1:
        raise DataValueError("the bootstrap needs at least one area")
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // population)
    for start in range(0, resamples, rows_per_chunk):
        rows = min(rows_per_chunk, resamples - start)
        yield rng.integers(0, population, size=(rows, population))


def resampled_skew_kurt(
    areas: np.ndarray, index_chunks: Iterator[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Skewness and kurtosis of ``areas[rows]`` for every row of every index chunk."""
    skews, kurts = [], []
    for idx in index_chunks:
        skew, kurt = row_skew_kurt(areas[idx])
        skews.append(skew)
        kurts.append(kurt)
    if not skews:
        return np.empty(0), np.empty(0)
    return np.concatenate(skews), np.concatenate(kurts)
