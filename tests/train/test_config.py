"""TrainConfig: presets, JSON round trip, option checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from calfseg.train import TrainConfig

# The authors' protocol, item by item, written out from docs/method.md section 5 and issue 7.
AUTHORS_PROTOCOL = {
    "preset": "authors",  # their hand-written models
    "split": "paper-slices",  # ~10 % of every patient's slices per modality to test
    "val_split": None,  # no validation set: the last epoch is kept
    "sync_bn": True,  # SyncBatchNorm under DDP
    "seed": 12345,
    "epochs": 20,
    "batch_size": 32,
    "lr": 1e-5,
    "weight_decay": 0.0,
    "optimizer": "adam",
    "schedule": "none",  # constant learning rate
    "augment": False,
    "filters": [],
    "amp": "none",
    "grad_clip": None,
    "output_prior": False,  # their models start at their constructors' bias
}
AUTHORS_CALF = {"area": "contour", "numerics": "paper", "sync": False}
EIGHT_LOSSES = ("calf", "calf-region", "bce", "dice", "focal", "tversky", "iou", "combo")


@pytest.mark.parametrize("loss", EIGHT_LOSSES)
def test_paper_preset_is_the_authors_protocol_item_by_item(loss: str):
    config = TrainConfig.paper("cache", loss=loss)
    assert {name: getattr(config, name) for name in AUTHORS_PROTOCOL} == AUTHORS_PROTOCOL
    want_options = AUTHORS_CALF if loss.startswith("calf") else {}
    assert config.loss_options == want_options


def test_paper_preset_keeps_its_protocol_under_the_benchmarks_overrides():
    config = TrainConfig.paper(
        "cache", model="fpn", loss="calf", seed=12345, loss_options={"grid": 2, "sync": True}
    )
    assert config.loss_options == {**AUTHORS_CALF, "grid": 2, "sync": True}
    assert (config.model, config.preset, config.split) == ("fpn", "authors", "paper-slices")


def test_the_benchmarks_paper_preset_is_the_same_protocol():
    from calfseg.bench import BENCHMARK_PRESETS, runs
    from calfseg.bench.runner import make_train_config, train_options

    bench = BENCHMARK_PRESETS["paper"]
    assert bench.losses == EIGHT_LOSSES and bench.seeds == (12345,)
    assert (bench.size, bench.model_preset, bench.train_preset) == (256, "authors", "paper")
    for spec in runs(bench):
        config = make_train_config(train_options(bench, spec), preset=bench.train_preset)
        assert {name: getattr(config, name) for name in AUTHORS_PROTOCOL} == AUTHORS_PROTOCOL
        assert config.loss_options == (AUTHORS_CALF if spec.loss.startswith("calf") else {})


def test_project_preset_is_the_project_protocol_at_paper_sizes():
    config = TrainConfig.project("cache")
    assert (config.epochs, config.batch_size, config.lr, config.seed) == (20, 32, 1e-5, 12345)
    assert (config.optimizer, config.schedule, config.preset) == ("adam", "none", "paper")
    assert (config.split, config.val_split, config.augment) == ("cache", "val", False)
    assert config.loss_options == {}


def test_presets_by_name_and_the_paper_split_needs_no_validation():
    assert TrainConfig.from_preset("tiny", "c") == TrainConfig.tiny("c")
    with pytest.raises(ValueError, match="valid names: project, paper, cpu, tiny"):
        TrainConfig.from_preset("authors", "c")
    with pytest.raises(ValueError, match="val_split=None"):
        TrainConfig(cache="c", split="paper-slices")
    with pytest.raises(ValueError, match="valid names: cache, paper-slices"):
        TrainConfig(cache="c", split="slices")


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
        ("patience", 0, "patience must be a positive integer"),
        ("min_delta", -0.01, r"min_delta must be a number in \[0, 1\)"),
        ("min_delta", float("nan"), "min_delta must be a number"),
        ("warmup_steps", -1, "warmup_steps must be an integer >= 0"),
    ],
)
def test_bad_options_are_named(option: str, value: object, message: str):
    with pytest.raises(ValueError, match=message):
        TrainConfig(cache="cache", **{option: value})  # type: ignore[arg-type]


def test_unknown_keys_in_json_are_an_error():
    with pytest.raises(ValueError, match="unknown TrainConfig option"):
        TrainConfig.from_dict({"cache": "c", "learning_rate": 1})


def test_project_and_tiny_stop_early_and_the_paper_runs_its_epochs():
    assert TrainConfig.project("c").patience == 5 and TrainConfig.tiny("c").patience == 5
    assert TrainConfig.paper("c").patience is None  # the paper: a fixed 20 epochs
    assert TrainConfig("c").patience is None  # no preset: no early stopping
    for config in (TrainConfig.project("c"), TrainConfig.tiny("c"), TrainConfig.paper("c")):
        assert (config.min_delta, config.warmup_steps) == (0.001, 0)
    assert TrainConfig.tiny("c", patience=2).patience == 2
    assert TrainConfig.tiny("c", val_split=None).patience is None  # nothing to stop on


def test_patience_needs_a_validation_split():
    with pytest.raises(ValueError, match=r"patience=3 .*val_split is None.*patience=None"):
        TrainConfig(cache="c", patience=3, val_split=None)


def test_the_cpu_preset_is_the_measured_cpu_recipe():
    # docs/train.md, "The CPU recipe": a fixed budget annealed to 0, augmentation, the
    # output layer at the prior, convergence judged against the equivalence margin
    config = TrainConfig.cpu("c")
    assert (config.preset, config.epochs, config.batch_size, config.lr) == ("tiny", 22, 16, 3e-3)
    assert (config.schedule, config.warmup_steps) == ("cosine", 50)
    assert (config.patience, config.min_delta, config.val_split) == (None, 0.01, "val")
    assert (config.augment, config.output_prior, config.channels_last) == (True, True, True)
    assert TrainConfig.from_preset("cpu", "c") == config
    assert TrainConfig.cpu("c", patience=4).patience == 4  # overrides still apply
