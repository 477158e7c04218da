"""The synthetic 32x32 cache the training tests share (8 cases: 6 train, 1 val, 1 test)."""

from __future__ import annotations

from pathlib import Path

from calfseg.data import prepare


def make_synthetic_cache(out: Path, *, size: int = 32, cases: int = 8) -> Path:
    """The ``paper-like`` synthetic preset at ``size`` prepared into ``out`` (what
    ``calf prepare --synthetic paper-like --size SIZE --cases CASES`` writes)."""
    report = prepare(None, out, synthetic="paper-like", size=size, cases=cases)
    assert report.status in ("written", "up-to-date"), report.status
    return out
