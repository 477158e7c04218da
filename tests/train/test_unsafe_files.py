"""A model file runs no code when it is loaded (issue 13): a crafted pickle that would create
a marker file is given to every command and API that reads a checkpoint; the marker never
appears, the command exits 1 (a bad file) and the message names the file."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from calfseg.cli import main
from calfseg.cli.common import EXIT_FAILURE
from calfseg.train import TrainConfig, evaluate_checkpoint, fit, load_checkpoint
from calfseg.train.checkpoint import CheckpointFileError
from calfseg.train.export import export_model
from calfseg.train.predict import Predictor, predict_file
from calfseg.train.trained_model import load_trained_model

from .crafted_files import crafted_development_format, crafted_plain_pickle, crafted_torch_file

CRAFTERS = {
    "torch.save": crafted_torch_file,
    "pickle.dump": crafted_plain_pickle,
    # the tag of a format that pickled numpy objects earns no way around the refusal
    "format-1 tag": crafted_development_format,
}


@pytest.fixture(params=sorted(CRAFTERS))
def crafted(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    """``(file, marker)``: a crafted ``best.pt`` in a run folder, and its marker path."""
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    run.mkdir()
    return CRAFTERS[request.param](run / "best.pt", marker), marker


def test_the_crafted_files_are_armed(tmp_path: Path):
    # Without this, "the marker never appears" would prove nothing: an unrestricted
    # unpickler does run the payload.
    for name, craft in CRAFTERS.items():
        marker = tmp_path / f"marker-{name}"
        path = craft(tmp_path / f"{name}.pt", marker)
        if name != "pickle.dump":
            torch.load(path, weights_only=False)
        else:
            with open(path, "rb") as handle:
                pickle.load(handle)  # the point of this test: an unrestricted unpickler
        assert marker.exists(), name


def _png(tmp_path: Path) -> Path:
    Image.fromarray(np.full((32, 32), 100, np.uint8)).save(tmp_path / "in.png")
    return tmp_path / "in.png"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", ["predict", "evaluate", "export", "predict-run-folder"])
def test_every_command_refuses_it_and_runs_nothing(
    capsys, crafted: tuple[Path, Path], cache: Path, tmp_path: Path, command: str
):
    path, marker = crafted
    argv: list[str | Path] = {
        "predict": ["predict", path, _png(tmp_path), tmp_path / "m.png"],
        "predict-run-folder": ["predict", path.parent, _png(tmp_path), tmp_path / "m.png"],
        "evaluate": ["evaluate", path, "--data", cache, "--no-surface"],
        "export": ["export", path, tmp_path / "exported"],
    }[command]
    code, err = _cli(capsys, *argv)
    assert not marker.exists()
    assert code == EXIT_FAILURE, err
    assert str(path) in err and "nothing in it was run" in err
    assert "Traceback" not in err and "trust" not in err
    assert not (tmp_path / "m.png").exists() and not (tmp_path / "exported").exists()


def test_train_resume_refuses_a_crafted_last_checkpoint(
    capsys, crafted: tuple[Path, Path], cache: Path
):
    path, marker = crafted
    last = path.with_name("last.pt")
    path.rename(last)
    code, err = _cli(capsys, "train", "--data", cache, "--out", last.parent, "--preset", "tiny",
                     "--loss", "bce", "--max-steps", "1", "--device", "cpu", "--no-progress",
                     "--resume")  # fmt: skip
    assert not marker.exists()
    assert code == EXIT_FAILURE, err
    assert str(last) in err and "nothing in it was run" in err


LOADERS: dict[str, Callable[[Path, Path, Path], object]] = {
    "load_checkpoint": lambda p, cache, tmp: load_checkpoint(p),
    "load_trained_model": lambda p, cache, tmp: load_trained_model(p),
    "evaluate_checkpoint": lambda p, cache, tmp: evaluate_checkpoint(p, cache, device="cpu"),
    "Predictor": lambda p, cache, tmp: Predictor(p, device="cpu"),
    "predict_file": lambda p, cache, tmp: predict_file(p, _png(tmp), tmp / "m.png"),
    "export_model": lambda p, cache, tmp: export_model(p, tmp / "exported"),
    "fit(resume)": lambda p, cache, tmp: fit(
        TrainConfig.tiny(cache, max_steps=1, device="cpu", tensorboard=False),
        _as_last(p),
        progress=False,
    ),
}


def _as_last(path: Path) -> Path:
    shutil.copy(path, path.with_name("last.pt"))
    return path.parent


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_every_python_loader_refuses_it_and_runs_nothing(
    crafted: tuple[Path, Path], cache: Path, tmp_path: Path, loader: str
):
    path, marker = crafted
    with pytest.raises(CheckpointFileError) as caught:
        LOADERS[loader](path, cache, tmp_path)
    assert not marker.exists()
    assert str(path.parent) in str(caught.value) and "would need unpickling" in str(caught.value)


def test_the_refusal_names_what_the_file_asked_for(crafted: tuple[Path, Path]):
    path, _ = crafted
    # torch.save's protocol 2 reaches Path.touch through getattr; pickle.dump's protocol
    # uses an opcode the safe loader does not implement at all.
    with pytest.raises(
        CheckpointFileError, match=r"asks for the global getattr|uses pickle opcode"
    ):
        load_checkpoint(path)


def test_a_file_of_only_safe_types_but_no_tag_is_not_a_checkpoint(tmp_path: Path):
    torch.save({"state_dict": {"w": torch.ones(2)}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointFileError, match=r"x\.pt is not a calfseg checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
