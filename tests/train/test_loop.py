"""Training runs: every architecture and loss, logs, resumption, start-up errors."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from calfseg.losses import list_losses
from calfseg.rule import BRANCHES
from calfseg.train import CheckpointError, TrainConfig, fit, load_checkpoint, train_run
from calfseg.train.build import CacheInfo, RunSetupError, model_for


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("model", ["unet", "deeplabv3", "fpn"])
@pytest.mark.slow
def test_each_architecture_trains_and_validates(tiny_config: TrainConfig, tmp_path: Path, model):
    result = fit(replace(tiny_config, model=model), tmp_path, progress=False)
    assert result.epochs == 1 and result.best_epoch == 1
    (row,) = _log(tmp_path)
    assert row["epoch"] == 1 and row["steps"] == 2
    assert row["val_dice"] is not None and 0 <= row["val_dice"] <= 1
    assert row["val_case_dice"] is not None and 0 <= row["val_case_dice"] <= 1
    assert result.best_score == row["val_case_dice"]  # best.pt is chosen on the case Dice
    assert {"best.pt", "last.pt", "config.json", "log.csv"} <= {p.name for p in tmp_path.iterdir()}


@pytest.mark.parametrize("loss", list_losses())
@pytest.mark.slow
def test_each_registered_loss_trains(tiny_config: TrainConfig, tmp_path: Path, loss: str):
    config = replace(tiny_config, loss=loss, val_split=None, patience=None)
    fit(config, tmp_path, progress=False)
    (row,) = _log(tmp_path)
    assert isinstance(row["train_loss"], float)
    header = (tmp_path / "log.csv").read_text().splitlines()[0].split(",")
    if loss.startswith("calf"):
        shares = [row[f"branch/{b}"] for b in BRANCHES]
        assert sum(shares) == pytest.approx(1.0)
        assert f"branch/{BRANCHES[0]}" in header
    else:
        assert not any(name.startswith("branch/") for name in header)


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.slow
def test_resumed_run_equals_an_uninterrupted_one(tiny_config: TrainConfig, tmp_path: Path):
    config = replace(
        tiny_config, epochs=3, max_steps=3, loss="calf", schedule="cosine", warmup_steps=2,
        augment=True, patience=2,
    )  # fmt: skip
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    fit(config, straight, progress=False)
    fit(config, resumed, progress=False, stop_after=2)  # as if killed after epoch 2
    assert [r["epoch"] for r in _log(resumed)] == [1, 2]
    fit(config, resumed, progress=False)
    assert _same_weights(straight / "last.pt", resumed / "last.pt")
    assert _without_seconds(_log(straight)) == _without_seconds(_log(resumed))
    assert (
        load_checkpoint(straight / "last.pt")["stopping"]
        == (load_checkpoint(resumed / "last.pt")["stopping"])
    )
    with open(resumed / "log.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2", "3"]


def _scripted_validation(monkeypatch: pytest.MonkeyPatch, scores: list[float]) -> None:
    """validate_epoch returns ``scores`` in turn as the case Dice (from this call on)."""
    from calfseg.train import loop
    from calfseg.train.case_dice import ValidationScores

    queue = iter(scores)
    monkeypatch.setattr(
        loop,
        "validate_epoch",
        lambda *a, **k: ValidationScores(0.1, next(queue), 0.5, cases=1, images=4),
    )


@pytest.mark.slow
def test_a_run_stopped_early_resumes_identically_and_trains_no_further(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # a flat case Dice of 0.5: patience 2 stops the run after epoch 3 (validations 2 and 3
    # bring no rise); the weights are trained for real, killed after epoch 2 and resumed.
    config = replace(
        tiny_config, epochs=5, max_steps=2, schedule="cosine", warmup_steps=1, patience=2
    )
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _scripted_validation(monkeypatch, [0.5] * 3)
    done = fit(config, straight, progress=False)
    # flat from the first validation on: stopped by patience, not converged (nothing learned)
    assert (done.epochs_run, done.stop_reason, done.converged) == (3, "patience", False)
    _scripted_validation(monkeypatch, [0.5] * 2)
    fit(config, resumed, progress=False, stop_after=2)
    _scripted_validation(monkeypatch, [0.5])
    again = fit(config, resumed, progress=False)
    assert (again.epochs_run, again.stop_reason) == (3, "patience")
    assert _same_weights(straight / "last.pt", resumed / "last.pt")
    assert _same_weights(straight / "best.pt", resumed / "best.pt")
    assert _without_seconds(_log(straight)) == _without_seconds(_log(resumed))

    _scripted_validation(monkeypatch, [])  # a validation now would fail the test
    stamp = (resumed / "last.pt").stat().st_mtime_ns
    later = fit(replace(config, epochs=8), resumed, progress=False)  # more budget: no effect
    assert (resumed / "last.pt").stat().st_mtime_ns == stamp
    assert [r["epoch"] for r in _log(resumed)] == [1, 2, 3]
    assert (later.epochs_run, later.stop_reason, later.converged) == (3, "patience", False)


def test_resume_refuses_a_checkpoint_of_another_model(tiny_config: TrainConfig, tmp_path: Path):
    fit(replace(tiny_config, val_split=None, patience=None), tmp_path, progress=False)
    with pytest.raises(CheckpointError, match=r"another model: model 'unet' \(checkpoint\)"):
        fit(
            replace(tiny_config, val_split=None, patience=None, model="fpn"),
            tmp_path,
            progress=False,
        )


def test_resume_refuses_changed_training_options(tiny_config: TrainConfig, tmp_path: Path):
    fit(replace(tiny_config, val_split=None, patience=None), tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="other options \\(lr\\)"):
        fit(replace(tiny_config, val_split=None, patience=None, lr=0.5), tmp_path, progress=False)


def test_missing_validation_split_is_a_clear_error(cache: Path, tmp_path: Path):
    copy = tmp_path / "no_val"
    shutil.copytree(cache, copy)
    index = copy / "index.csv"
    index.write_text(index.read_text().replace(",val,", ",train,"))
    config = TrainConfig.tiny(copy, device="cpu", max_steps=1, epochs=1)
    with pytest.raises(RunSetupError, match=r"split 'val'.*val_split=None.*patience=None.*no rows"):
        fit(config, tmp_path / "run", progress=False)


def test_input_size_is_checked_at_start_up(tiny_config: TrainConfig):
    info = CacheInfo(channels=1, height=24, width=24, options={}, image_dtype="uint8")
    with pytest.raises(RunSetupError, match=r"divisible by 32.*try H = 32.*calf prepare"):
        model_for(replace(tiny_config, model="fpn"), info)


def test_a_finished_run_returns_at_once(tiny_config: TrainConfig, tmp_path: Path):
    first = train_run(tiny_config, tmp_path, progress=False)
    stamp = (tmp_path / "last.pt").stat().st_mtime_ns
    again = train_run(tiny_config, tmp_path, progress=False)
    assert (tmp_path / "last.pt").stat().st_mtime_ns == stamp
    assert again["results"] == first["results"] and again["best_epoch"] == 1


def test_mixed_precision_on_the_cpu_warns_and_trains_in_float32(
    tiny_config: TrainConfig, tmp_path: Path
):
    with pytest.warns(UserWarning, match="needs CUDA"):
        fit(
            replace(tiny_config, amp="bf16", val_split=None, patience=None),
            tmp_path,
            progress=False,
        )
    assert load_checkpoint(tmp_path / "last.pt")["scaler"] is None


def test_validation_and_numbered_checkpoints_follow_their_periods(
    tiny_config: TrainConfig, tmp_path: Path
):
    config = replace(tiny_config, epochs=3, max_steps=1, val_every=2, checkpoint_every=2)
    result = fit(config, tmp_path, progress=False)
    rows = _log(tmp_path)
    assert [r["val_dice"] is None for r in rows] == [True, False, False]  # and the last
    assert (tmp_path / "epoch_2.pt").is_file() and not (tmp_path / "epoch_1.pt").exists()
    assert result.best_epoch in (1, 2, 3) and (tmp_path / "best.pt").is_file()
