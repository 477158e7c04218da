"""``--margin`` of ``calf report`` and ``calf benchmark``: the equivalence margin reaches
verdicts.csv, a rebuilt report keeps it, and a bad value is a usage error naming it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from calfseg.bench import BenchmarkConfig
from calfseg.cli import main
from calfseg.cli.common import EXIT_OK, EXIT_USAGE

from .fakes import write_benchmark


def _margins(out: Path) -> set[str]:
    with (out / "verdicts.csv").open(newline="") as handle:
        return {row["margin"] for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_calf_report_takes_a_margin_and_keeps_it_on_rebuild(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_benchmark(tmp_path)
    assert main(["report", str(tmp_path), "--margin", "0.2"]) == EXIT_OK
    out = capsys.readouterr().out
    assert _margins(tmp_path) == {"0.2"}
    # with +-0.2 every row's interval fits inside the margin: a difference that small
    # does not matter, whatever its sign (equivalent comes first in the rule)
    assert "4 equivalent" in out and "verdicts.csv" in out
    assert main(["report", str(tmp_path)]) == EXIT_OK  # no --margin: the recorded one
    assert _margins(tmp_path) == {"0.2"}
    assert main(["report", str(tmp_path), "--margin", "0.01"]) == EXIT_OK
    assert _margins(tmp_path) == {"0.01"}
    assert "1 inconclusive" in capsys.readouterr().out.splitlines()[-1]


@pytest.mark.slow
def test_a_new_report_uses_the_default_margin(tmp_path: Path) -> None:
    write_benchmark(tmp_path)
    assert main(["report", str(tmp_path)]) == EXIT_OK
    assert _margins(tmp_path) == {"0.01"}


@pytest.mark.parametrize("value", ["-0.01", "nan", "abc"])
@pytest.mark.parametrize("command", ["report", "benchmark"])
def test_a_bad_margin_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, value: str
) -> None:
    (tmp_path / "runs").mkdir()
    argv = [command, str(tmp_path)] if command == "report" else [command, "--out", str(tmp_path)]
    assert main([*argv, "--margin", value]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--margin" in err and "Traceback" not in err


def test_calf_benchmark_passes_the_margin_to_the_report(
    tmp_path: Path, benchmark_configs: list[BenchmarkConfig]
) -> None:
    seen = benchmark_configs
    assert main(["benchmark", "--out", str(tmp_path), "--margin", "0.03"]) == EXIT_OK
    assert seen[0].margin == 0.03
    assert main(["benchmark", "--out", str(tmp_path)]) == EXIT_OK
    assert seen[1].margin is None  # the report's default, 0.01
