"""collect_results: the run folders become results.csv and per_image.csv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from calfseg.bench import build_benchmark_report, collect_results
from calfseg.bench.collect import split_key
from calfseg.bench.errors import BenchmarkError

from .fakes import LOSSES, MODELS, N_CASES, N_TEST, SEEDS, write_run


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_results_csv_has_one_row_per_run_and_numeric_metric(fake_benchmark: Path) -> None:
    table = collect_results(fake_benchmark)
    rows = _rows(fake_benchmark / "results.csv")
    n_runs = len(MODELS) * len(LOSSES) * len(SEEDS)
    assert len(table.runs) == n_runs
    # 13 numeric or None results per run; the string "policy" is left out
    assert len(rows) == n_runs * 13
    assert list(rows[0]) == [
        "run",
        "model",
        "loss",
        "seed",
        "metric",
        "reduction",
        "group",
        "value",
    ]
    small = [r for r in rows if r["run"] == "unet-calf-s1" and r["group"] == "small"]
    assert small == [
        {
            "run": "unet-calf-s1",
            "model": "unet",
            "loss": "calf",
            "seed": "1",
            "metric": "dice",
            "reduction": "per_image",
            "group": "small",
            "value": small[0]["value"],
        }
    ]
    empty = next(r for r in rows if r["run"] == "unet-calf-s1" and r["group"] == "empty")
    assert empty["value"] == ""


def test_per_image_csv_keeps_every_test_slice_with_run_columns(fake_benchmark: Path) -> None:
    collect_results(fake_benchmark)
    rows = _rows(fake_benchmark / "per_image.csv")
    assert len(rows) == len(MODELS) * len(LOSSES) * len(SEEDS) * N_TEST
    assert list(rows[0])[:6] == ["run", "model", "loss", "seed", "row", "case_id"]
    assert {r["loss"] for r in rows} == set(LOSSES)
    assert rows[0]["case_id"] == "000"  # case ids stay text


def test_unfinished_runs_are_listed_apart_and_failed_ones_with_their_error(tmp_path: Path) -> None:
    write_run(tmp_path, "unet", "bce", 0)
    (tmp_path / "runs" / "unet-dice-s0").mkdir()  # started, not finished
    failed = tmp_path / "runs" / "unet-calf-s0"
    failed.mkdir()
    (failed / "failed.json").write_text(json.dumps({"error": "RuntimeError: boom"}))
    table = collect_results(tmp_path)
    assert [r.name for r in table.runs] == ["unet-bce-s0"]
    assert table.failed == {"unet-calf-s0": "RuntimeError: boom"}
    assert table.unfinished == ["unet-dice-s0"]


def test_a_report_over_an_unfinished_run_is_refused_naming_it(tmp_path: Path) -> None:
    write_run(tmp_path, "unet", "bce", 0)
    write_run(tmp_path, "unet", "calf", 0)
    (tmp_path / "runs" / "unet-calf-s0" / "done.json").unlink()  # interrupted before done
    with pytest.raises(BenchmarkError, match=r"1 run\(s\) .*interrupted\): unet-calf-s0"):
        build_benchmark_report(tmp_path)
    assert not (tmp_path / "verdicts.csv").exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "has a done.json but no per_case_test.csv"),
        ("", "not a per-case table"),
        ("row,dice\n0,0.5\n", "not a per-case table"),
        (b"\xff\xfe\x00garbage", "not a readable CSV"),
    ],
)
def test_a_finished_run_without_a_readable_per_case_table_is_an_error(
    tmp_path: Path, content: str | bytes | None, match: str
) -> None:
    write_run(tmp_path, "unet", "bce", 0)
    table = tmp_path / "runs" / "unet-bce-s0" / "per_case_test.csv"
    if content is None:
        table.unlink()
    elif isinstance(content, bytes):
        table.write_bytes(content)
    else:
        table.write_text(content)
    with pytest.raises(BenchmarkError, match=match):
        collect_results(tmp_path)


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        ("dice/per_image", ("dice", "per_image", "")),
        ("dice/per_image/small", ("dice", "per_image", "small")),
        ("n_undefined/dice/pooled", ("n_undefined/dice", "pooled", "")),
        ("n_images", ("n_images", "", "")),
    ],
)
def test_result_keys_split_into_metric_reduction_group(key: str, parts: tuple[str, ...]) -> None:
    assert split_key(key) == parts


def test_only_the_named_runs_are_collected_with_their_provenance(tmp_path: Path) -> None:
    write_run(tmp_path, "unet", "bce", 0)
    write_run(tmp_path, "unet", "dice", 0)
    record = {"format": "calfseg.provenance/1", "cache": {"digest": "ab" * 8}, "config": {}}
    (tmp_path / "runs" / "unet-bce-s0" / "provenance.json").write_text(json.dumps(record))
    table = collect_results(tmp_path, only={"unet-bce-s0"})
    assert [r.name for r in table.runs] == ["unet-bce-s0"]
    assert table.runs[0].provenance == record and table.runs[0].config["epochs"] == 3
    rows = _rows(tmp_path / "results.csv")
    assert {r["run"] for r in rows} == {"unet-bce-s0"}
    assert collect_results(tmp_path, write=False).runs[1].provenance is None  # unet-dice


def test_an_unreadable_json_file_is_named(tmp_path: Path) -> None:
    folder = write_run(tmp_path, "unet", "bce", 0)
    (folder / "eval_test.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"unet-bce-s0/eval_test\.json: not readable JSON"):
        collect_results(tmp_path)
    (folder / "eval_test.json").write_text("{}")
    (folder / "provenance.json").write_text("{")
    with pytest.raises(ValueError, match=r"unet-bce-s0/provenance\.json: not readable JSON"):
        collect_results(tmp_path)


# -- per-case results and folds (issue 8) ---------------------------------------------------


def test_per_case_csv_gathers_every_run_with_its_fold(tmp_path: Path) -> None:
    for fold in (1, 2, 3):
        write_run(tmp_path, "unet", "bce", 0, fold=fold, n_folds=3)
    write_run(tmp_path, "fpn", "bce", 1)
    table = collect_results(tmp_path)
    assert {r.name: r.fold for r in table.runs} == {
        "fpn-bce-s1": None, "unet-bce-s0-f1": 1, "unet-bce-s0-f2": 2, "unet-bce-s0-f3": 3,
    }  # fmt: skip
    assert table.folds == [None, 1, 2, 3]
    rows = _rows(tmp_path / "per_case.csv")
    assert list(rows[0]) == [
        "run", "model", "loss", "seed", "fold", "case_id", "n_slices", "tp", "fp", "fn", "tn",
        "dice", "hd95_mm", "assd_mm",
    ]  # fmt: skip
    folded = [r for r in rows if r["model"] == "unet"]
    assert len(folded) == N_CASES  # the three folds together test every case once
    assert len({r["case_id"] for r in folded}) == N_CASES
    assert {r["fold"] for r in rows if r["model"] == "fpn"} == {""}
    assert sum(r["model"] == "fpn" for r in rows) == N_CASES


def test_the_fold_comes_from_the_run_name_without_a_config(tmp_path: Path) -> None:
    folder = write_run(tmp_path, "unet", "calf-dataset", 2, fold=4, n_folds=5)
    (folder / "config.json").unlink()
    (info,) = collect_results(tmp_path, write=False).runs
    assert (info.model, info.loss, info.seed, info.fold) == ("unet", "calf-dataset", 2, 4)


def test_done_json_is_read_with_the_run(tmp_path: Path) -> None:
    write_run(tmp_path, "unet", "bce", 0, converged=False)
    (info,) = collect_results(tmp_path, write=False).runs
    assert info.done["converged"] is False and info.done["stop_reason"] == "budget"
