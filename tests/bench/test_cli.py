"""`calf benchmark` and `calf report`: exit codes, outputs, unknown names."""

from __future__ import annotations

from pathlib import Path

import pytest

from calfseg.cli import main
from calfseg.cli.common import EXIT_OK, EXIT_USAGE


def test_calf_report_rebuilds_everything(
    fake_benchmark: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("results.csv", "summary.md", "report.html"):
        (fake_benchmark / name).unlink(missing_ok=True)
    assert main(["report", str(fake_benchmark)]) == EXIT_OK
    assert "12 finished runs" in capsys.readouterr().out
    for name in ("results.csv", "per_image.csv", "summary.md", "report.html"):
        assert (fake_benchmark / name).is_file()
    assert len(list((fake_benchmark / "figures").glob("*.png"))) == 8


def test_calf_report_needs_a_results_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == EXIT_USAGE
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
    from calfseg.bench import BenchmarkConfig, BenchmarkOutcome

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
