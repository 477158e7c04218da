"""Shared options declared once, "did you mean" for mistyped names, and the exit-code table
(calfseg.cli.options, calfseg.cli.errors, calfseg.errors)."""

from __future__ import annotations

import argparse
import difflib

import pytest

from calfseg.cli import build_parser, main
from calfseg.cli.errors import exit_code
from calfseg.cli.options import device_name, shard_value
from calfseg.errors import DataError, OptionError, UnknownChoiceError, check_choice, did_you_mean


def _usage(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    return capsys.readouterr().err


# -- did you mean ----------------------------------------------------------------------------


def test_did_you_mean_uses_difflib_ratio_of_at_least_0_6() -> None:
    # 'dise' ~ 'dice': 3 of 4 characters match each way, ratio 2*3/8 = 0.75 >= 0.6.
    assert difflib.SequenceMatcher(None, "dise", "dice").ratio() == 0.75
    assert did_you_mean("dise", ["bce", "dice"]) == " (did you mean 'dice'?)"
    # 'xyz' shares nothing with 'calf': no suggestion rather than a wild guess.
    assert did_you_mean("xyz", ["calf"]) == ""


def test_check_choice_names_the_value_the_suggestion_and_every_choice() -> None:
    assert check_choice("loss", "dice", ("bce", "dice")) == "dice"
    with pytest.raises(UnknownChoiceError) as caught:
        check_choice("loss", "dise", ("bce", "dice"))
    assert str(caught.value) == "unknown loss 'dise' (did you mean 'dice'?); valid names: bce, dice"
    assert isinstance(caught.value, ValueError)  # callers catching ValueError keep working
    assert caught.value.choices == ("bce", "dice")


def test_a_mistyped_subcommand_is_suggested(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage(capsys, "trian")
    assert "invalid choice: 'trian' (did you mean 'train'?)" in err and "benchmark" in err


def test_a_mistyped_option_is_suggested_by_its_command(capsys: pytest.CaptureFixture[str]):
    err = _usage(capsys, "train", "--data", "c", "--out", "r", "--epohcs", "3")
    assert "calf train: error: unrecognized arguments: --epohcs 3" in err
    assert "(did you mean --epochs?)" in err


def test_a_mistyped_choice_is_suggested(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage(capsys, "train", "--data", "c", "--out", "r", "--schedule", "cosin")
    assert "invalid choice: 'cosin' (did you mean 'cosine'?); choose from none, cosine" in err
    err = _usage(capsys, "benchmark", "--preset", "projet")
    assert "(did you mean 'project'?)" in err


def test_library_names_get_the_suggestion_too(capsys: pytest.CaptureFixture[str], tmp_path):
    from calfseg.losses import build_loss

    with pytest.raises(OptionError, match=r"unknown loss 'dise' \(did you mean 'dice'\?\)"):
        build_loss("dise")
    err = _usage(capsys, "benchmark", "--losses", "calf", "dise", "--out", str(tmp_path))
    assert "dise" in err


# -- shared options --------------------------------------------------------------------------


# Each command that has a shared option refuses the same bad value with the same words.
_NEEDS = {
    "train": ["--data", "c", "--out", "r"], "evaluate": ["m"], "predict": ["m", "i", "o"],
    "benchmark": [],
}  # fmt: skip
_SHARED = [
    (
        "--device",
        "cudda",
        "unknown device 'cudda' (did you mean 'cuda'?)",
        "train evaluate predict",
    ),
    ("--seed", "-1", "must be >= 0, got '-1'", "analyze prepare train"),
    ("--shard", "3/2", "shard K/N needs 1 <= K <= N, got 3/2", "prepare benchmark"),
    ("--preset", "tinyy", "invalid choice: 'tinyy'", "train benchmark"),
]


@pytest.mark.parametrize(
    ("option", "value", "message", "command"),
    [(o, v, m, c) for o, v, m, cs in _SHARED for c in cs.split()],
)
def test_shared_options_are_checked_alike_by_every_command(
    capsys: pytest.CaptureFixture[str], option: str, value: str, message: str, command: str
) -> None:
    err = _usage(capsys, command, *_NEEDS.get(command, ["x"]), option, value)
    assert f"calf {command}: error: argument {option}: {message}" in err


@pytest.mark.parametrize("command", ["analyze", "prepare", "train", "evaluate", "benchmark"])
def test_every_long_running_command_takes_no_progress(command: str) -> None:
    args = build_parser().parse_args([command, *_NEEDS.get(command, ["x"]), "--no-progress"])
    assert args.no_progress is True


def test_device_names_are_checked_by_form() -> None:
    assert [device_name(d) for d in ("auto", "CPU", "cuda", "cuda:1", "mps")] == [
        "auto", "cpu", "cuda", "cuda:1", "mps"
    ]  # fmt: skip
    with pytest.raises(argparse.ArgumentTypeError, match=r"did you mean 'cuda'"):
        device_name("cudda")
    with pytest.raises(argparse.ArgumentTypeError, match="cuda:N"):
        device_name("cuda:x")


@pytest.mark.parametrize("text", ["0/2", "3/2", "1-2", "a/b", ""])
def test_bad_shards_are_usage_errors(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        shard_value(text)


def test_shards_parse_k_of_n() -> None:
    assert shard_value("2/5") == (2, 5)


def test_merge_refuses_every_option_the_shards_decide_even_at_its_default() -> None:
    from calfseg.cli.prepare import _options_given_with_merge

    args = build_parser().parse_args(["prepare", "--merge", "c", "--size", "64", "--seed", "0"])
    assert _options_given_with_merge(args) == ["--size", "--seed"]
    assert _options_given_with_merge(build_parser().parse_args(["prepare", "--merge", "c"])) == []


# -- the exit-code table ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (OptionError("bad"), 2),
        (UnknownChoiceError("bad", "x", ("y",)), 2),
        (DataError("bad"), 1),
        (FileNotFoundError(2, "No such file", "x"), 1),
        (ValueError("the data disagree"), 1),
        (TypeError("a bug"), 1),
    ],
)
def test_exit_code_table(err: BaseException, code: int) -> None:
    assert exit_code(err) == code


def test_library_errors_have_their_kind() -> None:
    from calfseg.bench.runner import BenchmarkError
    from calfseg.cli.common import UsageError
    from calfseg.data.cache import CacheError
    from calfseg.data.preparation.pipeline import PrepareError
    from calfseg.train.build import RunSetupError
    from calfseg.train.checkpoint_file import CheckpointError, CheckpointFileError

    for failure in (CacheError, CheckpointError, CheckpointFileError, RunSetupError,
                    PrepareError, BenchmarkError):  # fmt: skip
        assert exit_code(failure("x")) == 1, failure
    assert exit_code(UsageError("x")) == 2
