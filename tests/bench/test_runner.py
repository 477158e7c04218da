"""run_benchmark with an injected train_fn: skips finished runs, records failures, shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calfseg.bench import BenchmarkConfig, run_benchmark, runs
from calfseg.bench.grid import parse_shard

from .fakes import write_run


def _config(out: Path, **changes: Any) -> BenchmarkConfig:
    base = BenchmarkConfig(
        out=out, models=("unet", "fpn"), losses=("bce", "calf"), seeds=(0, 1), epochs=2
    )
    return base.with_overrides(**changes)


class FakeTrainer:
    """Writes a fake finished run; raises for the run names in ``fail``."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.fail = fail
        self.calls: list[dict[str, Any]] = []

    def __call__(self, options: dict[str, Any], run_dir: Path, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(options)
        name = f"{options['model']}-{options['loss']}-s{options['seed']}"
        assert Path(run_dir).name == name and kwargs["resume"] is True
        if name in self.fail:
            raise RuntimeError(f"{name} diverged")
        write_run(Path(run_dir).parents[1], options["model"], options["loss"], options["seed"])
        return {}


def test_runs_are_model_major_and_named(tmp_path: Path) -> None:
    names = [r.name for r in runs(_config(tmp_path))]
    assert names[:3] == ["unet-bce-s0", "unet-bce-s1", "unet-calf-s0"]
    assert len(names) == 8 and names[-1] == "fpn-calf-s1"


def test_shard_takes_every_nth_run(tmp_path: Path) -> None:
    all_runs = runs(_config(tmp_path))
    shards = [runs(_config(tmp_path, shard=(k, 3))) for k in (1, 2, 3)]
    assert shards[0] == all_runs[0::3] and shards[1] == all_runs[1::3]
    assert sorted(r.name for s in shards for r in s) == sorted(r.name for r in all_runs)
    with pytest.raises(ValueError, match="K/N"):
        parse_shard("4/3")


def test_benchmark_trains_pending_runs_and_reports(tmp_path: Path) -> None:
    write_run(tmp_path, "unet", "bce", 0)
    trainer = FakeTrainer()
    outcome = run_benchmark(_config(tmp_path), train_fn=trainer, progress=False, prepare=False)
    assert outcome.ok and outcome.skipped == ["unet-bce-s0"]
    assert len(trainer.calls) == 7 and len(outcome.finished) == 7
    assert trainer.calls[0]["epochs"] == 2 and trainer.calls[0]["cache"].endswith("data")
    assert (tmp_path / "report.html").is_file() and (tmp_path / "summary.md").is_file()
    again = run_benchmark(_config(tmp_path), train_fn=FakeTrainer(), progress=False)
    assert again.finished == [] and len(again.skipped) == 8


def test_failed_runs_are_recorded_and_the_benchmark_goes_on(tmp_path: Path) -> None:
    trainer = FakeTrainer(fail=("unet-calf-s0",))
    config = _config(tmp_path, shard=(1, 2))
    outcome = run_benchmark(config, train_fn=trainer, progress=False, prepare=False)
    assert not outcome.ok and list(outcome.failed) == ["unet-calf-s0"]
    assert [c["seed"] for c in trainer.calls] == [0, 0, 0, 0]  # shard 1/2: seed 0 runs
    record = json.loads((tmp_path / "runs" / "unet-calf-s0" / "failed.json").read_text())
    assert record["error"] == "RuntimeError: unet-calf-s0 diverged"
    assert "Traceback" in record["traceback"]
    assert "unet-calf-s0" in (tmp_path / "summary.md").read_text()
    # a rerun retries the failed run only, and clears failed.json
    retry = run_benchmark(config, train_fn=FakeTrainer(), progress=False, prepare=False)
    assert retry.finished == ["unet-calf-s0"] and retry.ok
    assert not (tmp_path / "runs" / "unet-calf-s0" / "failed.json").exists()


def test_a_run_that_writes_no_done_json_fails(tmp_path: Path) -> None:
    config = _config(tmp_path, models=("unet",), losses=("bce",), seeds=(0,))
    outcome = run_benchmark(config, train_fn=lambda *a, **k: {}, progress=False, prepare=False)
    assert "wrote no done.json" in outcome.failed["unet-bce-s0"]
