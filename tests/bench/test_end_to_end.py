"""The benchmark for real: synthetic data made on first use, real training of a tiny grid,
collection and the report; and the paper preset's configurations validate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calfseg.bench import BENCHMARK_PRESETS, runs
from calfseg.bench.runner import make_train_config, train_options
from calfseg.cli import main
from calfseg.data.cache import cache_digest

pytestmark = pytest.mark.slow  # trains real runs: the full tier only


def test_a_tiny_real_grid_trains_collects_and_reports(tmp_path: Path, capsys):
    out = tmp_path / "bench"
    argv = ["benchmark", "--out", str(out), "--losses", "bce", "calf", "--folds", "2"]
    code = main([*argv, "--seeds", "1", "--epochs", "1", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert (out / "data" / "meta.json").is_file()  # generated on first use
    names = [f"unet-{loss}-s0-f{fold}" for loss in ("bce", "calf") for fold in (1, 2)]
    names += [f"unet-bce-control-s1000-f{fold}" for fold in (1, 2)]  # the A/A control
    for name in names:
        assert (out / "runs" / name / "done.json").is_file()
    control = json.loads((out / "runs" / "unet-bce-control-s1000-f1" / "config.json").read_text())
    assert (control["loss"], control["seed"]) == ("bce-control", 1000)
    results = (out / "results.csv").read_text()
    assert "unet,calf,0,dice,per_image" in results.replace('"', "")
    # 2-fold cross-validation: every one of the 48 generated cases is tested once per loss
    lines = (out / "verdicts.csv").read_text().splitlines()
    verdict, control_row = lines[1].split(","), lines[2].split(",")
    assert verdict[:5] == ["unet", "calf", "bce", "dice", "case"] and verdict[5] == "48"
    assert control_row[:3] == ["unet", "bce-control", "bce"] and control_row[5] == "48"
    assert lines[0].endswith(",verdict,n_seeds,stratum") and verdict[-2:] == ["1", "all"]
    html = (out / "report.html").read_text()
    assert "Verdicts against BCE" in html and "data:image/png;base64," in html
    assert (out / "verdicts.csv").is_file()
    assert (out / "runs" / "unet-calf-s0-f1" / "per_case_test.csv").is_file()
    # Each run records the cache it was trained on; the report names it.
    digest = cache_digest(out / "data")
    record = json.loads((out / "runs" / "unet-calf-s0-f2" / "provenance.json").read_text())
    assert record["cache"]["digest"] == digest and record["config"]["epochs"] == 1
    assert f"| cache digest | {digest} |" in (out / "summary.md").read_text()
    # A rerun finds every run finished and only rebuilds the report.
    assert main([*argv, "--seeds", "1", "--epochs", "1", "--no-progress"]) == 0
    assert "6 already done" in capsys.readouterr().out
    # Other epochs into the same OUT: refused, naming the change and the ways out.
    assert main([*argv, "--seeds", "1", "--epochs", "2", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "epochs 1 -> 2 for 6 runs (unet-bce-s0-f1, unet-bce-s0-f2, unet-calf-s0-f1, " in err
    assert "--overwrite" in err and "Traceback" not in err


def test_the_paper_preset_builds_valid_training_configurations(tmp_path: Path):
    config = BENCHMARK_PRESETS["paper"].with_overrides(out=tmp_path, data=tmp_path / "cache")
    specs = runs(config)
    assert {s.loss for s in specs} == {
        "calf", "calf-region", "bce", "dice", "focal", "tversky", "iou", "combo"
    }  # fmt: skip
    for spec in specs[:8]:
        train = make_train_config(train_options(config, spec), preset="paper")
        train.validate()
        assert (train.epochs, train.batch_size, train.lr, train.preset) == (20, 32, 1e-5, "authors")
