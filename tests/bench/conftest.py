from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from calfseg.bench import BenchmarkConfig, BenchmarkOutcome

from .fakes import write_benchmark


@pytest.fixture(scope="module")
def fake_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder with 2 models x 3 losses x 2 seeds of finished fake runs."""
    return write_benchmark(tmp_path_factory.mktemp("bench"))


@pytest.fixture
def benchmark_configs(monkeypatch: pytest.MonkeyPatch) -> list[BenchmarkConfig]:
    """The configs ``calf benchmark`` hands to ``run_benchmark``, which trains nothing."""
    import calfseg.bench

    seen: list[BenchmarkConfig] = []

    def fake_run(config: BenchmarkConfig, **kwargs: Any) -> BenchmarkOutcome:
        seen.append(config)
        return BenchmarkOutcome(config.out, 0)

    monkeypatch.setattr(calfseg.bench, "run_benchmark", fake_run)
    return seen


@pytest.fixture(autouse=True)
def _no_thread_settings_from_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread policy lets a caller's OMP_NUM_THREADS win; the tests assert the policy's
    own choices, so they run as if the user had set none."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
