"""No traceback reaches a user: Ctrl-C, a closed pipe, unexpected errors, unwritable outputs
and the other raw tracebacks of issue 9 end with one line and a documented exit code."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from calfseg.cli import main
from calfseg.cli.common import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE

from ..shared_data import BRATS2015_SUBSET as BRATS


def _replace_run(monkeypatch: pytest.MonkeyPatch, module: str, exc: BaseException) -> None:
    """Make ``calf MODULE`` raise ``exc`` as soon as it runs."""
    import importlib

    target = importlib.import_module(f"calfseg.cli.{module}")

    def run(args: argparse.Namespace) -> int:
        raise exc

    monkeypatch.setattr(target, "run", run)


# -- the central mechanism of calf.cli.main ----------------------------------------------


@pytest.mark.parametrize(
    ("command", "argv", "kept"),
    [
        ("prepare", ["--synthetic", "paper-like", "--out", "c"], "finished cases are kept"),
        ("train", ["--data", "c", "--out", "r"], "rerun the same command with --resume"),
        ("benchmark", [], "finished runs are kept"),
        ("analyze", ["."], "nothing was written"),
    ],
)
def test_ctrl_c_is_one_line_with_what_was_kept_and_exit_130(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    argv: list[str],
    kept: str,
) -> None:
    _replace_run(monkeypatch, command, KeyboardInterrupt())
    code = main([command, *argv])
    out, err = capsys.readouterr()
    assert code == EXIT_INTERRUPTED == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"calf {command}: interrupted; ")
    assert kept in lines[0] and "rerun the same command" in lines[0]
    assert "Traceback" not in out + err


def test_closed_pipe_is_quiet_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _replace_run(monkeypatch, "analyze", BrokenPipeError(32, "Broken pipe"))
    code = main(["analyze", "."])
    out, err = capsys.readouterr()
    assert code == EXIT_FAILURE and err == "" and out == ""


def test_output_piped_into_head_gives_no_traceback() -> None:
    """A real closed pipe: a subcommand prints far more than a pipe buffer holds into
    ``head -n 1``, which exits after the first line."""
    script = (
        "import calfseg.cli.analyze as sub\n"
        "def run(args):\n"
        "    for _ in range(200_000):\n"
        "        print('x' * 80)\n"
        "    return 0\n"
        "sub.run = run\n"
        "from calfseg.cli import main\n"
        "raise SystemExit(main(['analyze', '.']))\n"
    )
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f'{sys.executable} -c "$SCRIPT" | head -n 1'],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SCRIPT": script},
    )
    assert done.stdout == "x" * 80 + "\n"
    assert done.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored" line
    assert done.returncode == EXIT_FAILURE  # with pipefail: calf's status, the output was cut


def test_unexpected_error_is_one_line_with_a_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _replace_run(monkeypatch, "report", TypeError("unsupported operand"))
    monkeypatch.delenv("CALF_DEBUG", raising=False)
    code = main(["report", "x"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    assert err.startswith("calf report: error: unexpected TypeError: unsupported operand")
    assert "CALF_DEBUG=1" in err and "Traceback" not in err


def test_calf_debug_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _replace_run(monkeypatch, "report", TypeError("unsupported operand"))
    monkeypatch.setenv("CALF_DEBUG", "1")
    assert main(["report", "x"]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "TypeError" in err


def test_a_usage_error_raised_by_a_subcommand_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from calfseg.cli.common import UsageError

    _replace_run(monkeypatch, "analyze", UsageError("--seed must be >= 0, got -1"))
    assert main(["analyze", "."]) == EXIT_USAGE
    assert capsys.readouterr().err == "calf analyze: error: --seed must be >= 0, got -1\n"


def test_the_library_raises_no_bare_value_error() -> None:
    # The command line tells a usage error (2) from data it cannot use (1) by the class
    # alone: every ValueError of the library is an OptionError or a DataValueError.
    import ast

    import calfseg

    bare = []
    for path in sorted(Path(calfseg.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                called = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(called, ast.Name) and called.id == "ValueError":
                    bare.append(f"{path.name}:{node.lineno}")
    assert bare == []


def test_an_option_error_exits_2_and_a_data_value_error_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from calfseg.data.splits.assign import check_fractions
    from calfseg.stats import AreaMoments

    # real raises of the library, one of each kind, both still ValueErrors for callers
    with pytest.raises(ValueError) as option:
        check_fractions({"train": 0.5, "test": 0.6})
    with pytest.raises(ValueError) as data:
        AreaMoments.from_dict({"format": "something else"})
    for err, code in ((option.value, EXIT_USAGE), (data.value, EXIT_FAILURE)):
        _replace_run(monkeypatch, "analyze", err)
        assert main(["analyze", "."]) == code
        assert capsys.readouterr().err == f"calf analyze: error: {err}\n"


def test_an_os_error_names_its_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _replace_run(monkeypatch, "evaluate", PermissionError(13, "Permission denied", "r/x.json"))
    assert main(["evaluate", "r"]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.strip() == "calf evaluate: error: cannot use r/x.json: permission denied"


@pytest.mark.slow
def test_real_sigint_stops_prepare_with_one_line_and_the_rerun_resumes(tmp_path: Path) -> None:
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group (workers included)."""
    if not BRATS.is_dir():
        pytest.skip(f"{BRATS} is not available")
    cache = tmp_path / "cache"
    argv = [sys.executable, "-m", "calfseg.cli", "prepare", str(BRATS), "--out", str(cache)]
    argv += ["--workers", "2", "--size", "64"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Background jobs of a shell ignore SIGINT and children inherit that: restore it.
    child = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert child.stderr is not None
    first = child.stderr.readline()  # "layout: brats2015 (detected)": imports are done
    assert "layout" in first
    time.sleep(1.0)
    os.killpg(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=120)
    if child.returncode == 0:
        pytest.skip("prepare finished before the interrupt arrived (a fast machine)")
    assert child.returncode == EXIT_INTERRUPTED
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [
        "calf prepare: interrupted; finished cases are kept in the cache's parts; "
        "rerun the same command to resume"
    ]
    again = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert again.returncode == 0, again.stderr
    assert (cache / "index.csv").is_file()


# -- the raw tracebacks of issue 9 ----------------------------------------------------------


def test_prepare_into_an_unusable_out_names_the_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "cache"
    code = main(["prepare", "--synthetic", "paper-like", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    assert f"--out {out}: {tmp_path / 'afile'} is a file, not a folder" in err


def test_benchmark_into_an_unusable_out_names_the_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "bench"
    assert main(["benchmark", "--out", str(out), "--no-progress"]) == EXIT_FAILURE
    assert f"--out {out}: {tmp_path / 'afile'} is a file" in capsys.readouterr().err


def test_kfold_larger_than_the_cases_is_refused_before_reading(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "cache"
    argv = ["prepare", "--synthetic", "paper-like", "--cases", "3", "--size", "32"]
    code = main([*argv, "--kfold", "10", "--fold", "0", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURE
    assert "--kfold 10 needs at least 10 patients" in err and "has 3" in err
    assert "the largest K possible is 3" in err
    assert not (out / ".parts").exists()  # refused before any case was prepared


def test_analyze_plot_with_an_unsupported_suffix_is_refused_before_the_analysis(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    np.save(tmp_path / "m.npy", np.eye(4, dtype=np.uint8))
    code = main(["analyze", str(tmp_path / "m.npy"), "--plot", str(tmp_path / "x.txt")])
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE and out == ""  # nothing analysed, nothing printed
    assert "--plot" in err and "x.txt" in err and ".png, .pdf, .svg" in err


def test_analyze_json_under_a_file_is_a_clear_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    np.save(tmp_path / "m.npy", np.eye(4, dtype=np.uint8))
    (tmp_path / "afile").write_text("")
    target = tmp_path / "afile" / "x.json"
    code = main(["analyze", str(tmp_path / "m.npy"), "--json", str(target)])
    out, err = capsys.readouterr()
    assert code == EXIT_FAILURE and out == ""  # an output in the way: 1, checked before work
    assert f"--json {target}: {tmp_path / 'afile'} is a file, not a folder" in err
    assert "Errno" not in err


def _fake_results(root: Path) -> Path:
    from ..bench.fakes import write_run

    for loss in ("bce", "calf"):
        for seed in (0, 1):
            write_run(root, "unet", loss, seed)
    return root


def test_report_without_scipy_names_the_pip_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    results = _fake_results(tmp_path / "bench")
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    assert main(["report", str(results)]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "needs the package 'scipy'" in err and "pip install 'calf-seg[train]'" in err


def test_report_on_a_corrupt_eval_json_names_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    results = _fake_results(tmp_path / "bench")
    broken = results / "runs" / "unet-bce-s0" / "eval_test.json"
    broken.write_text('{"dice/per')
    assert main(["report", str(results)]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert str(broken) in err and "Traceback" not in err


def test_calf_loss_fits_from_a_cache_folder(tmp_path: Path) -> None:
    from calfseg.fingerprint import Fingerprint
    from calfseg.losses import CALFLoss

    cache = tmp_path / "cache"
    argv = ["prepare", "--synthetic", "paper-like", "--cases", "4", "--size", "32"]
    assert main([*argv, "--out", str(cache), "--no-progress"]) == 0
    expected = json.loads((cache / "fingerprint.json").read_text())
    loss = CALFLoss("dataset").fit(cache)
    assert loss.moments is not None
    assert loss.moments[0] == Fingerprint.from_dict(expected).moments
    with pytest.raises(FileNotFoundError, match=r"without fingerprint\.json"):
        CALFLoss("dataset").fit(tmp_path)
