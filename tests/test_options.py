"""Options declared once (calfseg.options): the command line of ``calf analyze`` is
generated from AnalyzeOptions, so the Python API and the command refuse the same values
with the same message, and a default or a help text is written in one place."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from calfseg.analysis import AnalyzeOptions, analyze
from calfseg.cli import build_parser, main
from calfseg.errors import OptionError
from calfseg.options import add_options, flag, given_options, option, options_from, positive_int


@dataclasses.dataclass(frozen=True)
class _Made:
    count: int = option(3, "how many", parse=positive_int, metavar="N", group="numbers")
    names: list[str] | None = option(None, "names", parse=lambda t: t.split(","), repeat=True,
                                     name="name")  # fmt: skip
    loud: bool = option(False, "say it loudly")
    hidden: float = 0.5  # no flag: Python only


def test_a_parser_is_generated_from_the_fields() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser, _Made)
    assert parser.parse_args([]) == argparse.Namespace(count=3, names=None, loud=False)
    args = parser.parse_args(["--count", "7", "--name", "a,b", "--name", "c", "--loud"])
    made = options_from(_Made, args, hidden=2.0)
    assert made == _Made(count=7, names=["a", "b", "c"], loud=True, hidden=2.0)
    assert flag(_Made, "names") == "--name" and flag(_Made, "count") == "--count"
    text = parser.format_help()
    assert "numbers:" in text and "--count N" in text and "say it loudly" in text
    assert "--hidden" not in text
    with pytest.raises(SystemExit):
        parser.parse_args(["--count", "0"])  # the parse function refuses it


def test_every_analyze_option_is_on_the_command_line_with_its_default() -> None:
    args = build_parser().parse_args(["analyze", "masks"])
    for field in dataclasses.fields(AnalyzeOptions):
        if "flag" in field.metadata:
            assert getattr(args, field.name) == field.default, field.name
    assert options_from(AnalyzeOptions, args) == AnalyzeOptions()
    labelled = build_parser().parse_args(["analyze", "m", "--label", "1,2", "--label", "4"])
    assert options_from(AnalyzeOptions, labelled).labels == [1, 2, 4]


@pytest.mark.parametrize(
    ("keywords", "argv", "message"),
    [
        ({"slice_axis": 5}, ["--slice-axis", "5"], "--slice-axis must be in -3..2, got 5"),
        ({"area": "contour", "per_volume": True}, ["--area", "contour", "--per-volume"],
         "--area contour measures 2D slices; drop --per-volume"),
        ({"layout": "nope"}, ["--layout", "nope"], "unknown --layout 'nope'"),
        ({"split": "train"}, ["--split", "train"], "--split applies to a cache folder"),
    ],
)  # fmt: skip
def test_the_api_and_the_command_refuse_the_same_with_the_same_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keywords, argv, message
) -> None:
    masks = tmp_path / "m.npy"
    np.save(masks, np.ones((3, 3, 3), dtype=np.uint8))
    with pytest.raises(OptionError) as raised:
        analyze(masks, **keywords)
    assert message in str(raised.value)
    assert main(["analyze", str(masks), *argv]) == 2
    assert f"calf analyze: error: {raised.value}" in capsys.readouterr().err


@pytest.mark.slow
def test_calf_help_imports_neither_torch_nor_numpy() -> None:
    # the analyze options import torch; its arguments are added only when it is used
    code = (
        "import sys\n"
        "from calfseg.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_calf_train_takes_train_config_fields_and_keeps_only_what_was_given() -> None:
    from calfseg.train import TrainConfig

    base = ["train", "--data", "c", "--out", "r"]
    assert given_options(TrainConfig, build_parser().parse_args(base)) == {}  # the preset's
    argv = [*base, "--lr", "0.01", "--patience", "none", "--filter", "drop-empty", "--filter",
            "ratio=0.25", "--amp", "--no-augment", "--sync-bn", "--device", "CPU"]  # fmt: skip
    assert given_options(TrainConfig, build_parser().parse_args(argv)) == {
        "lr": 0.01, "patience": None, "filters": ["drop-empty", "ratio=0.25"], "amp": "bf16",
        "augment": False, "sync_bn": True, "device": "cpu",
    }  # fmt: skip
    parser = build_parser()
    parser.parse_args(base)  # the train subparser gets its options on first use
    (train,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    dests = {a.dest for a in train.choices["train"]._actions}
    declared = {f.name for f in dataclasses.fields(TrainConfig) if "flag" in f.metadata}
    assert len(declared) >= 20 and declared <= dests


def test_calf_benchmark_takes_benchmark_config_and_execution_fields() -> None:
    from calfseg.bench.executors.dispatch import Execution
    from calfseg.bench.grid import BenchmarkConfig

    args = build_parser().parse_args(["benchmark"])
    assert given_options(BenchmarkConfig, args) == {}  # the preset's
    assert given_options(Execution, args) == {}  # calf benchmark: --jobs auto
    argv = ["benchmark", "--losses", "bce", "calf", "--folds", "3", "--shard", "1/2",
            "--jobs", "auto", "--no-thread-policy", "--threads", "2"]  # fmt: skip
    args = build_parser().parse_args(argv)
    assert given_options(BenchmarkConfig, args) == {
        "losses": ("bce", "calf"), "folds": 3, "shard": (1, 2),
    }  # fmt: skip
    assert Execution(**given_options(Execution, args)) == Execution(
        jobs=None, thread_policy=False, threads=2
    )
