"""CALF runs log ``train_bce`` beside ``train_loss``: the BCE of the same training logits,
comparable across steps where CALF's own loss changes formula with its pick."""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from pathlib import Path

from calfseg.train import TrainConfig
from calfseg.train.loop import fit

# Every cut point at -1e9: any batch with a defined skewness picks log10 = BCE / ln 10.
ALWAYS_LOG10 = {"fisher": -1e9, "logit": -1e9, "centre": -1e9, "ln": -1e9, "log10": -1e9}


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_calf_run_logs_the_bce_of_its_logits(tiny_config: TrainConfig, tmp_path: Path) -> None:
    config = replace(
        tiny_config, loss="calf", loss_options={"thresholds": ALWAYS_LOG10}, batch_size=16
    )
    fit(config, tmp_path, progress=False)
    (row,) = _rows(tmp_path)
    assert float(row["branch/log10"]) == 1.0  # every step picked log10 ...
    # ... so the loss that trained is BCE / ln 10, and the logged BCE is ln 10 times it
    assert math.isclose(
        float(row["train_bce"]), float(row["train_loss"]) * math.log(10), rel_tol=1e-5
    )


def test_a_baseline_run_has_no_train_bce_column(tiny_config: TrainConfig, tmp_path: Path) -> None:
    fit(tiny_config, tmp_path, progress=False)
    assert "train_bce" not in _rows(tmp_path)[0]
