"""Cross-validation in a benchmark (``calf benchmark --folds K``): the checks, and
``OUT/folds.csv``, the fold of every case.

The deal itself is :func:`calfseg.data.splits.assign.cv_splits`, the one every run applies at
training and evaluation time (TrainConfig ``split="cv"``); this module only records it and
refuses a K the cache cannot hold before any run starts.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from calfseg.atomic import atomic_write_text
from calfseg.bench.grid import BenchmarkConfig, fold_numbers
from calfseg.errors import DataValueError, OptionError

FOLDS_CSV = "folds.csv"
CV_PRESETS_REFUSED = ("paper",)
"""Benchmark presets whose protocol fixes the split (the authors' slice-level split)."""


def check_folds(config: BenchmarkConfig) -> None:
    """Raise ValueError, naming the option, for a K the grid cannot take (below 1, or
    cross-validation with a preset that fixes its own split: the authors' protocol) or a
    negative ``cv_seed``."""
    try:
        folds = fold_numbers(config.folds)
    except ValueError as err:
        raise OptionError(f"--folds: {err}") from None
    if folds and config.train_preset in CV_PRESETS_REFUSED:
        raise OptionError(
            f"--folds {config.folds}: the {config.train_preset!r} protocol uses the authors' "
            "slice-level split, not patient-level cross-validation; use --preset project or "
            "default for --folds, or leave --folds out"
        )
    seed = config.cv_seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise OptionError(f"--cv-seed must be an integer >= 0, got {seed!r}")


def fold_table(config: BenchmarkConfig) -> dict[str, np.ndarray] | None:
    """The fold of every case of the cache for ``config.folds`` (the columns of
    :data:`~calfseg.data.splits.assign.CV_FOLD_COLUMNS`, one row per case), after checking that
    every fold fits the cache (K patients at least, train and val patients outside each test
    fold); None without cross-validation.

    Raises:
        ValueError: the cache cannot hold K folds (the message names K and its patients), or
            its index.csv cannot be read (a :class:`~calfseg.data.cache.CacheError`).
    """
    from calfseg.data.cache import INDEX_FILE, read_index
    from calfseg.data.splits.assign import cv_case_folds, cv_splits

    check_folds(config)
    if config.folds < 2:
        return None
    index = read_index(Path(config.cache) / INDEX_FILE)
    try:
        for fold in fold_numbers(config.folds):
            cv_splits(index, config.folds, fold, seed=config.cv_seed)
        return cv_case_folds(index, config.folds, seed=config.cv_seed)
    except ValueError as err:
        raise DataValueError(f"--folds {config.folds} on {config.cache}: {err}") from err


def write_folds(out: Path, table: dict[str, np.ndarray]) -> Path:
    """Write :func:`fold_table`'s ``table`` to ``OUT/folds.csv`` (atomically): one row per
    case, ``case_id, patient_id, dataset, fold``."""
    from calfseg.data.splits.assign import CV_FOLD_COLUMNS

    path = Path(out) / FOLDS_CSV
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(CV_FOLD_COLUMNS)
    writer.writerows(zip(*(table[c].tolist() for c in CV_FOLD_COLUMNS), strict=True))
    atomic_write_text(path, text.getvalue())
    return path
