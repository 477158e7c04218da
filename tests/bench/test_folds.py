"""calf benchmark --folds K: the grid gains a fold axis, every run gets its fold's split
options, OUT/folds.csv records the deal, and sharding, resuming, the provenance check and
the progress lines work with folds. Training is faked except in the last test."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from calfseg.bench import BenchmarkConfig, BenchmarkError, run_benchmark, runs
from calfseg.bench.folds import FOLDS_CSV
from calfseg.bench.runner import StaleRunsError, make_train_config, train_options
from calfseg.data.cache import read_index
from calfseg.data.splits.assign import cv_splits
from calfseg.errors import OptionError
from calfseg.train.provenance import run_provenance, write_provenance

from ..train.synthetic_cache import make_synthetic_cache
from .fakes import write_run

INDEX_HEADER = (
    "row,case_id,dataset,modality,slice_index,area,has_tumour,split,spacing_x,spacing_y,"
    "spacing_z,patient_id"
)


def write_cv_cache(folder: Path, patients: dict[str, int]) -> Path:
    """meta.json and index.csv of a cache (what the benchmark reads before training): per
    dataset, that many patients; every second patient has two cases of 3 slices."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [INDEX_HEADER]
    for dataset, n in patients.items():
        for p in range(n):
            for c in range(2 if p % 2 == 0 else 1):
                for s in range(3):
                    row = len(lines) - 1
                    case = f"{dataset}-p{p}-c{c}"
                    lines.append(f"{row},{case},{dataset},t1,{s},{s},{int(s > 0)},train,1,1,1,p{p}")
    meta = {"format": "calfseg.cache/1", "complete": True, "channels": ["image"]}
    meta |= {"size": [16, 16], "image_dtype": "uint8", "n_slices": len(lines) - 1}
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "index.csv").write_text("\n".join(lines) + "\n")
    return folder


def _config(out: Path, **changes: Any) -> BenchmarkConfig:
    if not (out / "data").is_dir():
        write_cv_cache(out / "data", {"a": 5, "b": 2})
    base = BenchmarkConfig(
        out=out, models=("unet",), losses=("bce", "calf"), seeds=(0, 1), epochs=2, folds=3
    )
    return base.with_overrides(**changes)


class FoldTrainer:
    """Writes a fake finished run (fakes.write_run's files for the run's fold, config.json
    with the run's options) and its provenance into the run folder, as train_run does."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, options: dict[str, Any], run_dir: Path, **kwargs: Any) -> None:
        self.calls.append(options)
        run_dir = Path(run_dir)
        fold, n_folds = options.get("cv_fold"), options.get("cv_folds", 1)
        made = write_run(
            run_dir.parents[1], options["model"], options["loss"], options["seed"], fold=fold,
            n_folds=n_folds,
        )  # fmt: skip
        assert made == run_dir
        (run_dir / "config.json").write_text(json.dumps(options))
        write_provenance(run_dir, run_provenance(options))


def _read_folds(out: Path) -> list[dict[str, str]]:
    with (out / FOLDS_CSV).open(newline="") as handle:
        return list(csv.DictReader(handle))


# -- the grid -------------------------------------------------------------------------------


def test_the_grid_is_model_loss_seed_fold_with_fold_in_the_name(tmp_path: Path) -> None:
    names = [spec.name for spec in runs(_config(tmp_path))]
    assert len(names) == 1 * 2 * 2 * 3
    assert names[:4] == ["unet-bce-s0-f1", "unet-bce-s0-f2", "unet-bce-s0-f3", "unet-bce-s1-f1"]
    assert names[-1] == "unet-calf-s1-f3"
    assert [s.name for s in runs(_config(tmp_path, folds=1))][:2] == ["unet-bce-s0", "unet-bce-s1"]
    shards = [runs(_config(tmp_path, shard=(k, 5))) for k in range(1, 6)]
    assert sorted(s.name for shard in shards for s in shard) == sorted(names)


def test_a_fold_runs_options_select_its_fold_and_build_a_train_config(tmp_path: Path) -> None:
    config = _config(tmp_path, cv_seed=4)
    spec = runs(config)[1]
    options = train_options(config, spec)
    assert {k: options[k] for k in ("split", "cv_folds", "cv_fold", "cv_seed")} == {
        "split": "cv", "cv_folds": 3, "cv_fold": 2, "cv_seed": 4,
    }  # fmt: skip
    train = make_train_config(options, preset="tiny")
    assert (train.split, train.cv_folds, train.cv_fold, train.cv_seed) == ("cv", 3, 2, 4)
    plain = train_options(_config(tmp_path, folds=1), runs(_config(tmp_path, folds=1))[0])
    assert "cv_folds" not in plain and "split" not in plain


# -- a benchmark with folds -----------------------------------------------------------------


def test_folds_csv_records_each_cases_fold_as_the_runs_deal_it(tmp_path: Path) -> None:
    trainer = FoldTrainer()
    outcome = run_benchmark(_config(tmp_path), train_fn=trainer, progress=False, prepare=False)
    assert outcome.ok and len(outcome.finished) == 12
    rows = _read_folds(tmp_path)
    assert list(rows[0]) == ["case_id", "patient_id", "dataset", "fold"]
    index = read_index(tmp_path / "data" / "index.csv")
    assert sorted(r["case_id"] for r in rows) == sorted(set(index["case_id"].tolist()))
    by_patient: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        by_patient.setdefault((row["dataset"], row["patient_id"]), set()).add(row["fold"])
    assert len(by_patient) == 7 and all(len(f) == 1 for f in by_patient.values())
    for fold in (1, 2, 3):  # the cases listed for fold k are those run k tests
        tested = index["case_id"][cv_splits(index, 3, fold, seed=0) == "test"]
        assert {r["case_id"] for r in rows if r["fold"] == str(fold)} == set(tested.tolist())
    # each run's config.json records K, its fold and the deal's seed
    stored = json.loads((tmp_path / "runs" / "unet-calf-s1-f2" / "config.json").read_text())
    assert (stored["split"], stored["cv_folds"], stored["cv_fold"], stored["cv_seed"]) == (
        "cv", 3, 2, 0,
    )  # fmt: skip


@pytest.mark.slow
def test_fold_runs_resume_and_a_changed_deal_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, shard=(1, 2))
    first = run_benchmark(config, train_fn=FoldTrainer(), progress=False, prepare=False)
    assert first.finished == [s.name for s in runs(config)] and len(first.finished) == 6
    rest = run_benchmark(_config(tmp_path), train_fn=FoldTrainer(), progress=False, prepare=False)
    assert sorted(rest.skipped) == sorted(first.finished) and len(rest.finished) == 6
    recorded = (tmp_path / FOLDS_CSV).read_text()
    with pytest.raises(StaleRunsError, match=r"cv_seed 0 -> 1 for 12 runs"):
        run_benchmark(
            _config(tmp_path, cv_seed=1), train_fn=FoldTrainer(), progress=False, prepare=False
        )
    assert (tmp_path / FOLDS_CSV).read_text() == recorded  # still the deal of the runs in OUT
    with pytest.raises(StaleRunsError, match=r"cv_folds 3 -> 4 for 12 runs"):
        run_benchmark(
            _config(tmp_path, folds=4), train_fn=FoldTrainer(), progress=False, prepare=False,
        )  # fmt: skip


def test_progress_lines_name_the_fold_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, losses=("bce",), seeds=(0,))
    run_benchmark(config, train_fn=FoldTrainer(), progress=True, prepare=False)
    lines = [line for line in capsys.readouterr().err.splitlines() if " | elapsed" in line]
    assert len(lines) == 3
    for position, line in enumerate(lines, 1):
        assert line.startswith(f"[{position}/3] unet-bce-s0-f{position}  done in "), line


@pytest.mark.parametrize(
    ("changes", "kind", "message"),
    [  # the cache cannot take it: a BenchmarkError (exit 1); the call is wrong: OptionError
        ({"folds": 8}, BenchmarkError,
         r"--folds 8 on .*: 8-fold .* at least 8 patients; the cache has 7"),
        ({"folds": 0}, OptionError, r"--folds: folds must be 1 \(no cross-validation.* got 0"),
        ({"train_preset": "paper"}, OptionError,
         r"--folds 3: the 'paper' protocol uses the authors'"),
    ],
)  # fmt: skip
def test_folds_the_grid_or_cache_cannot_take_stop_before_training(
    tmp_path: Path, changes: dict[str, Any], kind: type[Exception], message: str
) -> None:
    trainer = FoldTrainer()
    with pytest.raises(kind, match=message):
        run_benchmark(_config(tmp_path, **changes), train_fn=trainer, progress=False, prepare=False)
    assert trainer.calls == [] and not (tmp_path / "runs").exists()


# -- for real -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_real_fold_run_tests_exactly_the_cases_of_its_fold(tmp_path: Path) -> None:
    cache = make_synthetic_cache(tmp_path / "cache", cases=6)
    config = BenchmarkConfig(
        out=tmp_path / "bench", data=cache, models=("unet",), losses=("bce",), seeds=(0,),
        epochs=1, batch_size=8, folds=3,
        extra={"tensorboard": False, "max_steps": 1, "device": "cpu"},
    )  # fmt: skip
    outcome = run_benchmark(config, progress=False)
    assert outcome.ok, outcome.failed
    folds = _read_folds(config.out)
    for fold in (1, 2, 3):
        run = config.out / "runs" / f"unet-bce-s0-f{fold}"
        with (run / "per_image_test.csv").open(newline="") as handle:
            tested = {row["case_id"] for row in csv.DictReader(handle)}
        assert tested == {r["case_id"] for r in folds if r["fold"] == str(fold)}
        assert json.loads((run / "config.json").read_text())["cv_fold"] == fold


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"losses": ("bce", "dise")}, r"unknown loss 'dise' \(did you mean 'dice'\?\)"),
        ({"models": ("unte",)}, r"unknown model 'unte' \(did you mean 'unet'\?\)"),
        ({"loss_options": {"calf": {"numerics": "bogus"}}}, r"for 'calf': unknown numerics"),
    ],
)
def test_the_python_api_refuses_what_calf_benchmark_refuses_before_training(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    # these checks lived in the command only: run_benchmark trained with them before
    trainer = FoldTrainer()
    config = replace(_config(tmp_path), **changes)
    with pytest.raises(OptionError, match=message):
        run_benchmark(config, train_fn=trainer, progress=False, prepare=False)
    assert trainer.calls == [] and not (tmp_path / "runs").exists()
