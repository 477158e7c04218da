"""A real tiny grid gives the same results.csv byte for byte one run after another in this
process, in two worker processes (``--jobs 2``) and as Ray tasks on a local instance
(``--executor ray``): every run trains at the same threads wherever it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from calfseg.bench import BENCHMARK_PRESETS, BenchmarkConfig, run_benchmark
from calfseg.bench.executors.dispatch import Execution
from calfseg.bench.runner import ensure_data

pytestmark = pytest.mark.slow  # trains real runs: the full tier only


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> BenchmarkConfig:
    """Two one-epoch runs of the default preset on a small synthetic cache."""
    root = tmp_path_factory.mktemp("grid")
    small = BENCHMARK_PRESETS["default"].with_overrides(
        out=root / "serial", losses=("bce", "calf"), epochs=1, folds=2, seeds=(0,),
        synthetic_cases=12, synthetic_slices=8,
    )  # fmt: skip
    cache = ensure_data(small)
    return small.with_overrides(data=cache, losses=("calf",))


def _results(config: BenchmarkConfig, out: Path, execution: Execution) -> str:
    outcome = run_benchmark(
        config.with_overrides(out=out), progress=False, prepare=False, execution=execution
    )
    assert outcome.ok and len(outcome.finished) == 2, outcome.failed
    return (out / "results.csv").read_text()


def test_serial_two_jobs_and_ray_give_identical_results(
    grid: BenchmarkConfig, tmp_path: Path
) -> None:
    serial = _results(grid, tmp_path / "serial", Execution(jobs=1))
    assert serial.count("\n") > 10  # real rows: two runs' test metrics
    assert _results(grid, tmp_path / "jobs2", Execution(jobs=2)) == serial
    assert _results(grid, tmp_path / "ray", Execution(jobs=2, executor="ray")) == serial
