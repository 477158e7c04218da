"""per_case_<split>.csv: each case's confusion counts summed over its slices and its Dice,
against a numpy computation over the same slices."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from calfseg.data import SliceDataset
from calfseg.train.case_dice import case_dice
from calfseg.train.evaluate import (
    PER_CASE_COLUMNS,
    evaluate_model,
    write_evaluation,
)

THRESHOLD = 0.5  # the stub predicts foreground where the first channel is above it


class _Bright(nn.Module):
    """A stand-in model whose logit is positive exactly where channel 0 exceeds 0.5."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, :1] - THRESHOLD


def _numpy_counts(dataset: SliceDataset) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for i in range(len(dataset)):
        image, mask = dataset[i]
        pred = image.numpy()[0] > THRESHOLD
        true = mask.numpy()[0] > 0.5
        case = counts.setdefault(
            str(dataset.case_ids[i]), {"n_slices": 0, "tp": 0, "fp": 0, "fn": 0, "tn": 0}
        )
        case["n_slices"] += 1
        case["tp"] += int(np.sum(pred & true))
        case["fp"] += int(np.sum(pred & ~true))
        case["fn"] += int(np.sum(~pred & true))
        case["tn"] += int(np.sum(~pred & ~true))
    return counts


def test_case_dice_is_twice_tp_over_the_case_sums() -> None:
    assert case_dice(30, 10, 10) == pytest.approx(60 / 80)
    assert case_dice(0, 0, 0) == 1.0  # empty truth, nothing predicted
    assert case_dice(0, 5, 0) == 0.0  # empty truth, a false alarm
    assert case_dice(0, 0, 7) == 0.0  # a lesion missed entirely


def test_per_case_counts_equal_numpy_over_the_slices(cache: Path) -> None:
    dataset = SliceDataset(cache, "train")
    _, _, _, cases = evaluate_model(
        _Bright(), dataset, batch_size=7, device=torch.device("cpu"), surface=False
    )
    expected = _numpy_counts(dataset)
    assert [c["case_id"] for c in cases] == sorted(expected)
    assert len(cases) >= 2  # several cases, so the grouping is exercised
    assert sum(c["tp"] for c in cases) > 0 and sum(c["fp"] + c["fn"] for c in cases) > 0
    for row in cases:
        want = expected[row["case_id"]]
        assert {k: row[k] for k in want} == want
        denominator = 2 * want["tp"] + want["fp"] + want["fn"]
        dice = 1.0 if denominator == 0 else 2 * want["tp"] / denominator
        assert row["dice"] == pytest.approx(dice)
    assert sum(c["n_slices"] for c in cases) == len(dataset)


def test_the_per_case_csv_has_the_contract_columns(tmp_path: Path) -> None:
    cases = [{"case_id": "007", "n_slices": 3, "tp": 4, "fp": 1, "fn": 1, "tn": 90, "dice": 0.8}]
    empty = {"rows": np.zeros(0, np.int64)}
    write_evaluation(tmp_path, "test", "best.pt", {}, [], empty, per_case=cases)
    with (tmp_path / "per_case_test.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == PER_CASE_COLUMNS
    assert PER_CASE_COLUMNS == (
        "case_id", "n_slices", "tp", "fp", "fn", "tn", "dice", "hd95_mm", "assd_mm",
    )  # fmt: skip
    assert rows == [
        {"case_id": "007", "n_slices": "3", "tp": "4", "fp": "1", "fn": "1", "tn": "90",
         "dice": "0.8", "hd95_mm": "", "assd_mm": ""}
    ]  # fmt: skip


def test_per_case_distances_are_medpys_on_each_case_volume(cache: Path) -> None:
    """The 3D HD95 (larger directed 95th percentile) and ASSD of each case, against medpy
    on the case's slices stacked by hand at their slice positions with the voxel spacing."""
    from medpy.metric import binary

    directed = getattr(binary, "__surface_distances")
    dataset = SliceDataset(cache, "train")
    results, _, _, cases = evaluate_model(
        _Bright(), dataset, batch_size=5, device=torch.device("cpu"), surface=True
    )
    index = dataset.index
    checked = 0
    for row in cases:
        rows = np.flatnonzero(dataset.case_ids == row["case_id"])
        k = index["slice_index"][rows]
        h, w = dataset.meta["size"]
        pred = np.zeros((h, w, k.max() - k.min() + 1), bool)
        true = pred.copy()
        for i, depth in zip(rows, k - k.min(), strict=True):
            image, mask = dataset[int(i)]
            pred[..., depth] = image.numpy()[0] > THRESHOLD
            true[..., depth] = mask.numpy()[0] > 0.5
        mm = (index["spacing_x"][rows[0]], index["spacing_y"][rows[0]], index["spacing_z"][rows[0]])
        if pred.any() and true.any():
            d_pt, d_tp = directed(pred, true, mm, 1), directed(true, pred, mm, 1)
            hd95 = max(np.percentile(d_pt, 95), np.percentile(d_tp, 95))
            assert row["hd95_mm"] == pytest.approx(hd95, abs=1e-6)
            assert row["assd_mm"] == pytest.approx(binary.assd(pred, true, mm), abs=1e-6)
            checked += 1
    assert checked >= 2
    for metric in ("hd95_mm", "assd_mm"):
        mean = np.mean([row[metric] for row in cases])
        assert results[f"{metric}/per_case"] == pytest.approx(mean)


def test_a_case_held_only_in_part_gets_no_3d_distance(cache: Path) -> None:
    """A filter (here: tumour slices only) leaves a case without some of its slices: that is
    not the case's volume, so its per-case distances are empty and out of the mean."""
    from calfseg.data.splits.filters import DropEmpty

    whole = SliceDataset(cache, "train")
    dataset = SliceDataset(cache, "train", filters=[DropEmpty()])
    _, _, _, cases = evaluate_model(
        _Bright(), dataset, batch_size=5, device=torch.device("cpu"), surface=True
    )
    full = {c: int(np.sum(whole.case_ids == c)) for c in np.unique(whole.case_ids)}
    kept = {c: int(np.sum(dataset.case_ids == c)) for c in np.unique(dataset.case_ids)}
    partial = {c for c in kept if kept[c] < full[c]}
    assert partial  # the fixture has tumour-free slices in some cases
    for row in cases:
        measured = row["hd95_mm"] is not None and row["assd_mm"] is not None
        assert measured == (row["case_id"] not in partial)
