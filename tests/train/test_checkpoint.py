"""Checkpoints and logs are written atomically."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from calfseg.train import CheckpointError, load_checkpoint, save_checkpoint
from calfseg.train.logs import EpochLog


def test_a_crash_mid_save_leaves_the_old_checkpoint(tmp_path: Path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1, "weights": torch.ones(3)})

    def torn_save(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 2, "weights": torch.zeros(3)})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left


def test_a_foreign_file_is_not_a_checkpoint(tmp_path: Path):
    path = tmp_path / "x.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a calfseg checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_log_truncates_epochs_after_the_checkpoint(tmp_path: Path):
    log = EpochLog(tmp_path, branches=False)
    for epoch in (1, 2, 3):
        log.append({"epoch": epoch, "train_loss": 0.5, "val_dice": float("nan")})
    log.truncate(2)
    again = EpochLog(tmp_path, branches=False)
    assert [r["epoch"] for r in again.rows] == [1, 2]
    assert again.rows[0]["val_dice"] is None
    assert (tmp_path / "log.csv").read_text().splitlines()[2].startswith("2,0.5,,")
