"""The typed checkpoint (Checkpoint: to_state / from_state, field checks naming the file and
the field) and the training state it restores (resumption paths the loop tests leave out)."""

from __future__ import annotations

import json
import shutil
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
import torch

from calfseg.train import TrainConfig, fit, load_checkpoint, save_checkpoint
from calfseg.train.checkpoint import (
    FIELD_TYPES,
    Checkpoint,
    CheckpointError,
    CheckpointFieldError,
    CheckpointFileError,
)

from .test_loop import _scripted_validation

# The keys a format-2 checkpoint of a training run holds, in the order they are written
# (docs/train.md, "The run folder").
FORMAT_2_KEYS = [
    "format", "model", "loss", "optimizer", "scheduler", "scaler", "epoch", "rng", "config",
    "best_score", "best_epoch", "stopping", "cache_options", "cache_image_dtype",
    "in_channels", "size", "cache",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch run (2 steps per epoch) of the tiny U-Net with BCE."""
    run = tmp_path_factory.mktemp("state") / "run"
    config = TrainConfig.tiny(
        cache, epochs=2, max_steps=2, device="cpu", tensorboard=False, loss="bce"
    )
    fit(config, run, progress=False)
    return run


def _equal(x: Any, y: Any) -> bool:
    """Deep equality of checkpoint values (tensors bit for bit, same container types)."""
    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
    if isinstance(x, dict):
        return isinstance(y, dict) and list(x) == list(y) and all(_equal(x[k], y[k]) for k in x)
    if isinstance(x, list | tuple):
        return (
            type(x) is type(y)
            and len(x) == len(y)
            and all(_equal(a, b) for a, b in zip(x, y, strict=True))
        )
    return type(x) is type(y) and x == y


def _damaged(trained: Path, tmp_path: Path, **changes: Any) -> Path:
    """A copy of the run's last.pt with fields changed (a value of ``...`` removes one)."""
    state = load_checkpoint(trained / "last.pt")
    state.pop("format")
    for name, value in changes.items():
        if value is ...:
            del state[name]
        else:
            state[name] = value
    path = tmp_path / "last.pt"
    save_checkpoint(path, state)
    return path


# -- the typed checkpoint -----------------------------------------------------------------------


def test_the_typed_fields_are_the_format_2_keys():
    assert [f.name for f in fields(Checkpoint)] == FORMAT_2_KEYS[1:]
    assert list(FIELD_TYPES) == FORMAT_2_KEYS[1:]


def test_a_run_checkpoint_round_trips_exactly(trained: Path, tmp_path: Path):
    raw = torch.load(trained / "last.pt", weights_only=True)  # the file as torch reads it
    assert list(raw) == FORMAT_2_KEYS
    checkpoint = Checkpoint.load(trained / "last.pt")
    assert checkpoint.epoch == 2 and checkpoint.size == (32, 32) and checkpoint.in_channels == 1
    assert checkpoint.scheduler == {
        "schedule": "none",
        "warmup_steps": 0,
        "total_steps": 4,
        "next_step": 4,
    }  # fmt: skip  (2 epochs x 2 steps: 4 planned, the next one is step 4)
    assert _equal(checkpoint.to_state(), {k: v for k, v in raw.items() if k != "format"})
    checkpoint.save(tmp_path / "again.pt")
    assert _equal(torch.load(tmp_path / "again.pt", weights_only=True), raw)
    assert _equal(
        Checkpoint.from_state(checkpoint.to_state(), "x").to_state(), checkpoint.to_state()
    )


def test_a_missing_field_is_named_with_the_file(trained: Path, tmp_path: Path):
    path = _damaged(trained, tmp_path, optimizer=..., rng=...)
    with pytest.raises(CheckpointFieldError) as caught:
        Checkpoint.load(path)
    message = str(caught.value)
    assert str(path) in message and "lacks the field(s) optimizer, rng" in message
    assert isinstance(caught.value, CheckpointFileError)  # a bad file: calf train exits 1


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"epoch": "2"}, "field 'epoch' should be an integer >= 0, found str '2'"),
        ({"epoch": -1}, "field 'epoch' should be an integer >= 0"),
        ({"best_epoch": True}, "field 'best_epoch' should be an integer"),
        ({"size": [32]}, "field 'size' should be [height, width]"),
        ({"model": {"w": [1.0, 2.0]}}, "field 'model' should be a dict of tensors"),
        ({"rng": {"torch": torch.ones(2)}}, "field 'rng' should be a dict of the RNG states"),
        ({"config": None}, "field 'config' should be a dict"),
        ({"weights": {}}, "unknown field(s) weights"),
        ({"stopping": {"scores": None}}, "field 'stopping' should be a dict (the early-stop"),
        ({"stopping": {"scores": ["x"]}}, "its scores a list of numbers or None"),
    ],
)
def test_a_wrong_field_is_named_with_the_file(
    trained: Path, tmp_path: Path, changes: dict[str, Any], named: str
):
    path = _damaged(trained, tmp_path, **changes)
    with pytest.raises(CheckpointFieldError) as caught:
        Checkpoint.load(path)
    assert str(path) in str(caught.value) and named in str(caught.value)


def test_a_checkpoint_that_is_not_a_dict_is_refused():
    with pytest.raises(CheckpointFieldError, match=r"x\.pt is not a calfseg checkpoint.*list"):
        Checkpoint.from_state([1, 2], "x.pt")


def test_an_older_format_2_file_reads_without_stopping_and_cache(trained: Path, tmp_path: Path):
    path = _damaged(trained, tmp_path, stopping=..., cache=...)
    checkpoint = Checkpoint.load(path)
    assert checkpoint.stopping is None and checkpoint.cache is None
    assert checkpoint.epoch == 2


# -- resuming through the typed state ------------------------------------------------------------


def _log(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _same_file(a: Path, b: Path) -> bool:
    x, y = load_checkpoint(a), load_checkpoint(b)
    x["rng"].pop("cuda", None)
    y["rng"].pop("cuda", None)
    return _equal(x, y)


@pytest.mark.slow
def test_a_run_without_validation_resumes_bit_identically(tiny_config: TrainConfig, tmp_path: Path):
    # no validation: every epoch is best.pt; epoch_2.pt is kept; gradient clipping on
    config = replace(
        tiny_config, epochs=3, max_steps=2, val_split=None, patience=None, checkpoint_every=2,
        grad_clip=0.5, schedule="cosine", warmup_steps=1,
    )  # fmt: skip
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    done = fit(config, straight, progress=False)
    fit(config, resumed, progress=False, stop_after=1)
    again = fit(config, resumed, progress=False)
    assert (done.best_epoch, again.best_epoch, again.epochs_run) == (3, 3, 3)
    assert again.best_score is None and not again.converged
    for name in ("last.pt", "best.pt", "epoch_2.pt"):
        assert _same_file(straight / name, resumed / name), name
    assert _log(straight) == _log(resumed)


def test_resuming_an_older_checkpoint_starts_stopping_from_its_best_score(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # A format-2 file of calf-seg before early stopping had no "stopping": the resumed run
    # counts from its best score 0.4. Epoch 2 scores 0.405, not above 0.4 + min_delta 0.01:
    # one stale validation (a fresh state would have taken 0.405 as its reference, stale 0).
    config = replace(tiny_config, epochs=2, max_steps=1, patience=3, min_delta=0.01)
    _scripted_validation(monkeypatch, [0.4])
    fit(config, tmp_path, progress=False, stop_after=1)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["best_score"] == 0.4
    del state["stopping"], state["format"]
    save_checkpoint(tmp_path / "last.pt", state)
    _scripted_validation(monkeypatch, [0.405])
    result = fit(config, tmp_path, progress=False)
    stopping = load_checkpoint(tmp_path / "last.pt")["stopping"]
    assert stopping == {
        "patience": 3, "min_delta": 0.01, "best": 0.405, "reference": 0.4, "stale": 1,
        "validations": 1, "improvements": 0, "scores": [0.405],
    }  # fmt: skip
    assert (result.best_epoch, result.best_score) == (2, 0.405)
    assert [r["epoch"] for r in _log(tmp_path)] == [1, 2]


def test_weights_that_do_not_fit_the_model_name_the_field(
    tiny_config: TrainConfig, trained: Path, tmp_path: Path
):
    state = load_checkpoint(trained / "last.pt")
    name = next(iter(state["model"]))
    state["model"][name] = torch.zeros(3)  # another shape
    del state["format"]
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    save_checkpoint(run / "last.pt", state)
    config = TrainConfig.from_dict(state["config"])
    with pytest.raises(CheckpointFieldError, match=r"last\.pt: its field 'model' does not fit"):
        fit(replace(config, epochs=3), run, progress=False)


def test_an_invalid_stored_config_is_a_file_error(trained: Path, tmp_path: Path):
    state = load_checkpoint(trained / "last.pt")
    config = TrainConfig.from_dict(state["config"])
    path = _damaged(trained, tmp_path, config={**state["config"], "colour": "blue"})
    checkpoint = Checkpoint.load(path)
    with pytest.raises(CheckpointFieldError, match=r"invalid training config.*'config'.*colour"):
        checkpoint.check_resumable(config, path)
    other = replace(config, lr=config.lr * 2)
    with pytest.raises(CheckpointError, match=r"other options \(lr\)"):
        Checkpoint.load(trained / "last.pt").check_resumable(other, trained / "last.pt")


def test_calf_train_resume_on_a_damaged_checkpoint_exits_1_naming_the_field(
    capsys: pytest.CaptureFixture[str], cache: Path, trained: Path, tmp_path: Path
):
    from calfseg.cli import main
    from calfseg.cli.common import EXIT_FAILURE

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    save_checkpoint(run / "last.pt", _state_without(trained / "last.pt", "optimizer"))
    argv = ["train", "--data", str(cache), "--out", str(run), "--preset", "tiny", "--loss", "bce"]
    code = main([*argv, "--max-steps", "2", "--device", "cpu", "--no-progress", "--resume"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURE, err
    assert str(run / "last.pt") in err and "lacks the field(s) optimizer" in err


def _state_without(path: Path, name: str) -> dict[str, Any]:
    state = load_checkpoint(path)
    del state["format"], state[name]
    return state
