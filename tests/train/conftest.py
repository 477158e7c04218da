"""Fixtures of the training tests; registers the ``slow`` marker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from calfseg.train import TrainConfig

from .synthetic_cache import make_synthetic_cache


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: multi-process tests (deselect with -m 'not slow')")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: tiny models gain nothing from two, and on a loaded 2-core
    machine OpenMP threads spin-waiting for each other make steps many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic 32x32 cache, made once."""
    return make_synthetic_cache(tmp_path_factory.mktemp("train") / "cache")


@pytest.fixture
def tiny_config(cache: Path) -> TrainConfig:
    """Tiny U-Net, one epoch of 2 steps of 8 slices, on the CPU."""
    return TrainConfig.tiny(
        cache, epochs=1, max_steps=2, device="cpu", tensorboard=False, loss="bce"
    )
