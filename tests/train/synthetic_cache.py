"""The synthetic 32x32 cache the training tests share (8 cases: 6 train, 1 val, 1 test)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from calfseg.cli import main


def make_synthetic_cache(out: Path, *, size: int = 32, cases: int = 8) -> Path:
    """``calf prepare --synthetic paper-like`` at ``size`` into ``out``."""
    argv = ["prepare", "--synthetic", "paper-like", "--out", str(out), "--size", str(size)]
    argv += ["--cases", str(cases), "--no-progress", "--workers", "1"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv)
    assert code == 0, f"calf prepare failed with exit code {code}"
    return out
