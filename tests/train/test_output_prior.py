"""The output layer's bias at the foreground prior (Lin et al. 2017): the layer found in
every model, the bias by hand, and a run that starts at its training split's prior, counted
from the cache's index.csv with the csv module."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from calfseg.models import build_model, output_layer, set_output_prior
from calfseg.train import TrainConfig
from calfseg.train import distributed as D
from calfseg.train.state import start_training


@pytest.mark.parametrize("name", ["unet", "deeplabv3", "fpn"])
@pytest.mark.parametrize("preset", ["tiny", "authors"])
def test_the_output_layer_is_the_last_convolution_and_maps_to_the_logits(name, preset) -> None:
    torch.manual_seed(0)
    model = build_model(name, preset=preset, in_channels=1).eval()
    layer = output_layer(model)
    old = float(layer.bias.detach())
    image = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(image)
        set_output_prior(model, 0.025)
        after = model(image)
    # the bias enters every logit once (the upsampling after the layer keeps constants)
    shift = math.log(0.025 / 0.975) - old
    assert layer.out_channels == 1
    torch.testing.assert_close(after - before, torch.full_like(after, shift), atol=1e-4, rtol=0)


def test_the_bias_is_the_log_odds_of_the_prior_and_the_weights_stay() -> None:
    torch.manual_seed(1)
    model = build_model("unet", preset="tiny", in_channels=1)
    weights = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("0.bias")}
    bias = set_output_prior(model, 0.2)
    assert bias == pytest.approx(math.log(0.25))  # log(0.2 / 0.8), by hand
    assert float(output_layer(model).bias.detach()) == pytest.approx(math.log(0.25))
    for key, value in weights.items():
        assert torch.equal(model.state_dict()[key], value), key
    assert set_output_prior(model, 0.0) == pytest.approx(math.log(1e-6 / (1 - 1e-6)))
    assert set_output_prior(model, 1.0) == pytest.approx(math.log((1 - 1e-6) / 1e-6))
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="prior"):
            set_output_prior(model, bad)


def _train_prior(cache: Path) -> float:
    """Foreground pixels over all pixels of the train split, from index.csv and meta."""
    import json

    size = json.loads((cache / "meta.json").read_text())["size"]
    with (cache / "index.csv").open(newline="") as handle:
        areas = [float(r["area"]) for r in csv.DictReader(handle) if r["split"] == "train"]
    return sum(areas) / (len(areas) * size[0] * size[1])


def test_a_run_starts_at_its_training_splits_prior_unless_told_not_to(cache: Path) -> None:
    ctx = D.setup("cpu")
    config = TrainConfig.tiny(cache, device="cpu", tensorboard=False, loss="bce")
    _, state = start_training(config, ctx)
    prior = _train_prior(cache)
    assert 0 < prior < 0.5
    assert float(output_layer(state.model).bias.detach()) == pytest.approx(
        math.log(prior / (1 - prior))
    )
    assert state.model.segmentation_head[0].weight.is_contiguous(  # channels-last by default
        memory_format=torch.channels_last
    )
    plain = TrainConfig.tiny(cache, device="cpu", tensorboard=False, loss="bce",
                             output_prior=False, channels_last=False)  # fmt: skip
    _, unset = start_training(plain, ctx)
    # same seed, same weights; the bias is the constructor's, not the prior
    assert float(output_layer(unset.model).bias.detach()) != pytest.approx(
        math.log(prior / (1 - prior))
    )
    torch.testing.assert_close(
        output_layer(unset.model).weight, output_layer(state.model).weight.contiguous()
    )
