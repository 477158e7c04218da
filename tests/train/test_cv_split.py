"""split="cv": a run re-deals the cache's rows for patient-level k-fold cross-validation, for
training, validation and the evaluation of its checkpoint alike; the options are checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from calfseg.data import SliceCache
from calfseg.data.splits.assign import cv_splits
from calfseg.train import TrainConfig, train_run
from calfseg.train.build import RunSetupError, fold_fingerprint, open_split
from calfseg.train.evaluate import evaluate_checkpoint

# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"split": "cv"}, "split='cv' needs cv_folds, an integer >= 2, got None"),
        ({"split": "cv", "cv_folds": 1, "cv_fold": 1}, "cv_folds, an integer >= 2, got 1"),
        ({"split": "cv", "cv_folds": 4}, r"cv_fold, an integer in 1\.\.4, got None"),
        ({"split": "cv", "cv_folds": 4, "cv_fold": 0}, r"in 1\.\.4, got 0"),
        ({"split": "cv", "cv_folds": 4, "cv_fold": 5}, r"in 1\.\.4, got 5"),
        ({"cv_folds": 4, "cv_fold": 1}, "apply to split='cv' only, not split='cache'"),
        ({"split": "cv", "cv_folds": 4, "cv_fold": 1, "cv_seed": -1}, "cv_seed must be"),
        ({"split": "kfold"}, "unknown split 'kfold'; valid names: cache, paper-slices, cv"),
    ],
)
def test_bad_cross_validation_options_are_refused_by_name(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(cache="c", **changes)


def test_cross_validation_options_round_trip_through_json():
    config = TrainConfig(cache="c", split="cv", cv_folds=5, cv_fold=3, cv_seed=9)
    again = TrainConfig.from_dict(json.loads(config.to_json()))
    assert (again.split, again.cv_folds, again.cv_fold, again.cv_seed) == ("cv", 5, 3, 9)


# -- the run-time split -----------------------------------------------------------------------


def _cv(cache: Path, fold: int, **changes) -> TrainConfig:
    options = {"split": "cv", "cv_folds": 4, "cv_fold": fold, "cv_seed": 3, **changes}
    return TrainConfig.tiny(cache, device="cpu", tensorboard=False, loss="bce", **options)


def test_each_part_of_a_fold_is_the_rows_of_cv_splits_and_patients_never_cross(cache: Path):
    index = SliceCache.open(cache).index
    tested: list[int] = []
    for fold in range(1, 5):
        config = _cv(cache, fold)
        want = cv_splits(index, 4, fold, seed=3)  # the reference: the function itself
        parts = {name: open_split(config, name).rows for name in ("train", "val", "test")}
        for name, rows in parts.items():
            np.testing.assert_array_equal(rows, np.flatnonzero(want == name))
        patients = {name: set(index["patient_id"][rows].tolist()) for name, rows in parts.items()}
        assert not patients["test"] & (patients["train"] | patients["val"])
        assert not patients["train"] & patients["val"]
        tested += parts["test"].tolist()
    assert sorted(tested) == list(range(index["case_id"].size))  # each slice tested once


def test_more_folds_than_patients_is_a_setup_error_naming_both(cache: Path):
    n = len(set(SliceCache.open(cache).index["patient_id"].tolist()))
    with pytest.raises(RunSetupError, match=f"at least {n + 1} patients; the cache has {n}"):
        open_split(_cv(cache, 1, cv_folds=n + 1), "train", train=True)


def test_calf_dataset_fits_on_the_folds_training_rows(cache: Path):
    index = SliceCache.open(cache).index
    train = cv_splits(index, 4, 2, seed=3) == "train"
    moments = fold_fingerprint(_cv(cache, 2))
    areas = index["area"][train].astype(np.float64)
    assert moments.count == train.sum()
    assert float(moments.skewness()) == pytest.approx(stats.skew(areas), rel=1e-9)
    assert float(moments.kurtosis()) == pytest.approx(stats.kurtosis(areas), rel=1e-9)


@pytest.mark.slow
def test_a_cv_run_trains_on_its_fold_and_evaluates_the_folds_test_patients(
    cache: Path, tmp_path: Path
):
    config = _cv(cache, 3, epochs=1, max_steps=1)
    train_run(config, tmp_path / "run", progress=False)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (stored["split"], stored["cv_folds"], stored["cv_fold"], stored["cv_seed"]) == (
        "cv", 4, 3, 3,
    )  # fmt: skip
    want = np.flatnonzero(cv_splits(SliceCache.open(cache).index, 4, 3, seed=3) == "test")
    lines = (tmp_path / "run" / "per_image_test.csv").read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in lines] == want.tolist()
    # evaluating the checkpoint later applies the same deal (from the run's config)
    report = evaluate_checkpoint(tmp_path / "run" / "best.pt", device="cpu", surface=False)
    assert [row["row"] for row in report["per_image"]] == want.tolist()
