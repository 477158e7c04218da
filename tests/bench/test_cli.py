"""`calf benchmark` and `calf report`: exit codes, outputs, unknown names."""

from __future__ import annotations

from pathlib import Path

import pytest

from calfseg.bench import BenchmarkConfig
from calfseg.cli import main
from calfseg.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE


@pytest.mark.slow
def test_calf_report_rebuilds_everything(
    fake_benchmark: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("results.csv", "summary.md", "report.html"):
        (fake_benchmark / name).unlink(missing_ok=True)
    assert main(["report", str(fake_benchmark)]) == EXIT_OK
    assert "12 finished runs" in capsys.readouterr().out
    for name in ("results.csv", "per_image.csv", "summary.md", "report.html"):
        assert (fake_benchmark / name).is_file()
    assert (fake_benchmark / "verdicts.csv").is_file()
    assert len(list((fake_benchmark / "figures").glob("*.png"))) >= 5  # forest, 2 x 2 per model


def test_calf_report_needs_a_results_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == EXIT_FAILURE
    assert "no runs/ folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "name", "listed"),
    [("--models", "resnet", "unet, deeplabv3, fpn"), ("--losses", "hinge", "calf, calf-dataset")],
)
def test_unknown_names_are_listed_with_the_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, name: str, listed: str
) -> None:
    code = main(["benchmark", option, name, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert name in err and listed in err
    assert not (tmp_path / "runs").exists()


def test_bad_shard_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "--shard", "3/2"]) == EXIT_USAGE
    assert "K/N" in capsys.readouterr().err


def test_benchmark_options_override_the_preset_and_failures_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import calfseg.bench
    from calfseg.bench import BenchmarkOutcome

    seen: list[BenchmarkConfig] = []

    def fake_run(config: BenchmarkConfig, **kwargs: object) -> BenchmarkOutcome:
        seen.append(config)
        return BenchmarkOutcome(config.out, 4, failed={"fpn-calf-s12346": "RuntimeError: x"})

    monkeypatch.setattr(calfseg.bench, "run_benchmark", fake_run)
    argv = ["benchmark", "--preset", "paper", "--models", "fpn", "--losses", "calf", "bce"]
    argv += ["--seeds", "2", "--epochs", "1", "--out", str(tmp_path), "--shard", "1/2"]
    assert main(argv) == 1
    config = seen[0]
    assert (config.models, config.losses, config.seeds) == (
        ("fpn",),
        ("calf", "bce"),
        (12345, 12346),
    )
    assert (config.epochs, config.lr, config.batch_size, config.shard) == (1, 1e-5, 32, (1, 2))
    err = capsys.readouterr().err
    assert "synthetic paper-like data (256x256)" in err and "1 run(s) failed" in err


# -- --folds K --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--folds", "0"], "--folds: folds must be 1 (no cross-validation: the cache's split)"),
        (["--folds", "-2"], "or K >= 2 (K-fold patient-level cross-validation), got -2"),
        (["--folds", "3", "--preset", "paper"], "the 'paper' protocol uses the authors'"),
        (["--folds", "3", "--cv-seed", "-1"], "--cv-seed: must be >= 0"),
    ],
)
def test_folds_the_grid_cannot_take_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["benchmark", *argv, "--out", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_folds_and_cv_seed_reach_the_benchmark_config(
    tmp_path: Path, benchmark_configs: list[BenchmarkConfig]
) -> None:
    seen = benchmark_configs
    assert main(["benchmark", "--folds", "5", "--cv-seed", "3", "--out", str(tmp_path)]) == EXIT_OK
    assert main(["benchmark", "--out", str(tmp_path)]) == EXIT_OK
    assert (seen[0].folds, seen[0].cv_seed) == (5, 3)
    assert (seen[1].folds, seen[1].cv_seed) == (2, 0)  # the default preset: 2 folds


def test_lr_and_augment_reach_every_run(
    tmp_path: Path, benchmark_configs: list[BenchmarkConfig]
) -> None:
    from calfseg.bench import RunSpec
    from calfseg.bench.runner import make_train_config, train_options

    seen = benchmark_configs
    argv = ["benchmark", "--lr", "1e-3", "--no-augment", "--out", str(tmp_path)]
    assert main(argv) == EXIT_OK
    assert main(["benchmark", "--out", str(tmp_path)]) == EXIT_OK
    assert main(["benchmark", "--preset", "project", "--augment", "--out", str(tmp_path)]) == 0
    options = train_options(seen[0], RunSpec("unet", "bce", 0, 1))
    assert (options["lr"], options["augment"]) == (1e-3, False)
    plain = train_options(seen[1], RunSpec("unet", "bce", 0, 1))
    assert plain["lr"] == 3e-3 and "augment" not in plain  # the preset's ...
    assert make_train_config(plain, preset=seen[1].train_preset).augment  # ... cpu: on
    assert train_options(seen[2], RunSpec("unet", "bce", 0))["augment"] is True


def test_the_control_arm_is_on_by_default_and_off_with_no_control(
    tmp_path: Path, benchmark_configs: list[BenchmarkConfig]
) -> None:
    from calfseg.bench import runs

    seen = benchmark_configs
    assert main(["benchmark", "--out", str(tmp_path)]) == EXIT_OK
    assert main(["benchmark", "--no-control", "--out", str(tmp_path)]) == EXIT_OK
    assert main(["benchmark", "--losses", "calf", "combo", "--out", str(tmp_path)]) == EXIT_OK
    assert seen[0].arms == ("bce", "calf", "combo", "bce-control")
    assert [r.name for r in runs(seen[0]) if r.loss == "bce-control"] == [
        f"unet-bce-control-s{s}-f{f}" for s in (1000, 1001, 1002, 1003) for f in (1, 2)
    ]  # other seeds than bce's 0, 1, 2, 3
    assert seen[1].arms == ("bce", "calf", "combo")
    assert seen[2].arms == ("calf", "combo")  # no bce: nothing to control


def test_a_bad_lr_is_a_usage_error_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "--lr", "0"]) == EXIT_USAGE
    assert "--lr" in capsys.readouterr().err


def test_more_folds_than_patients_exits_1_naming_both_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .test_folds import write_cv_cache

    cache = write_cv_cache(tmp_path / "cache", {"a": 4, "b": 2})  # 6 patients
    argv = ["benchmark", "--data", str(cache), "--folds", "7", "--out", str(tmp_path / "out")]
    assert main([*argv, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "7-fold cross-validation needs at least 7 patients; the cache has 6" in err
    assert "Traceback" not in err and not (tmp_path / "out" / "runs").exists()
