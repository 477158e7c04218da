"""Which cache rows (slices) go to train, val and test.

The default is a *case-level* split: every case (patient) lies wholly in one part, so no
patient's anatomy is seen in training and again in testing. Cases are dealt out per source
dataset (stratified), with the fractions applied to each dataset's cases separately and
rounded by the largest-remainder (Hamilton) method, so the counts are exact and reproducible.

``mode="slice"`` reproduces the paper's protocol (METHOD.md section 5): about the ``test``
fraction of the slices of EVERY case goes to test (likewise ``val``), so neighbouring
slices of one patient, nearly identical images, sit on both sides of the split. It inflates
test scores and is offered for fidelity only; it warns with :class:`LeakageWarning`.

Every random choice is drawn from a generator seeded by ``(seed, purpose, dataset[, case])``
(names hashed with CRC-32), so a dataset's assignment does not change when other datasets
are added, and the result does not depend on the order of the rows.
"""

from __future__ import annotations

import math
import numbers
import warnings
import zlib
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Literal

import numpy as np

SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_FRACTIONS: Mapping[str, float] = MappingProxyType({"train": 0.8, "val": 0.1, "test": 0.1})
SplitMode = Literal["case", "slice"]
SPLIT_MODES: tuple[str, ...] = ("case", "slice")
_FRACTION_TOLERANCE = 1e-6


class LeakageWarning(UserWarning):
    """A split puts slices of one patient in more than one part (train/val/test)."""


def check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    """Validate split fractions and return all three (absent names get 0).

    Names must be among ``train``, ``val``, ``test``; values finite and >= 0, summing to 1
    within 1e-6.
    """
    if not isinstance(fractions, Mapping):
        raise ValueError(
            f"fractions must be a mapping of split name -> fraction, got {fractions!r}"
        )
    unknown = sorted(set(fractions) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split name(s) {unknown} in fractions; known: {list(SPLITS)}")
    checked: dict[str, float] = {}
    for name in SPLITS:
        value = fractions.get(name, 0.0)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"fraction of {name!r} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"fraction of {name!r} must be finite and >= 0, got {value!r}")
        checked[name] = float(value)
    total = sum(checked.values())
    if abs(total - 1.0) > _FRACTION_TOLERANCE:
        raise ValueError(f"fractions must sum to 1 (within 1e-6), got {total!r}: {checked}")
    return checked


def split_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Share ``n`` items among the splits: exact counts summing to ``n``.

    Largest remainder: each split gets ``floor(n * f)``, the items left over go to the
    largest fractional parts (ties: larger fraction, then train, val, test). Then, when
    ``n`` is at least the number of splits with a positive fraction, each such split that
    got nothing takes one item from the largest part, so e.g. 3 cases at 0.8/0.1/0.1 give
    1/1/1 rather than 3/0/0.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    f = check_fractions(fractions)
    quotas = {name: n * f[name] for name in SPLITS}
    counts = {name: math.floor(quotas[name]) for name in SPLITS}
    left = n - sum(counts.values())
    by_remainder = sorted(SPLITS, key=lambda s: (-(quotas[s] - counts[s]), -f[s], SPLITS.index(s)))
    for name in by_remainder[:left]:
        counts[name] += 1
    positive = [name for name in SPLITS if f[name] > 0]
    if n >= len(positive):
        for name in positive:
            if counts[name] == 0:
                donor = max(SPLITS, key=lambda s: (counts[s], -SPLITS.index(s)))
                counts[donor] -= 1
                counts[name] += 1
    return counts


def assign_splits(
    case_ids: Sequence[str] | np.ndarray,
    datasets: Sequence[str] | np.ndarray,
    *,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    mode: SplitMode = "case",
) -> np.ndarray:
    """One split name (``"train"``, ``"val"`` or ``"test"``) per row.

    Args:
        case_ids: the case of each row (rows are slices; a case id repeats).
        datasets: the source dataset of each row. A case is a (dataset, case id) pair: the
            same id in two datasets names two cases.
        fractions: share of each split; see :func:`check_fractions`.
        seed: seeds every random choice (non-negative integer).
        mode: ``"case"`` (default) puts each case wholly into one split, stratified by
            dataset, counts by :func:`split_counts` over each dataset's cases; ``"slice"``
            splits the slices of every case with those counts (the paper's leaky protocol,
            warns with :class:`LeakageWarning`). Slice mode takes a case's rows in the order
            given, so it depends on that order; case mode does not.

    Returns:
        A string array (dtype ``<U5``) of the rows' split names.
    """
    f = check_fractions(fractions)
    _check_seed(seed)
    cases, inverse, case_dataset = _case_table(case_ids, datasets)
    if mode == "case":
        per_case = np.empty(cases.size, dtype="<U5")
        for name in np.unique(case_dataset):
            members = np.flatnonzero(case_dataset == name)
            order = members[_rng(seed, "case-split", str(name)).permutation(members.size)]
            per_case[order] = _deal(split_counts(members.size, f))
        return per_case[inverse]
    if mode == "slice":
        warnings.warn(
            "mode='slice' splits the slices of every case among train/val/test: slices of "
            "one patient end up on both sides and test scores are inflated (the paper's "
            "protocol). Use mode='case' for a patient-level split.",
            LeakageWarning,
            stacklevel=2,
        )
        out = np.empty(inverse.size, dtype="<U5")
        rows_by_case = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=cases.size))
        start = 0
        for i, stop in enumerate(bounds):
            rows = rows_by_case[start:stop]
            rng = _rng(seed, "slice-split", str(case_dataset[i]), str(cases[i]))
            out[rows[rng.permutation(rows.size)]] = _deal(split_counts(rows.size, f))
            start = stop
        return out
    raise ValueError(f"mode must be one of {SPLIT_MODES}, got {mode!r}")


def kfold_splits(
    case_ids: Sequence[str] | np.ndarray,
    datasets: Sequence[str] | np.ndarray,
    k: int,
    fold: int,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
) -> np.ndarray:
    """Case-level k-fold cross-validation: one split name per row for fold ``fold`` of ``k``.

    Each dataset's cases, in a seeded order, are dealt round-robin to the k folds (the deal
    continues from one dataset to the next, so fold sizes differ by at most one overall and
    within each dataset). Fold ``fold`` is test; of each dataset's remaining cases a
    ``val_fraction`` share (largest remainder, at least one where there are two or more) is
    val and the rest train. Over ``fold = 0 .. k-1`` the test parts partition the cases.
    """
    _check_seed(seed)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    if isinstance(fold, bool) or not isinstance(fold, numbers.Integral) or not 0 <= fold < k:
        raise ValueError(f"fold must be an integer in [0, {k - 1}], got {fold!r}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real):
        raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    cases, inverse, case_dataset = _case_table(case_ids, datasets)
    if cases.size < k:
        raise ValueError(f"{k}-fold cross-validation needs at least {k} cases, got {cases.size}")
    rest = {"train": 1.0 - float(val_fraction), "val": float(val_fraction)}
    per_case = np.empty(cases.size, dtype="<U5")
    dealt = 0
    for name in np.unique(case_dataset):
        members = np.flatnonzero(case_dataset == name)
        order = members[_rng(seed, "kfold", str(name)).permutation(members.size)]
        folds = (dealt + np.arange(order.size)) % k
        dealt += order.size
        per_case[order[folds == fold]] = "test"
        remaining = order[folds != fold]
        remaining = remaining[
            _rng(seed, "kfold-val", str(name), str(fold)).permutation(remaining.size)
        ]
        per_case[remaining] = _deal(split_counts(remaining.size, rest))
    return per_case[inverse]


def _deal(counts: Mapping[str, int]) -> np.ndarray:
    """``counts["train"]`` times "train", then val, then test, as one array."""
    return np.repeat(np.array(SPLITS, dtype="<U5"), [counts[name] for name in SPLITS])


def _case_table(
    case_ids: Sequence[str] | np.ndarray, datasets: Sequence[str] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cases, as (dataset, case id) pairs sorted by dataset then id: each case's id, each
    row's position among the cases, and each case's dataset."""
    ids = np.asarray(case_ids, dtype=str)
    names = np.asarray(datasets, dtype=str)
    if ids.ndim != 1 or names.ndim != 1:
        raise ValueError("case_ids and datasets must be one-dimensional sequences")
    if ids.shape != names.shape:
        raise ValueError(
            f"case_ids and datasets must have one entry per row, got {ids.size} and {names.size}"
        )
    # One key per (dataset, case id); U+001F (unit separator) cannot clash with a name's text
    # in a way that merges two pairs unless a dataset name itself contains it.
    keys = np.char.add(np.char.add(names, "\x1f"), ids)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return ids[first], inverse.reshape(-1), names[first]


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator for one purpose: seeded by ``seed`` and the CRC-32 of each key."""
    words = [int(seed)] + [zlib.crc32(key.encode("utf-8", "surrogatepass")) for key in keys]
    return np.random.default_rng(np.random.SeedSequence(words))


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
