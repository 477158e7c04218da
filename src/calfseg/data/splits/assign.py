"""Which cache rows (slices) go to train, val and test.

The default is a *case-level* split: every case (patient) lies wholly in one part, so no
patient's anatomy is seen in training and again in testing. Cases are dealt out per source
dataset (stratified), with the fractions applied to each dataset's cases separately and
rounded by the largest-remainder (Hamilton) method, so the counts are exact and reproducible.

``mode="slice"`` reproduces the paper's protocol (docs/method.md section 5): about the ``test``
fraction of the slices of EVERY case goes to test (likewise ``val``), so neighbouring
slices of one patient, nearly identical images, sit on both sides of the split. It inflates
test scores and is offered for fidelity only; it warns with :class:`LeakageWarning`.

:func:`paper_slice_splits` re-deals the rows of a finished cache the paper's way (used by a
training run's ``split="paper-slices"``): 10 % of the slices of every (dataset, patient,
modality) to test, the rest to train, no validation.

:func:`cv_splits` re-deals them for patient-level k-fold cross-validation (a training run's
``split="cv"``, ``calf benchmark --folds K``): patients dealt to folds 1..k stratified by
dataset (:func:`cv_row_folds`, :func:`cv_case_folds` for ``folds.csv``), fold ``fold``
test, ceil(15 %) of the other folds' patients val, the rest train.

Every random choice is drawn from a generator seeded by ``(seed, purpose, dataset[, case])``
(names hashed with CRC-32), so a dataset's assignment does not change when other datasets
are added (the k-fold deals, which run on from one dataset to the next, keep each dataset's
order but may shift its folds), and the result does not depend on the order of the rows.
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

from calfseg.errors import DataValueError, OptionError, unknown_choice

SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_FRACTIONS: Mapping[str, float] = MappingProxyType({"train": 0.8, "val": 0.1, "test": 0.1})
SplitMode = Literal["case", "slice"]
SPLIT_MODES: tuple[str, ...] = ("case", "slice")
PAPER_FRACTIONS: Mapping[str, float] = MappingProxyType({"train": 0.9, "val": 0.0, "test": 0.1})
"""The paper's slice split: about 10 % of every patient's slices per modality to test (15 of
a 155-slice volume), no validation set (docs/method.md section 5)."""
_FRACTION_TOLERANCE = 1e-6
CV_VAL_PERCENT = 15
"""Share of the non-test patients of a cross-validation fold that validate: ceil(15 %)."""
CV_FOLD_COLUMNS: tuple[str, ...] = ("case_id", "patient_id", "dataset", "fold")


class LeakageWarning(UserWarning):
    """A split puts slices of one patient in more than one part (train/val/test)."""


def check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    """Validate split fractions and return all three (absent names get 0).

    Names must be among ``train``, ``val``, ``test``; values finite and >= 0, summing to 1
    within 1e-6.
    """
    if not isinstance(fractions, Mapping):
        raise OptionError(
            f"fractions must be a mapping of split name -> fraction, got {fractions!r}"
        )
    unknown = sorted(set(fractions) - set(SPLITS))
    if unknown:
        raise OptionError(f"unknown split name(s) {unknown} in fractions; known: {list(SPLITS)}")
    checked: dict[str, float] = {}
    for name in SPLITS:
        value = fractions.get(name, 0.0)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise OptionError(f"fraction of {name!r} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise OptionError(f"fraction of {name!r} must be finite and >= 0, got {value!r}")
        checked[name] = float(value)
    total = sum(checked.values())
    if abs(total - 1.0) > _FRACTION_TOLERANCE:
        raise OptionError(f"fractions must sum to 1 (within 1e-6), got {total!r}: {checked}")
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
        raise OptionError(f"n must be >= 0, got {n}")
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
    raise unknown_choice("mode", mode, SPLIT_MODES)


def paper_slice_splits(index: Mapping[str, np.ndarray], *, seed: int) -> np.ndarray:
    """The paper's split of a cache's rows: one split name per row, ``"train"`` or ``"test"``.

    Rows are grouped by (dataset, patient, modality): the paper took about 10 % of the
    slices of every patient and modality into its test set (15 of 155 per modality; 5 per
    LGG patient), so every patient is in both parts. Each group's slices are dealt with
    :data:`PAPER_FRACTIONS` by :func:`assign_splits` in slice mode: counts by
    :func:`split_counts` (155 slices -> 140 train, 15 test), the slices chosen by a
    permutation seeded by ``(seed, dataset, group)``. Warns with :class:`LeakageWarning`.

    Args:
        index: the cache's index columns (``SliceCache.index``): ``dataset``, ``case_id``,
            ``modality`` and, when present, ``patient_id`` (the split group; else the case).
        seed: seeds the choice of each group's test slices (non-negative integer).
    """
    for column in ("dataset", "case_id", "modality"):
        if column not in index:
            raise DataValueError(
                f"the cache index has no {column!r} column (columns: {sorted(index)})"
            )
    patients = index.get("patient_id", index["case_id"])
    patients = np.where(np.asarray(patients, dtype=str) == "", index["case_id"], patients)
    # One group per (patient, modality); the dataset is the stratum of assign_splits.
    groups = np.char.add(np.char.add(np.asarray(patients, dtype=str), "\x1f"), index["modality"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakageWarning)  # replaced by the warning below
        splits = assign_splits(
            groups, np.asarray(index["dataset"], dtype=str), fractions=PAPER_FRACTIONS,
            seed=seed, mode="slice",
        )  # fmt: skip
    warnings.warn(
        "the paper's slice-level split: 10 % of every patient's slices per modality go to "
        "test and the rest to train, so every patient is on both sides and test scores are "
        "inflated (as in the paper). The project protocol splits by patient.",
        LeakageWarning,
        stacklevel=2,
    )
    return splits


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
        raise OptionError(f"k must be an integer >= 2, got {k!r}")
    if isinstance(fold, bool) or not isinstance(fold, numbers.Integral) or not 0 <= fold < k:
        raise OptionError(f"fold must be an integer in [0, {k - 1}], got {fold!r}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real):
        raise OptionError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    if not 0 <= val_fraction < 1:
        raise OptionError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    cases, inverse, case_dataset = _case_table(case_ids, datasets)
    if cases.size < k:
        raise DataValueError(
            f"{k}-fold cross-validation needs at least {k} cases, got {cases.size}"
        )
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
        raise OptionError("case_ids and datasets must be one-dimensional sequences")
    if ids.shape != names.shape:
        raise OptionError(
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
        raise OptionError(f"seed must be a non-negative integer, got {seed!r}")


def cv_row_folds(index: Mapping[str, np.ndarray], k: int, *, seed: int) -> np.ndarray:
    """The cross-validation fold (1..k) of every row of a cache index.

    Patients, not slices or cases, are dealt: a patient is ``patient_id`` (the case id where
    that column is absent or empty) within its dataset. Each dataset's patients, in an order
    seeded by ``(seed, dataset)``, are dealt round-robin to folds 1..k, the deal running on
    from one dataset to the next (datasets in sorted order), so fold sizes differ by at most
    one patient overall and within each dataset (stratified by dataset). The result does
    not depend on the order of the rows.

    Args:
        index: the cache's index columns (``SliceCache.index``): ``case_id``, ``dataset``
            and, when present, ``patient_id``.
        k: the number of folds, at least 2 and at most the number of patients.
        seed: seeds the deal (non-negative integer).

    Raises:
        ValueError: a bad ``k`` or ``seed``, a missing column, or fewer patients than ``k``
            (the message names both numbers).
    """
    patient_of_row, patient_fold, _ = _dealt_patients(index, k, seed)
    return patient_fold[patient_of_row]


def cv_splits(index: Mapping[str, np.ndarray], k: int, fold: int, *, seed: int) -> np.ndarray:
    """One split name per row of a cache index for fold ``fold`` (1..k) of k-fold
    patient-level cross-validation (a training run's ``split="cv"``).

    - test: the patients of fold ``fold`` (:func:`cv_row_folds`);
    - val: ``n_val = max(1, ceil(15 % of n_rest))`` of the ``n_rest`` patients of the other
      folds, shared among the datasets in proportion to their patients there (largest
      remainder), each dataset's drawn by a permutation seeded by ``(seed, dataset, fold)``;
    - train: the other folds' remaining patients.

    All slices of a patient go to one part. Over ``fold = 1..k`` every patient is test
    exactly once. The same ``(index, k, seed)`` gives the same folds for every run, so the
    runs of a benchmark (any model, loss or training seed) are tested on the same cases.

    Raises:
        ValueError: as :func:`cv_row_folds`; a fold outside 1..k; fewer than 2 patients
            outside the test fold (no room for both a train and a val part).
    """
    patient_of_row, patient_fold, patient_dataset = _dealt_patients(index, k, seed)
    if isinstance(fold, bool) or not isinstance(fold, numbers.Integral) or not 1 <= fold <= k:
        raise OptionError(f"fold must be an integer in 1..{k}, got {fold!r}")
    rest = np.flatnonzero(patient_fold != fold)
    if rest.size < 2:
        raise DataValueError(
            f"fold {fold} of {k} leaves {rest.size} patient(s) outside its test fold: at least "
            f"2 are needed (one to train, one to validate); use a cache with at least "
            f"{k + 1} patients or fewer folds"
        )
    n_val = max(1, -(-CV_VAL_PERCENT * rest.size // 100))  # ceil in integers: exact
    names = np.unique(patient_dataset[rest])
    sizes = [int((patient_dataset[rest] == name).sum()) for name in names]
    per_patient = np.full(patient_dataset.size, "train", dtype="<U5")
    per_patient[patient_fold == fold] = "test"
    for name, count in zip(names, _apportion(n_val, sizes), strict=True):
        members = rest[patient_dataset[rest] == name]
        order = members[_rng(seed, "cv-val", str(name), str(fold)).permutation(members.size)]
        per_patient[order[:count]] = "val"
    return per_patient[patient_of_row]


def cv_case_folds(index: Mapping[str, np.ndarray], k: int, *, seed: int) -> dict[str, np.ndarray]:
    """One row per case (dataset, case id): the columns of :data:`CV_FOLD_COLUMNS`
    (``case_id``, ``patient_id``, ``dataset``, ``fold``), sorted by dataset then case id;
    the table a benchmark writes to ``OUT/folds.csv``."""
    folds = cv_row_folds(index, k, seed=seed)
    patients = _patient_ids(index)
    cases, inverse, case_dataset = _case_table(index["case_id"], index["dataset"])
    _, first = np.unique(inverse, return_index=True)  # each case's first row
    return {
        "case_id": cases,
        "patient_id": patients[first],
        "dataset": case_dataset,
        "fold": folds[first],
    }


def _patient_ids(index: Mapping[str, np.ndarray]) -> np.ndarray:
    """Each row's patient: ``patient_id``, or the case id where that is absent or empty."""
    for column in ("case_id", "dataset"):
        if column not in index:
            raise DataValueError(
                f"the cache index has no {column!r} column (columns: {sorted(index)})"
            )
    case_ids = np.asarray(index["case_id"], dtype=str)
    if "patient_id" not in index:
        return case_ids
    patients = np.asarray(index["patient_id"], dtype=str)
    return np.where(patients == "", case_ids, patients)


def _dealt_patients(
    index: Mapping[str, np.ndarray], k: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The checked deal of :func:`cv_row_folds`: each row's position among the patients
    ((dataset, patient id) pairs, sorted), each patient's fold (1..k) and dataset."""
    _check_seed(seed)
    _check_k(k)
    _, patient_of_row, patient_dataset = _case_table(
        _patient_ids(index), np.asarray(index["dataset"], dtype=str)
    )
    if patient_dataset.size < k:
        raise DataValueError(
            f"{k}-fold cross-validation needs at least {k} patients; the cache has "
            f"{patient_dataset.size}"
        )
    return patient_of_row, _patient_folds(patient_dataset, k, seed), patient_dataset


def _patient_folds(patient_dataset: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Each patient's fold, 1..k: the round-robin deal of :func:`cv_row_folds`."""
    folds = np.zeros(patient_dataset.size, dtype=np.int64)
    dealt = 0
    for name in np.unique(patient_dataset):
        members = np.flatnonzero(patient_dataset == name)
        order = members[_rng(seed, "cv-folds", str(name)).permutation(members.size)]
        folds[order] = (dealt + np.arange(order.size)) % k + 1
        dealt += order.size
    return folds


def _apportion(total: int, sizes: Sequence[int]) -> list[int]:
    """Share ``total`` items among groups in proportion to ``sizes`` (largest remainder, in
    integers; ties to the earlier group). Needs ``total <= sum(sizes)``."""
    whole = sum(sizes)
    counts = [total * size // whole for size in sizes]
    remainders = [total * size % whole for size in sizes]
    for i in sorted(range(len(sizes)), key=lambda i: -remainders[i])[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
        raise OptionError(f"the number of folds must be an integer >= 2, got {k!r}")
