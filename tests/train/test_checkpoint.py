"""Checkpoints and logs are written atomically; checkpoints are read with the safe loader."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from calfseg.train import CheckpointError, load_checkpoint, save_checkpoint
from calfseg.train.checkpoint import CheckpointFileError, rng_states, set_rng_states
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


def test_rng_states_survive_the_safe_loader_bit_for_bit(tmp_path: Path):
    random.seed(7)
    random.gauss(0, 1)  # leaves a cached second normal: gauss_next is not None
    np.random.seed(8)  # noqa: NPY002 (the legacy global RNG is what is saved)
    np.random.standard_normal()  # noqa: NPY002 (leaves has_gauss = 1)
    torch.manual_seed(9)
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_states()})
    expected = draws()
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002
    torch.manual_seed(0)
    state = torch.load(tmp_path / "rng.pt", weights_only=True)  # the safe loader reads it
    set_rng_states(state["rng"])
    got = draws()
    assert got[:4] == expected[:4] and torch.equal(got[4], expected[4])


def draws() -> tuple[float, float, float, int, torch.Tensor]:
    """One draw of each generator a checkpoint restores (the legacy numpy one included)."""
    legacy = np.random  # the legacy global RNG: what checkpoints save
    return (random.random(), random.gauss(0, 1), float(legacy.standard_normal()),
            int(legacy.randint(0, 2**31)), torch.rand(3))  # fmt: skip


def test_a_checkpoint_of_another_format_is_refused_naming_it(tmp_path: Path):
    torch.save({"format": "calfseg.checkpoint/9", "model": {}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointFileError, match=r"x\.pt is not a calfseg checkpoint.*/9"):
        load_checkpoint(tmp_path / "x.pt")
    (tmp_path / "torn.pt").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(CheckpointFileError, match=r"torn\.pt is not a readable checkpoint"):
        load_checkpoint(tmp_path / "torn.pt")
    with pytest.raises(CheckpointFileError, match="is a folder"):
        load_checkpoint(tmp_path)
