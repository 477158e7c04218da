"""Case-level, slice-level and k-fold splits: no leakage, exact counts, stratification,
determinism."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calfseg.data.splits.assign import (
    LeakageWarning,
    assign_splits,
    check_fractions,
    cv_case_folds,
    cv_row_folds,
    cv_splits,
    kfold_splits,
    paper_slice_splits,
    split_counts,
)


def _rows(cases_per_dataset: dict[str, int], slices: int = 3) -> tuple[list[str], list[str]]:
    case_ids, datasets = [], []
    for name, n in cases_per_dataset.items():
        for i in range(n):
            case_ids += [f"{name}-{i:03d}"] * slices
            datasets += [name] * slices
    return case_ids, datasets


def _parts_of_each_case(case_ids, datasets, splits) -> dict[tuple[str, str], set[str]]:
    parts: dict[tuple[str, str], set[str]] = {}
    for case, dataset, split in zip(case_ids, datasets, splits, strict=True):
        parts.setdefault((dataset, case), set()).add(str(split))
    return parts


# -- counts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, (0, 0, 0)),
        (1, (1, 0, 0)),
        (2, (2, 0, 0)),  # fewer cases than positive splits: no minimum
        (3, (1, 1, 1)),  # every positive split gets one
        (7, (5, 1, 1)),  # 5.6/0.7/0.7: the two left over go to the larger remainders
        (10, (8, 1, 1)),
        (15, (12, 2, 1)),  # 12/1.5/1.5: the tie goes to val
        (611, (489, 61, 61)),
    ],
)
def test_split_counts_largest_remainder_with_a_minimum_of_one(n, expected):
    counts = split_counts(n, {"train": 0.8, "val": 0.1, "test": 0.1})
    assert (counts["train"], counts["val"], counts["test"]) == expected
    assert sum(counts.values()) == n


def test_split_counts_leave_a_zero_fraction_empty():
    assert split_counts(5, {"train": 0.9, "test": 0.1}) == {"train": 4, "val": 0, "test": 1}


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({"train": 0.8, "valid": 0.2}, "unknown split name"),
        ({"train": 1.2, "test": -0.2}, ">= 0"),
        ({"train": 0.8, "test": 0.1}, "sum to 1"),
        ({"train": float("nan"), "test": 1.0}, "finite"),
        ({"train": "0.9", "test": 0.1}, "must be a number"),
        ([0.8, 0.1, 0.1], "mapping"),
    ],
)
def test_bad_fractions_are_refused_with_a_clear_message(fractions, message):
    with pytest.raises(ValueError, match=message):
        check_fractions(fractions)
    case_ids, datasets = _rows({"a": 5})
    with pytest.raises(ValueError, match=message):
        assign_splits(case_ids, datasets, fractions=fractions)


def test_fractions_within_1e_6_of_one_are_accepted():
    assert check_fractions({"train": 0.7999999999999999, "val": 0.1, "test": 0.1})["val"] == 0.1


# -- case mode ---------------------------------------------------------------------------------


def test_case_split_is_stratified_by_dataset_with_exact_counts():
    case_ids, datasets = _rows({"upenn": 20, "brats": 10, "lgg": 3})
    splits = assign_splits(case_ids, datasets, seed=0)
    assert splits.dtype.kind == "U" and splits.shape == (len(case_ids),)
    parts = _parts_of_each_case(case_ids, datasets, splits)
    for dataset, n in {"upenn": 20, "brats": 10, "lgg": 3}.items():
        got = [next(iter(p)) for (d, _), p in parts.items() if d == dataset]
        assert len(got) == n
        counts = {name: got.count(name) for name in ("train", "val", "test")}
        assert counts == split_counts(n, {"train": 0.8, "val": 0.1, "test": 0.1})


cases_and_datasets = st.dictionaries(
    keys=st.text(alphabet="abcXYZ019-_", min_size=1, max_size=6),
    values=st.sampled_from(["ds1", "ds2", "ds3"]),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(
    mapping=cases_and_datasets,
    slices=st.lists(st.integers(1, 4), min_size=40, max_size=40),
    seed=st.integers(0, 2**32 - 1),
    perm_seed=st.integers(0, 1000),
)
def test_case_split_never_puts_a_case_in_two_parts_and_ignores_row_order(
    mapping, slices, seed, perm_seed
):
    case_ids, datasets = [], []
    # slices holds a count for each of up to 40 cases; mapping may have fewer: zip stops there
    for (case, dataset), k in zip(mapping.items(), slices, strict=False):
        case_ids += [case] * k
        datasets += [dataset] * k
    splits = assign_splits(case_ids, datasets, seed=seed)
    parts = _parts_of_each_case(case_ids, datasets, splits)
    assert all(len(p) == 1 for p in parts.values())
    # exact counts per dataset
    for dataset in set(datasets):
        got = [next(iter(p)) for (d, _), p in parts.items() if d == dataset]
        want = split_counts(len(got), {"train": 0.8, "val": 0.1, "test": 0.1})
        assert {name: got.count(name) for name in want} == want
    # the same rows in another order get the same split per row
    order = np.random.default_rng(perm_seed).permutation(len(case_ids))
    shuffled = assign_splits([case_ids[i] for i in order], [datasets[i] for i in order], seed=seed)
    np.testing.assert_array_equal(shuffled, splits[order])


def test_case_split_is_deterministic_under_its_seed_and_changes_with_it():
    case_ids, datasets = _rows({"a": 50, "b": 30})
    first = assign_splits(case_ids, datasets, seed=7)
    np.testing.assert_array_equal(first, assign_splits(case_ids, datasets, seed=7))
    assert not np.array_equal(first, assign_splits(case_ids, datasets, seed=8))


def test_adding_a_dataset_leaves_the_others_assignment_unchanged():
    case_ids, datasets = _rows({"a": 30})
    alone = assign_splits(case_ids, datasets, seed=3)
    more_ids, more_datasets = _rows({"a": 30, "b": 12})
    together = assign_splits(more_ids, more_datasets, seed=3)
    np.testing.assert_array_equal(together[: len(case_ids)], alone)


def test_the_same_case_id_in_two_datasets_is_two_cases():
    case_ids = ["001"] * 2 + ["001"] * 2 + ["002"] * 2
    datasets = ["a"] * 2 + ["b"] * 2 + ["a"] * 2
    splits = assign_splits(case_ids, datasets, fractions={"train": 0.5, "test": 0.5})
    assert splits[0] == splits[1] and splits[2] == splits[3]
    # dataset "a" has two cases, split one/one; "b" has one
    assert {splits[0], splits[4]} == {"train", "test"}


def test_rows_and_datasets_must_align():
    with pytest.raises(ValueError, match="one entry per row"):
        assign_splits(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="unknown mode "):
        assign_splits(["a"], ["x"], mode="patient")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        assign_splits(["a"], ["x"], seed=-1)


# -- slice mode -------------------------------------------------------------------------------


def test_slice_mode_warns_of_leakage_and_splits_every_case():
    case_ids, datasets = _rows({"a": 4, "b": 2}, slices=20)
    with pytest.warns(LeakageWarning, match="patient"):
        splits = assign_splits(case_ids, datasets, mode="slice", seed=1)
    for case in set(case_ids):
        mine = splits[np.asarray(case_ids) == case]
        assert {name: int((mine == name).sum()) for name in ("train", "val", "test")} == {
            "train": 16,
            "val": 2,
            "test": 2,
        }


def test_slice_mode_gives_a_three_slice_case_one_slice_per_part():
    with pytest.warns(LeakageWarning):
        splits = assign_splits(["c"] * 3, ["d"] * 3, mode="slice")
    assert sorted(splits) == ["test", "train", "val"]


def test_case_mode_does_not_warn():
    case_ids, datasets = _rows({"a": 5})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        splits = assign_splits(case_ids, datasets)
    parts = _parts_of_each_case(case_ids, datasets, splits)
    assert len(parts) == 5 and all(len(p) == 1 for p in parts.values())  # no case is cut


# -- k-fold -----------------------------------------------------------------------------------


def test_kfold_test_parts_partition_the_cases():
    case_ids, datasets = _rows({"a": 23, "b": 11, "c": 4}, slices=2)
    k = 5
    test_cases: list[set[tuple[str, str]]] = []
    for fold in range(k):
        splits = kfold_splits(case_ids, datasets, k, fold, seed=2)
        parts = _parts_of_each_case(case_ids, datasets, splits)
        assert all(len(p) == 1 for p in parts.values())  # no case in two parts
        test_cases.append({case for case, p in parts.items() if p == {"test"}})
        # val: a tenth of each dataset's remaining cases (at least one)
        for dataset in ("a", "b", "c"):
            rest = [p for (d, _), p in parts.items() if d == dataset and p != {"test"}]
            n_val = sum(p == {"val"} for p in rest)
            assert n_val == split_counts(len(rest), {"train": 0.9, "val": 0.1})["val"]
    every = set().union(*test_cases)
    assert len(every) == 38 and sum(len(t) for t in test_cases) == 38  # disjoint, complete
    sizes = [len(t) for t in test_cases]
    assert max(sizes) - min(sizes) <= 1
    for dataset, n in {"a": 23, "b": 11, "c": 4}.items():  # stratified: +-1 per dataset
        per_fold = [sum(d == dataset for d, _ in t) for t in test_cases]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == n


def test_kfold_is_deterministic_and_validates_its_arguments():
    case_ids, datasets = _rows({"a": 10})
    np.testing.assert_array_equal(
        kfold_splits(case_ids, datasets, 3, 1, seed=4),
        kfold_splits(case_ids, datasets, 3, 1, seed=4),
    )
    with pytest.raises(ValueError, match="k must be"):
        kfold_splits(case_ids, datasets, 1, 0)
    with pytest.raises(ValueError, match="fold must be"):
        kfold_splits(case_ids, datasets, 3, 3)
    with pytest.raises(ValueError, match="val_fraction"):
        kfold_splits(case_ids, datasets, 3, 0, val_fraction=1.0)
    with pytest.raises(ValueError, match="at least 12 cases"):
        kfold_splits(case_ids, datasets, 12, 0)


# -- the paper's slice split, re-dealt from a cache's index -----------------------------------


def _paper_index() -> dict[str, np.ndarray]:
    """Two BraTS patients with three modalities of 155 slices, one LGG patient (T2, 50)."""
    rows: list[tuple[str, str, str, str]] = []
    for patient in ("p1", "p2"):
        for modality in ("t1c", "t2w", "t2f"):
            rows += [("brats", f"{patient}-{modality}", patient, modality)] * 155
    rows += [("lgg", "l1", "l1", "t2")] * 50
    dataset, case_id, patient_id, modality = (np.array(c) for c in zip(*rows, strict=True))
    return {"dataset": dataset, "case_id": case_id, "patient_id": patient_id, "modality": modality}


def test_paper_slice_split_sends_a_tenth_of_every_patient_and_modality_to_test():
    index = _paper_index()
    with pytest.warns(LeakageWarning, match="every patient"):
        splits = paper_slice_splits(index, seed=12345)
    assert set(splits.tolist()) == {"train", "test"}  # no validation set
    groups = zip(index["dataset"], index["patient_id"], index["modality"], strict=True)
    keys = np.array(["/".join(g) for g in groups])
    for key in np.unique(keys):
        mine = splits[keys == key]
        n = mine.size
        # docs/method.md: 15 of a 155-slice volume per modality; round(0.1 n) in general
        want = 15 if n == 155 else 5
        assert (mine == "test").sum() == want, key
        assert (mine == "train").sum() == n - want


def test_paper_slice_split_is_deterministic_under_its_seed_and_changes_with_it():
    index = _paper_index()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakageWarning)
        a = paper_slice_splits(index, seed=12345)
        b = paper_slice_splits(index, seed=12345)
        c = paper_slice_splits(index, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_paper_slice_split_falls_back_to_the_case_without_patient_ids_and_names_missing_columns():
    index = _paper_index()
    index["patient_id"] = np.array([""] * index["case_id"].size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakageWarning)
        splits = paper_slice_splits(index, seed=0)
    assert (splits[index["case_id"] == "l1"] == "test").sum() == 5
    del index["modality"]
    with pytest.raises(ValueError, match="'modality'"):
        paper_slice_splits(index, seed=0)


# -- patient-level cross-validation (split="cv") ----------------------------------------------


def _cv_index(patients_per_dataset: dict[str, int]) -> dict[str, np.ndarray]:
    """Patients with one to three cases (every third patient has two more) of 4 slices."""
    rows: list[tuple[str, str, str]] = []
    for name, n in patients_per_dataset.items():
        for p in range(n):
            for c in range(3 if p % 3 == 0 else 1):
                rows += [(name, f"{name}-p{p}-c{c}", f"{name}-p{p}")] * 4
    dataset, case_id, patient_id = (np.array(c) for c in zip(*rows, strict=True))
    return {"dataset": dataset, "case_id": case_id, "patient_id": patient_id}


def _patients_in(index: dict[str, np.ndarray], splits: np.ndarray, part: str) -> set[str]:
    keys = np.char.add(np.char.add(index["dataset"], "/"), index["patient_id"])
    return set(keys[splits == part].tolist())


CV_DATA = {"a": 23, "b": 8, "c": 3}


@pytest.mark.parametrize("k", [2, 5, 34])
def test_cv_tests_every_patient_exactly_once_and_never_trains_or_validates_on_it(k):
    index = _cv_index(CV_DATA)
    every = _patients_in(index, np.full(index["case_id"].size, "x"), "x")
    tested: list[set[str]] = []
    for fold in range(1, k + 1):
        splits = cv_splits(index, k, fold, seed=7)
        test = _patients_in(index, splits, "test")
        train, val = _patients_in(index, splits, "train"), _patients_in(index, splits, "val")
        assert test and train and val
        assert not (test & train) and not (test & val) and not (train & val)  # by patient
        assert test | train | val == every
        tested.append(test)
    assert sum(len(t) for t in tested) == len(every) == 34  # each patient in one test fold
    assert set().union(*tested) == every
    sizes = [len(t) for t in tested]
    assert max(sizes) - min(sizes) <= 1


def test_cv_validates_ceil_15_percent_of_the_other_folds_patients_shared_by_dataset():
    index = _cv_index(CV_DATA)
    for k in (3, 4, 6):
        for fold in range(1, k + 1):
            splits = cv_splits(index, k, fold, seed=1)
            rest = _patients_in(index, splits, "train") | _patients_in(index, splits, "val")
            val = _patients_in(index, splits, "val")
            want = max(1, math.ceil(Fraction(15, 100) * len(rest)))  # exact, no float ceil
            assert len(val) == want
            for name in CV_DATA:  # each dataset gets its proportional share, rounded
                n_rest = sum(p.startswith(f"{name}/") for p in rest)
                n_val = sum(p.startswith(f"{name}/") for p in val)
                share = Fraction(want * n_rest, len(rest))
                assert math.floor(share) <= n_val <= math.ceil(share)
    # 20 patients outside the test fold: 15 % is exactly 3 (a float ceil would give 4)
    index = _cv_index({"a": 25})
    splits = cv_splits(index, 5, 1, seed=0)
    assert len(_patients_in(index, splits, "val")) == 3


def test_cv_folds_are_stratified_by_dataset():
    index = _cv_index(CV_DATA)
    k = 4
    patient_folds = {}
    for key, fold in zip(
        np.char.add(np.char.add(index["dataset"], "/"), index["patient_id"]).tolist(),
        cv_row_folds(index, k, seed=3).tolist(),
        strict=True,
    ):
        assert patient_folds.setdefault(key, fold) == fold  # one fold per patient
    for name, n in CV_DATA.items():
        per_fold = [
            sum(p.startswith(f"{name}/") and f == fold for p, f in patient_folds.items())
            for fold in range(1, k + 1)
        ]
        assert sum(per_fold) == n and max(per_fold) - min(per_fold) <= 1


def test_cv_is_deterministic_independent_of_row_order_and_changes_with_its_seed():
    index = _cv_index(CV_DATA)
    first = cv_splits(index, 5, 2, seed=11)
    np.testing.assert_array_equal(first, cv_splits(index, 5, 2, seed=11))
    order = np.random.default_rng(0).permutation(index["case_id"].size)
    shuffled = {name: column[order] for name, column in index.items()}
    np.testing.assert_array_equal(cv_splits(shuffled, 5, 2, seed=11), first[order])
    assert not np.array_equal(cv_row_folds(index, 5, seed=12), cv_row_folds(index, 5, seed=11))


def test_cv_falls_back_to_the_case_id_without_a_patient_id():
    index = _cv_index({"a": 6})
    index["patient_id"] = np.where(index["case_id"] == "a-p0-c1", "", index["patient_id"])
    without = {name: index[name] for name in ("dataset", "case_id")}
    folds = cv_row_folds(without, 3, seed=0)
    case_folds = {c: set(folds[index["case_id"] == c].tolist()) for c in index["case_id"]}
    assert all(len(f) == 1 for f in case_folds.values())  # the case is the unit
    n_patients = len(set(index["case_id"].tolist()))  # 6 patients, 2 with 3 cases: 10 cases
    assert n_patients == 10 and len(set(folds.tolist())) == 3
    # an empty patient_id makes its case a patient of its own: 6 + 1 = 7 patients
    mixed = cv_row_folds(index, 7, seed=0)
    with pytest.raises(ValueError, match="at least 8 patients; the cache has 7"):
        cv_row_folds(index, 8, seed=0)
    fold_of = {c: int(mixed[index["case_id"] == c][0]) for c in ("a-p0-c0", "a-p0-c1", "a-p0-c2")}
    assert fold_of["a-p0-c0"] == fold_of["a-p0-c2"] != fold_of["a-p0-c1"]


def test_cv_case_folds_lists_each_case_once_with_the_fold_that_tests_it():
    index = _cv_index(CV_DATA)
    table = cv_case_folds(index, 4, seed=5)
    assert list(table) == ["case_id", "patient_id", "dataset", "fold"]
    cases = list(zip(table["dataset"].tolist(), table["case_id"].tolist(), strict=True))
    pairs = set(zip(index["dataset"], index["case_id"], strict=True))
    assert len(cases) == len(set(cases)) == len(pairs)
    for fold in range(1, 5):
        splits = cv_splits(index, 4, fold, seed=5)
        tested = set(index["case_id"][splits == "test"].tolist())
        assert tested == set(table["case_id"][table["fold"] == fold].tolist())
    for case, patient in zip(table["case_id"], table["patient_id"], strict=True):
        assert case.startswith(f"{patient}-")


def test_cv_refuses_bad_arguments_naming_the_numbers():
    index = _cv_index({"a": 6})  # 6 patients
    with pytest.raises(ValueError, match="integer >= 2, got 1"):
        cv_row_folds(index, 1, seed=0)
    with pytest.raises(ValueError, match=r"7-fold .* at least 7 patients; the cache has 6"):
        cv_splits(index, 7, 1, seed=0)
    with pytest.raises(ValueError, match=r"fold must be an integer in 1\.\.3, got 0"):
        cv_splits(index, 3, 0, seed=0)
    with pytest.raises(ValueError, match="seed must be"):
        cv_row_folds(index, 3, seed=-1)
    two = _cv_index({"a": 2})
    with pytest.raises(ValueError, match=r"leaves 1 patient\(s\) outside .* at least 3 patients"):
        cv_splits(two, 2, 1, seed=0)
    with pytest.raises(ValueError, match="no 'dataset' column"):
        cv_row_folds({"case_id": index["case_id"]}, 2, seed=0)
