"""split="paper-slices": a run re-deals the cache's rows the paper's way (docs/method.md section
5), for training and for the evaluation of its checkpoint, and says that patients leak."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from calfseg.data import SliceCache
from calfseg.data.splits.assign import LeakageWarning, split_counts
from calfseg.train import TrainConfig, train_run
from calfseg.train.build import open_split


def test_the_run_time_split_puts_a_tenth_of_every_patient_and_modality_in_test(cache: Path):
    config = TrainConfig.tiny(cache, split="paper-slices", val_split=None)
    with pytest.warns(LeakageWarning, match="every patient"):
        train = open_split(config, "train", train=True)
        test = open_split(config, "test")
    index = SliceCache.open(cache).index
    assert np.intersect1d(train.rows, test.rows).size == 0
    assert train.rows.size + test.rows.size == index["case_id"].size  # no validation rows
    patients = index["patient_id"]
    key = np.char.add(np.char.add(index["dataset"], patients), index["modality"])
    in_test = np.isin(np.arange(key.size), test.rows)
    for group in np.unique(key):
        n = int((key == group).sum())
        # the reference: largest-remainder counts of 0.9/0.1 for this group's slices
        want = split_counts(n, {"train": 0.9, "test": 0.1})["test"]
        assert int(in_test[key == group].sum()) == want
    # every patient of the cache is on both sides: the leak the paper had
    assert set(patients[train.rows]) == set(patients[test.rows]) == set(patients)


def test_a_paper_split_run_trains_keeps_the_last_epoch_and_evaluates_its_own_test_rows(
    cache: Path, tmp_path: Path
):
    config = TrainConfig.tiny(
        cache, split="paper-slices", val_split=None, epochs=2, max_steps=1, device="cpu",
        tensorboard=False, loss="bce",
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakageWarning)
        outcome = train_run(config, tmp_path / "run", progress=False)
        expected = open_split(replace(config), "test")
    assert outcome["best_epoch"] == 2  # no validation: the last epoch is kept
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (stored["split"], stored["seed"], stored["val_split"]) == ("paper-slices", 12345, None)
    assert outcome["results"]["n_images"] == len(expected)
    rows = [
        int(line.split(",")[0])
        for line in (tmp_path / "run" / "per_image_test.csv").read_text().splitlines()[1:]
    ]
    assert rows == expected.rows.tolist()
