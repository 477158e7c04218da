"""A training run accepts the ``authors`` model preset end to end: the config validates,
the run trains, and the checkpoint reloads into the same architecture for evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from calfseg.models import count_parameters
from calfseg.train import TrainConfig
from calfseg.train.run import train_run
from calfseg.train.trained_model import load_trained_model


@pytest.fixture(scope="module")
def cache(synthetic_cache: Path) -> Path:
    return synthetic_cache


@pytest.mark.slow
def test_a_run_trains_and_reloads_the_authors_deeplabv3(cache, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = TrainConfig.tiny(
            cache,
            model="deeplabv3",
            preset="authors",
            epochs=1,
            max_steps=1,
            device="cpu",
            tensorboard=False,
            loss="tversky",
        )
        result = train_run(config, tmp_path / "run", progress=False)
    finally:
        torch.set_num_threads(before)
    assert result["results"] is not None
    model = load_trained_model(tmp_path / "run" / "last.pt", device="cpu").model
    assert type(model).__name__ == "AuthorsDeepLabV3"
    assert count_parameters(model) == 14_502_209


def test_config_rejects_an_encoder_with_the_authors_preset(cache):
    with pytest.raises(ValueError, match="encoder='resnet18' does not apply to preset 'authors'"):
        TrainConfig.tiny(cache, preset="authors", encoder="resnet18")
