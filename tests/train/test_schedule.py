"""The learning rate of each step: linear warmup, then constant or cosine per step, checked
against the closed form written out here and against the rates a run actually used."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from calfseg.train import TrainConfig, fit, load_checkpoint
from calfseg.train.schedule import learning_rate


def closed_form(step: int, base: float, warmup: int, total: int, cosine: bool) -> float:
    """lr * (s + 1) / W during the warmup; then lr, or lr * (1 + cos(pi (s - W) / (T - W))) / 2."""
    if step < warmup:
        return base * (step + 1) / warmup
    if not cosine:
        return base
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


@pytest.mark.parametrize("step", [0, 1, 3, 4, 5, 12, 19, 20])
@pytest.mark.parametrize("schedule", ["none", "cosine"])
def test_rate_of_a_step_is_the_closed_form(step: int, schedule: str):
    got = learning_rate(step, base_lr=1e-3, schedule=schedule, warmup_steps=4, total_steps=20)
    want = closed_form(step, 1e-3, 4, 20, schedule == "cosine")
    assert got == pytest.approx(want, rel=1e-12, abs=1e-18)


def test_landmarks_of_the_schedule():
    def rate(step: int) -> float:
        return learning_rate(step, base_lr=1.0, schedule="cosine", warmup_steps=4, total_steps=20)

    assert rate(0) == 0.25 and rate(3) == 1.0  # warmup: 1/4, ..., 4/4
    assert rate(4) == 1.0 and rate(12) == pytest.approx(0.5) and rate(20) == pytest.approx(0.0)
    assert rate(25) == pytest.approx(0.0)  # past the plan: the end's rate
    flat = learning_rate(7, base_lr=0.1, schedule="cosine", warmup_steps=0, total_steps=8)
    assert flat == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 7 / 8)))


def test_a_run_uses_the_rate_of_each_step(tiny_config: TrainConfig, tmp_path: Path):
    # 3 epochs x 2 steps = 6 planned steps, 2 of warmup: the epochs start at steps 0, 2, 4.
    base = 1e-3
    config = replace(tiny_config, epochs=3, max_steps=2, lr=base, schedule="cosine", warmup_steps=2)
    fit(config, tmp_path, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    logged = [row["lr"] for row in rows]
    assert logged == pytest.approx([closed_form(s, base, 2, 6, True) for s in (0, 2, 4)])
    # the optimizer keeps the rate set for the last step it took (step 5)
    optimizer = load_checkpoint(tmp_path / "last.pt")["optimizer"]
    assert optimizer["param_groups"][0]["lr"] == pytest.approx(closed_form(5, base, 2, 6, True))
