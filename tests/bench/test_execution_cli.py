"""`calf benchmark` execution options: bad values are refused before anything is prepared
or trained, naming the option and the fix; good ones reach run_benchmark."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from calfseg.bench import BenchmarkConfig
from calfseg.bench.executors.dispatch import count_gpus
from calfseg.cli import main
from calfseg.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_jobs_must_be_positive_or_auto(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    assert main(["benchmark", "--out", str(tmp_path), "--jobs", value]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--jobs" in err and "positive number of runs" in err and "auto" in err
    assert not (tmp_path / "data").exists()


def test_more_gpus_than_the_machine_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], benchmark_configs: list[BenchmarkConfig]
) -> None:
    have = count_gpus()
    code = main(["benchmark", "--out", str(tmp_path), "--gpus", str(have + 1)])
    assert code == EXIT_USAGE and benchmark_configs == []
    err = capsys.readouterr().err
    assert f"--gpus {have + 1}: this machine has {have} CUDA GPU(s)" in err
    assert f"pass --gpus 0..{have}" in err and "Traceback" not in err


def test_an_unreachable_ray_address_fails_fast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], benchmark_configs: list[BenchmarkConfig]
) -> None:
    argv = ["benchmark", "--out", str(tmp_path), "--executor", "ray"]
    code = main([*argv, "--ray-address", "127.0.0.1:1"])  # nothing listens on port 1
    assert code == EXIT_FAILURE and benchmark_configs == []
    err = capsys.readouterr().err
    assert "--ray-address 127.0.0.1:1: cannot reach 127.0.0.1:1" in err
    assert "ray start --head" in err and "leave --ray-address out" in err


def test_ray_address_needs_the_ray_executor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], benchmark_configs: list[BenchmarkConfig]
) -> None:
    code = main(["benchmark", "--out", str(tmp_path), "--ray-address", "auto"])
    assert code == EXIT_USAGE and "--ray-address needs --executor ray" in capsys.readouterr().err


def test_ray_not_installed_names_the_extra(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    benchmark_configs: list[BenchmarkConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(["benchmark", "--out", str(tmp_path), "--executor", "ray"])
    assert code == EXIT_FAILURE and benchmark_configs == []
    assert "pip install 'calf-seg[ray]'" in capsys.readouterr().err


def test_execution_options_reach_the_benchmark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import calfseg.bench
    from calfseg.bench import BenchmarkOutcome

    seen: list[object] = []

    def fake_run(config: BenchmarkConfig, **kwargs: object) -> BenchmarkOutcome:
        seen.append(kwargs["execution"])
        return BenchmarkOutcome(config.out, 0)

    monkeypatch.setattr(calfseg.bench, "run_benchmark", fake_run)
    argv = ["benchmark", "--out", str(tmp_path), "--jobs", "2", "--threads", "1", "--gpus", "0"]
    assert main([*argv, "--no-thread-policy"]) == EXIT_OK
    execution = seen[0]
    assert (execution.jobs, execution.threads, execution.gpus) == (2, 1, 0)  # type: ignore[attr-defined]
    assert execution.thread_policy is False and execution.executor == "local"  # type: ignore[attr-defined]
    assert main(["benchmark", "--out", str(tmp_path)]) == EXIT_OK
    assert seen[1].jobs is None  # type: ignore[attr-defined]  # default: auto
