"""One exit-code contract for every subcommand (docs/cli.md): a usage error exits 2; a
damaged cache, a corrupt checkpoint or a missing input exits 1 with a message that names
the file; no traceback either way."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from calfseg.cli import COMMANDS, main

from ..train.synthetic_cache import make_synthetic_cache

USAGE, FAILURE = 2, 1  # written out: the contract, not the constants under test


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread: None) -> None:
    """One intra-op thread (tests/conftest.py says why)."""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good cache, a damaged copy (index.csv one row short of meta.json's count), a trained
    run, a corrupt checkpoint, an input image and a benchmark folder with a corrupt run."""
    root = tmp_path_factory.mktemp("exit_codes")
    cache = make_synthetic_cache(root / "cache", size=32, cases=4)
    damaged = root / "damaged"
    shutil.copytree(cache, damaged)
    rows = (cache / "index.csv").read_text().splitlines(keepends=True)
    (damaged / "index.csv").write_text("".join(rows[:-1]))
    run = root / "run"
    argv = ["train", "--data", str(cache), "--out", str(run), "--preset", "tiny"]
    argv += ["--epochs", "1", "--max-steps", "1", "--no-progress", "--device", "cpu"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0
    corrupt = root / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    image = root / "in.png"
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(image)
    bench = root / "bench"
    from ..bench.fakes import write_run

    for loss in ("bce", "calf"):
        for seed in (0, 1):
            write_run(bench, "unet", loss, seed)
    broken = bench / "runs" / "unet-bce-s0" / "eval_test.json"
    broken.write_text('{"dice/per')
    return {
        "cache": cache, "damaged": damaged, "damaged_index": damaged / "index.csv",
        "run": run, "best": run / "best.pt", "corrupt": corrupt, "image": image,
        "bench": bench, "broken": broken, "missing": root / "no-such-thing", "root": root,
    }  # fmt: skip


# (command, argv with {name} placeholders for the files above, the code, a file the message
# names ({name}, or None for a usage error, whose message names the option instead)).
CASES: list[tuple[str, list[str], int, str | None]] = [
    # analyze
    ("analyze", ["{cache}", "--area", "contour", "--per-volume"], USAGE, None),
    ("analyze", ["{cache}", "--seed", "-1"], USAGE, None),
    ("analyze", ["{damaged}"], FAILURE, "{damaged_index}"),
    ("analyze", ["{missing}"], FAILURE, "{missing}"),
    # prepare
    ("prepare", ["--synthetic", "paper-like", "--out", "{root}/p", "--shard", "3/2"], USAGE, None),
    ("prepare", ["--synthetic", "papr-like", "--out", "{root}/p"], USAGE, None),
    ("prepare", ["{missing}", "--out", "{root}/p"], FAILURE, "{missing}"),
    ("prepare", ["--merge", "{damaged}"], FAILURE, "{damaged}"),
    # train
    ("train", ["--data", "{cache}", "--out", "{root}/t", "--model", "resnet"], USAGE, None),
    ("train", ["--data", "{cache}", "--out", "{root}/t", "--epochs", "0"], USAGE, None),
    (
        "train",
        [
            "--data",
            "{damaged}",
            "--out",
            "{root}/t",
            "--preset",
            "tiny",
            "--device",
            "cpu",
            "--no-progress",
        ],
        FAILURE,
        "{damaged_index}",
    ),
    ("train", ["--data", "{missing}", "--out", "{root}/t"], FAILURE, "{missing}"),
    # evaluate
    ("evaluate", ["{best}", "--batch-size", "0"], USAGE, None),
    ("evaluate", ["{best}", "--data", "{damaged}", "--device", "cpu"], FAILURE, "{damaged}"),
    ("evaluate", ["{corrupt}", "--data", "{cache}"], FAILURE, "{corrupt}"),
    ("evaluate", ["{missing}"], FAILURE, "{missing}"),
    # predict
    ("predict", ["{best}", "{image}"], USAGE, None),
    ("predict", ["{corrupt}", "{image}", "{root}/m.png"], FAILURE, "{corrupt}"),
    ("predict", ["{best}", "{missing}", "{root}/m.png"], FAILURE, "{missing}"),
    ("predict", ["{missing}", "{image}", "{root}/m.png"], FAILURE, "{missing}"),
    # export
    ("export", ["{best}"], USAGE, None),
    ("export", ["{corrupt}", "{root}/e"], FAILURE, "{corrupt}"),
    ("export", ["{missing}", "{root}/e"], FAILURE, "{missing}"),
    # benchmark
    ("benchmark", ["--models", "unett", "--out", "{root}/b"], USAGE, None),
    ("benchmark", ["--shard", "0/2", "--out", "{root}/b"], USAGE, None),
    ("benchmark", ["--data", "{missing}", "--out", "{root}/b"], FAILURE, "{missing}"),
    (
        "benchmark",
        [
            "--data",
            "{damaged}",
            "--out",
            "{root}/b",
            "--losses",
            "bce",
            "--seeds",
            "1",
            "--folds",
            "1",
            "--no-progress",
        ],
        FAILURE,
        "{damaged_index}",
    ),
    # nnunet (its export action; the others need an nnU-Net installation's folders)
    (
        "nnunet",
        ["export", "{cache}", "--out", "{root}/n", "--id", "abc", "--name", "X"],
        USAGE,
        None,
    ),
    (
        "nnunet",
        ["export", "{damaged}", "--out", "{root}/n", "--id", "5", "--name", "X"],
        FAILURE,
        "{damaged_index}",
    ),
    (
        "nnunet",
        ["export", "{missing}", "--out", "{root}/n", "--id", "5", "--name", "X"],
        FAILURE,
        "{missing}",
    ),
    # report
    ("report", ["{bench}", "--margin", "-1"], USAGE, None),
    ("report", ["{missing}"], FAILURE, "{missing}"),
    ("study", ["rule", "--datasets", "paper-lik", "--out", "{root}/s"], USAGE, None),
    ("study", ["rule", "--margin", "nan", "--out", "{root}/s"], USAGE, None),
    ("study", ["rule", "--datasets", "{missing}", "--out", "{root}/s"], FAILURE, "{missing}"),
    ("report", ["{bench}"], FAILURE, "{broken}"),
]


def _fill(text: str, files: dict[str, Path]) -> str:
    return text.format(**{k: str(v) for k, v in files.items()})


@pytest.mark.parametrize(
    ("command", "argv", "code", "named"),
    CASES,
    ids=[f"{c[0]}-{'usage' if c[2] == USAGE else 'failure'}-{i}" for i, c in enumerate(CASES)],
)
@pytest.mark.slow
def test_every_command_follows_the_contract(
    capsys: pytest.CaptureFixture[str],
    files: dict[str, Path],
    command: str,
    argv: list[str],
    code: int,
    named: str | None,
) -> None:
    got = main([command, *(_fill(a, files) for a in argv)])
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err
    # one line that says which command (and action, for calf nnunet) failed
    assert re.search(rf"calf {command}( \w+)?: error: ", err), err
    if named is not None:
        assert _fill(named, files) in err


def test_the_cases_cover_every_subcommand() -> None:
    """A new subcommand must join the table above (calf nnunet included, once it exists)."""
    commands = {module.__name__.rsplit(".", 1)[-1] for module in COMMANDS}
    assert commands <= {c[0] for c in CASES}
    for name in commands:
        codes = {c[2] for c in CASES if c[0] == name}
        assert codes == {USAGE, FAILURE}, name


@pytest.mark.slow
def test_evaluate_json_into_missing_folders_makes_them(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    # the output's parents were checked before the work, then not made: the evaluation
    # ran and its result was lost to "no such file or folder"
    target = tmp_path / "new" / "deeper" / "eval.json"
    argv = ["evaluate", str(files["best"]), "--data", str(files["cache"]), "--device", "cpu"]
    assert main([*argv, "--json", str(target), "--no-progress"]) == 0, capsys.readouterr().err
    assert json.loads(target.read_text())["split"] == "test"


@pytest.mark.slow
def test_evaluate_refuses_a_json_that_would_replace_the_checkpoint(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(files["run"], run)
    before = (run / "best.pt").read_bytes()
    for model in (run, run / "best.pt"):
        code = main(["evaluate", str(model), "--json", str(run / "best.pt"), "--device", "cpu"])
        assert code == USAGE and "writing it would replace it" in capsys.readouterr().err
    assert (run / "best.pt").read_bytes() == before
