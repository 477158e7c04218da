"""`calf benchmark --loss-option [LOSS:]KEY=VALUE`: parsing, which losses get an option,
the errors, and that each run's config.json records the options (no training: a fake
train function writes the run folder from the real TrainConfig)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from calfseg.bench import BenchmarkConfig, run_benchmark
from calfseg.bench.grid import resolve_loss_options
from calfseg.bench.runner import make_train_config
from calfseg.cli import main
from calfseg.cli.common import EXIT_USAGE, loss_option, scoped_loss_option

from .fakes import write_run


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("calf:area=contour", ("calf", "area", "contour")),
        ("numerics=paper", (None, "numerics", "paper")),
        ("calf-region:grid=2", ("calf-region", "grid", 2)),
        ("sync=false", (None, "sync", False)),
        ('calf:thresholds={"kurtosis": 0.5}', ("calf", "thresholds", {"kurtosis": 0.5})),
        ("tversky:smooth=1e-5", ("tversky", "smooth", 1e-5)),
    ],
)
def test_scoped_options_parse_the_loss_the_key_and_a_json_or_text_value(text, parsed):
    assert scoped_loss_option(text) == parsed


@pytest.mark.parametrize("bad", ["calf", ":area=contour", "calf:=1", "=1"])
def test_malformed_options_are_argument_errors(bad):
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        scoped_loss_option(bad)


def test_calf_train_and_calf_benchmark_share_one_parser():
    from calfseg.cli import train

    assert train.loss_option is loss_option
    assert loss_option("grid=2") == ("grid", 2) and loss_option("area=contour")[1] == "contour"


GRID = ("calf", "calf-region", "bce", "tversky")


def test_an_option_without_a_loss_goes_to_every_loss_that_takes_it():
    options = resolve_loss_options(GRID, [(None, "area", "contour"), (None, "smooth", 1.0)])
    assert options == {
        "calf": {"area": "contour"},
        "calf-region": {"area": "contour"},
        "tversky": {"smooth": 1.0},
    }


def test_an_option_for_one_loss_wins_over_one_for_all_whatever_the_order():
    given = [("calf", "sync", True), (None, "sync", False), (None, "validate", True)]
    options = resolve_loss_options(GRID, given)
    assert options["calf"] == {"sync": True, "validate": True}
    assert options["calf-region"] == {"sync": False, "validate": True}
    assert options["bce"] == {"validate": True}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([(None, "are", "contour")], "no loss of the grid .* takes 'are' \\(did you mean 'area'"),
        ([("calff", "area", 1)], "unknown loss 'calff' \\(did you mean 'calf'\\?\\); valid"),
        ([("calf", "gird", 2)], "has no option 'gird'.*its options"),
        ([("calf-region", "grid", 2)], None),
        ([("dice", "smooth", 1)], "'dice' is not a loss of this benchmark"),
    ],
)
def test_bad_options_name_what_exists(given, message):
    if message is None:
        assert resolve_loss_options(GRID, given) == {"calf-region": {"grid": 2}}
        return
    with pytest.raises(ValueError, match=message):
        resolve_loss_options(GRID, given)


def test_the_cli_reports_a_bad_option_as_a_usage_error_and_trains_nothing(tmp_path, capsys):
    argv = ["benchmark", "--losses", "calf", "bce", "--out", str(tmp_path)]
    code = main([*argv, "--loss-option", "calf:are=contour"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "did you mean 'area'" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [("calf:numerics=bogus", "unknown numerics 'bogus'"), ("tversky:fp_weight=-3", "must be >= 0")],
)
def test_a_bad_option_value_is_a_usage_error_before_any_run_trains(
    tmp_path, capsys, option, message
):
    argv = ["benchmark", "--losses", "calf", "tversky", "--out", str(tmp_path)]
    code = main([*argv, "--loss-option", option])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and message in err, err
    assert not (tmp_path / "runs").exists()


def test_benchmark_help_shows_loss_option(capsys):
    try:
        code = main(["benchmark", "--help"])
    except SystemExit as exit_:  # argparse's own exit, when main lets it through
        code = exit_.code
    assert code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--loss-option" in out and "[LOSS:]KEY=VALUE" in out and "project protocol" in out


def test_the_cli_passes_the_options_to_the_benchmark(tmp_path, benchmark_configs):
    seen = benchmark_configs
    argv = ["benchmark", "--losses", "calf", "bce", "--out", str(tmp_path)]
    argv += ["--loss-option", "area=contour", "--loss-option", "bce:validate=true"]
    assert main(argv) == 0
    assert seen[0].loss_options == {"calf": {"area": "contour"}, "bce": {"validate": True}}


def _trainer(calls: list[Any]):
    """A train function that writes a finished fake run and the real config.json."""

    def train(config: Any, run_dir: Path, **kwargs: Any) -> dict[str, Any]:
        calls.append(config)
        write_run(Path(run_dir).parents[1], config.model, config.loss, config.seed)
        (Path(run_dir) / "config.json").write_text(config.to_json())
        return {}

    return train


@pytest.mark.parametrize("preset", ["tiny", "paper"])
@pytest.mark.slow
def test_each_runs_config_json_holds_its_options_and_the_report_shows_them(tmp_path, preset):
    options = resolve_loss_options(("bce", "calf"), [(None, "validate", True)])
    config = BenchmarkConfig(
        out=tmp_path, models=("unet",), losses=("bce", "calf"), seeds=(0,), epochs=1,
        loss_options=options, train_preset=preset,
    )  # fmt: skip
    calls: list[Any] = []
    outcome = run_benchmark(
        config, train_fn=_trainer(calls), progress=False, prepare=False,
        make_config=lambda o: make_train_config(o, preset=preset),
    )  # fmt: skip
    assert outcome.ok, outcome.failed
    stored = {
        loss: json.loads((tmp_path / "runs" / f"unet-{loss}-s0" / "config.json").read_text())
        for loss in ("bce", "calf")
    }
    assert stored["bce"]["loss_options"] == {"validate": True}
    paper_calf = {"area": "contour", "numerics": "paper", "sync": False}
    want_calf = {**(paper_calf if preset == "paper" else {}), "validate": True}
    assert stored["calf"]["loss_options"] == want_calf
    summary = (tmp_path / "summary.md").read_text()
    assert "Loss options:" in summary and "validate=true" in summary


@pytest.mark.parametrize(
    ("names", "message"),
    [(["--losses", "cal"], "unknown loss 'cal' (did you mean 'calf'?)"),
     (["--models", "unte"], "unknown model 'unte' (did you mean 'unet'?)")],
)  # fmt: skip
def test_unknown_grid_names_get_did_you_mean(tmp_path, capsys, names, message):
    code = main(["benchmark", *names, "--out", str(tmp_path)])
    assert code == EXIT_USAGE and message in capsys.readouterr().err
