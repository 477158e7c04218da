"""Shrink the network nnU-Net planned for a tiny 2D dataset, so that one epoch of its 250
iterations runs in seconds on a CPU. Only the plans' numbers change (the plans file is JSON
that nnU-Net users may edit); planning, preprocessing and training stay nnU-Net's."""

from __future__ import annotations

import json
from pathlib import Path

STAGES = 3
FEATURES = [4, 8, 16]


def shrink_2d_plans(preprocessed: Path, *, batch_size: int, plans: str = "nnUNetPlans") -> None:
    """Three stages of 4, 8 and 16 features, one convolution each, ``batch_size``, in the
    ``2d`` configuration of ``preprocessed/<plans>.json``."""
    path = preprocessed / f"{plans}.json"
    data = json.loads(path.read_text())
    config = data["configurations"]["2d"]
    config["batch_size"] = batch_size
    arch = config["architecture"]["arch_kwargs"]
    arch["n_stages"] = STAGES
    arch["features_per_stage"] = FEATURES
    arch["kernel_sizes"] = [[3, 3]] * STAGES
    arch["strides"] = [[1, 1]] + [[2, 2]] * (STAGES - 1)
    arch["n_conv_per_stage"] = [1] * STAGES
    arch["n_conv_per_stage_decoder"] = [1] * (STAGES - 1)
    path.write_text(json.dumps(data, indent=1))
