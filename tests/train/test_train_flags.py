"""`calf train` flags of early stopping and the schedule: --patience, --min-delta,
--warmup-steps, --schedule, and what --no-val does to a preset's patience."""

from __future__ import annotations

import re

import pytest

from calfseg.cli import build_parser, main
from calfseg.cli.common import EXIT_USAGE
from calfseg.cli.train import make_config, stop_line


def _config(*flags: str):
    args = build_parser().parse_args(["train", "--data", "cache", "--out", "run", *flags])
    return make_config(args)


def test_presets_give_their_patience_and_flags_override_it():
    assert _config("--preset", "tiny").patience == 5
    assert _config("--preset", "project").patience == 5
    assert _config("--preset", "paper").patience is None  # the paper ran a fixed 20 epochs
    config = _config(
        "--preset", "tiny", "--patience", "3", "--min-delta", "0.01", "--warmup-steps", "40",
        "--schedule", "cosine",
    )  # fmt: skip
    assert (config.patience, config.min_delta) == (3, 0.01)
    assert (config.warmup_steps, config.schedule) == (40, "cosine")
    assert _config("--preset", "tiny", "--patience", "none").patience is None
    defaults = _config("--preset", "tiny")
    assert (defaults.min_delta, defaults.warmup_steps, defaults.schedule) == (0.001, 0, "none")


def test_min_epochs_defaults_to_none_and_the_flag_sets_it():
    # no preset stops early before a minimum: the cpu recipe runs its whole annealed budget
    assert _config("--preset", "cpu").min_epochs == 0
    assert _config("--preset", "cpu").patience is None
    assert _config("--preset", "tiny").min_epochs == 0
    assert _config("--preset", "cpu", "--patience", "4", "--min-epochs", "10").min_epochs == 10
    assert _config("--preset", "cpu", "--min-epochs", "4").min_epochs == 4
    assert _config("--preset", "project", "--min-epochs", "0").min_epochs == 0


def test_no_val_turns_the_presets_patience_off_but_not_an_explicit_one():
    assert _config("--preset", "tiny", "--no-val").patience is None
    with pytest.raises(ValueError, match=r"patience=3 .*val_split is None.*--patience none"):
        _config("--preset", "tiny", "--no-val", "--patience", "3")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--patience", "0"], "argument --patience: must be a positive integer"),
        (["--patience", "soon"], "--patience"),
        (["--min-delta", "-0.1"], r"argument --min-delta: must be in \[0, 1\)"),
        (["--min-delta", "x"], "argument --min-delta: must be a number"),
        (["--warmup-steps", "-1"], "argument --warmup-steps: must be >= 0"),
        (["--min-epochs", "-2"], "argument --min-epochs: must be >= 0"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_flag(capsys, flags: list[str], message: str):
    assert main(["train", "--data", "cache", "--out", "run", *flags]) == EXIT_USAGE
    assert re.search(message, capsys.readouterr().err)


def test_the_closing_line_says_how_the_run_ended():
    stopped = {
        "epochs": 20, "epochs_run": 9, "best_epoch": 4, "best_val_case_dice": 0.71234,
        "stop_reason": "patience", "converged": True,
    }  # fmt: skip
    assert stop_line(stopped) == (
        "best epoch 4 of 9 run (val case Dice 0.7123); stopped early by patience after 9 of "
        "20 planned epochs, converged"
    )
    budget = {**stopped, "epochs_run": 20, "stop_reason": "budget", "converged": False}
    assert stop_line(budget).endswith("the budget of 20 epochs ran out, not converged")


def test_flags_are_in_the_help(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in (
        "--patience N",
        "--min-delta X",
        "--min-epochs N",
        "--warmup-steps N",
        "--schedule",
    ):
        assert flag in text
