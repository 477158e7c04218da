"""`calf train`, `calf evaluate` and `calf predict`: end to end on the synthetic cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from calfseg.cli import main
from calfseg.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

from ..train.synthetic_cache import make_synthetic_cache

TINY = ["--preset", "tiny", "--epochs", "1", "--max-steps", "2", "--no-progress"]
TINY += ["--device", "cpu"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread: None) -> None:
    """One intra-op thread (tests/conftest.py says why)."""


@pytest.fixture(scope="module")
def cache(synthetic_cache: Path) -> Path:
    return synthetic_cache


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_then_evaluate_then_predict(capsys, cache: Path, tmp_path: Path):
    run = tmp_path / "run"
    code, out, err = _run(capsys, "train", "--data", cache, "--out", run, *TINY)
    assert code == EXIT_OK, err
    assert "epoch 1/1  train_loss" in out and "branches" in out  # CALF by default
    assert "dice" in out and "per_image" in out and "hd95_mm" in out
    assert (run / "done.json").is_file()

    code, out, err = _run(capsys, "train", "--data", cache, "--out", run, *TINY)
    assert code == EXIT_FAILURE and "--resume" in err  # a run in the way: a file problem, 1
    code, out, err = _run(capsys, "train", "--data", cache, "--out", run, "--resume", "--overwrite")
    assert code == EXIT_USAGE and "give one" in err  # options that cannot go together
    code, out, _ = _run(capsys, "train", "--data", cache, "--out", run, *TINY, "--resume")
    assert code == EXIT_OK and "best epoch 1 of 1" in out

    report = tmp_path / "eval.json"
    code, out, err = _run(
        capsys, "evaluate", run / "best.pt", "--data", cache, "--split", "val", "--json", report
    )
    assert code == EXIT_OK, err
    assert out.splitlines()[1].split() == [
        "metric", "per_image", "pooled", "paper_batch_pooled", "per_case"
    ]  # fmt: skip
    assert json.loads(report.read_text())["split"] == "val"

    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(tmp_path / "in.png")
    code, out, err = _run(
        capsys, "predict", run / "best.pt", tmp_path / "in.png", tmp_path / "m.png"
    )
    assert code == EXIT_OK, err
    assert (tmp_path / "m.png").is_file()


@pytest.mark.parametrize(
    ("option", "value", "valid"),
    [("--model", "resnet", "unet, deeplabv3, fpn"), ("--loss", "xyz", "calf, calf-dataset")],
)
def test_unknown_names_list_the_valid_ones(capsys, cache: Path, tmp_path, option, value, valid):
    code, _, err = _run(capsys, "train", "--data", cache, "--out", tmp_path, option, value)
    assert code == EXIT_USAGE and valid in err


def test_evaluate_refuses_a_file_that_is_not_a_checkpoint(capsys, cache: Path, tmp_path: Path):
    (tmp_path / "x.pt").write_bytes(b"junk")
    code, _, err = _run(capsys, "evaluate", tmp_path / "x.pt", "--data", cache)
    assert code == EXIT_FAILURE and "not a readable checkpoint" in err  # a bad file: 1


def test_a_cache_too_small_for_the_model_says_which_sizes_work(capsys, tmp_path: Path):
    small = make_synthetic_cache(tmp_path / "small", size=24, cases=4)
    code, _, err = _run(capsys, "train", "--data", small, "--out", tmp_path / "r", "--model",
                        "fpn", *TINY)  # fmt: skip
    assert code == EXIT_FAILURE and "24x24" in err and "try" in err  # the cache's size: 1


def test_without_a_preset_the_cpu_gets_cpu_and_cuda_the_project_protocol(monkeypatch):
    from calfseg.cli import train

    assert train.default_preset("cpu") == "cpu"
    assert train.default_preset("cuda:1") == "project"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train.default_preset(None) == "cpu" and train.default_preset("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert train.default_preset("auto") == "project"


def test_no_preset_on_the_cpu_trains_the_cpu_preset_and_says_so_with_a_time_estimate(
    capsys, cache: Path, tmp_path: Path
):
    argv = ["--epochs", "2", "--max-steps", "2", "--no-progress", "--device", "cpu"]
    code, out, err = _run(capsys, "train", "--data", cache, "--out", tmp_path / "r", *argv)
    assert code == EXIT_OK, err
    assert "epoch 1/2" in out and "epoch 2/2" in out
    assert "preset cpu (chosen for device cpu" in err and "2 epochs x 2 steps" in err
    assert "s per step in epoch 1; about" in err
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (config["preset"], config["split"], config["val_split"]) == ("tiny", "cache", "val")
    assert (config["lr"], config["schedule"], config["min_delta"]) == (3e-3, "cosine", 0.01)
    assert (config["augment"], config["output_prior"], config["patience"]) == (True, True, None)


def test_estimate_line_scales_the_first_epoch_to_all_epochs():
    from calfseg.cli.train import estimate_line

    line = estimate_line({"epoch": 1, "steps": 100, "seconds": 300.0}, 20)
    assert "3.000 s per step" in line and "about 100 min for 20 epochs" in line
