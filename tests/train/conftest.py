"""Fixtures of the training tests: one thread, the shared synthetic cache, a tiny config."""

from __future__ import annotations

from pathlib import Path

import pytest

from calfseg.train import TrainConfig


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every training test runs on one thread (tests/conftest.py says why)."""


@pytest.fixture(scope="session")
def cache(synthetic_cache: Path) -> Path:
    return synthetic_cache


@pytest.fixture
def tiny_config(cache: Path) -> TrainConfig:
    """Tiny U-Net, one epoch of 2 steps of 8 slices, on the CPU."""
    return TrainConfig.tiny(
        cache, epochs=1, max_steps=2, device="cpu", tensorboard=False, loss="bce"
    )
