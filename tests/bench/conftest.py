from __future__ import annotations

from pathlib import Path

import pytest

from .fakes import write_benchmark


@pytest.fixture(scope="module")
def fake_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder with 2 models x 3 losses x 2 seeds of finished fake runs."""
    return write_benchmark(tmp_path_factory.mktemp("bench"))
