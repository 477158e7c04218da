"""Vectorised resampling: batches without replacement, per-row skewness and kurtosis."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calfseg.stats import AreaMoments
from calfseg.stats.resampling import batch_indices, row_skew_kurt


@pytest.mark.parametrize(("population", "size"), [(1000, 32), (40, 32), (32, 32)])
def test_batches_are_drawn_without_replacement(population: int, size: int) -> None:
    rows = np.concatenate(list(batch_indices(np.random.default_rng(0), population, size, 50)))
    assert rows.shape == (50, size)
    assert all(np.unique(row).size == size for row in rows)
    assert rows.min() >= 0 and rows.max() < population


def test_row_statistics_match_area_moments() -> None:
    values = np.random.default_rng(2).gamma(2.0, 50.0, size=(20, 17))
    values[3] = 4.0  # a constant row: undefined
    # A spread of a few ulp around 1e6: defined for the eps test of AreaMoments and scipy.
    values[4] = 1e6 + np.arange(17) % 8 * np.spacing(1e6)
    skew, kurt = row_skew_kurt(values)
    for row, s, k in zip(values, skew, kurt, strict=True):
        m = AreaMoments.from_areas(row)
        assert math.isnan(s) == math.isnan(m.skewness())
        if not math.isnan(s):
            assert s == pytest.approx(m.skewness(), rel=1e-9)
            assert k == pytest.approx(m.kurtosis(), rel=1e-9)
