from __future__ import annotations

from pathlib import Path

import pytest

from .common import write_source


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """Three tiny cases (c0, c1, c2) of 12 x 10 x 6 voxels, two modalities."""
    return write_source(tmp_path / "src")
