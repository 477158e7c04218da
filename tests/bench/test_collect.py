"""collect_results: the run folders become results.csv and per_image.csv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from calfseg.bench import collect_results
from calfseg.bench.collect import split_key

from .fakes import LOSSES, MODELS, N_TEST, SEEDS, write_run


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


def test_unfinished_runs_are_ignored_and_failed_ones_listed(tmp_path: Path) -> None:
    write_run(tmp_path, "unet", "bce", 0)
    (tmp_path / "runs" / "unet-dice-s0").mkdir()  # started, not finished
    failed = tmp_path / "runs" / "unet-calf-s0"
    failed.mkdir()
    (failed / "failed.json").write_text(json.dumps({"error": "RuntimeError: boom"}))
    table = collect_results(tmp_path)
    assert [r.name for r in table.runs] == ["unet-bce-s0"]
    assert table.failed == {"unet-calf-s0": "RuntimeError: boom"}


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
