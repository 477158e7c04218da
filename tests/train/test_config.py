"""TrainConfig: presets, JSON round trip, option checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from calfseg.train import TrainConfig


def test_paper_preset_has_the_papers_protocol():
    config = TrainConfig.paper("cache")
    assert (config.epochs, config.batch_size, config.lr, config.seed) == (20, 32, 1e-5, 12345)
    assert (config.optimizer, config.schedule, config.preset) == ("adam", "none", "paper")
    assert config.augment is False


def test_config_round_trips_through_json(tmp_path: Path):
    config = TrainConfig.tiny("cache", filters=["ratio=0.25"], loss_options={"grid": 2})
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert "calfseg_version" in path.read_text()
    assert TrainConfig.from_json(path) == config


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("model", "resnet", "valid names: unet, deeplabv3, fpn"),
        ("loss", "nope", "valid names: calf"),
        ("schedule", "step", "valid names: none, cosine"),
        ("epochs", 0, "epochs must be a positive integer"),
        ("lr", 0.0, "lr must be > 0"),
        ("grad_clip", -1.0, "grad_clip must be > 0"),
    ],
)
def test_bad_options_are_named(option: str, value: object, message: str):
    with pytest.raises(ValueError, match=message):
        TrainConfig(cache="cache", **{option: value})  # type: ignore[arg-type]


def test_unknown_keys_in_json_are_an_error():
    with pytest.raises(ValueError, match="unknown TrainConfig option"):
        TrainConfig.from_dict({"cache": "c", "learning_rate": 1})
