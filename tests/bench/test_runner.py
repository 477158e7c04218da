"""run_benchmark with an injected train_fn: skips finished runs, records failures, shards;
refuses runs made another way (stale) unless overwrite; one progress line per run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from calfseg.bench import BenchmarkConfig, run_benchmark, runs
from calfseg.bench.grid import RunSpec
from calfseg.bench.progress import format_duration, format_eta, run_line
from calfseg.bench.runner import StaleRunsError, train_options
from calfseg.shards import parse_shard
from calfseg.train.provenance import run_provenance, write_provenance

from .fakes import TRUE_AREA, per_case_tp, write_run

pytestmark = pytest.mark.slow  # trains real runs: the full tier only


def write_cache(folder: Path, rows: int = 2) -> Path:
    """The two files cache_digest reads (meta.json, index.csv): enough for fake runs."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": "calfseg.cache/1", "complete": True, "channels": ["image"]}
    meta |= {"size": [16, 16], "image_dtype": "uint8", "n_slices": rows}
    (folder / "meta.json").write_text(json.dumps(meta))
    lines = ["row,case_id,area,split"] + [f"{i},c{i},{i},train" for i in range(rows)]
    (folder / "index.csv").write_text("\n".join(lines) + "\n")
    return folder


def _config(out: Path, **changes: Any) -> BenchmarkConfig:
    if not (out / "data").is_dir():
        write_cache(out / "data")
    base = BenchmarkConfig(
        out=out, models=("unet", "fpn"), losses=("bce", "calf"), seeds=(0, 1), epochs=2
    )
    return base.with_overrides(**changes)


class FakeTrainer:
    """Writes a fake finished run with its provenance, as train_run does; raises for the
    run names in ``fail``."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.fail = fail
        self.calls: list[dict[str, Any]] = []
        self.resumed: list[bool] = []

    def __call__(self, options: dict[str, Any], run_dir: Path, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(options)
        self.resumed.append(kwargs["resume"])
        name = f"{options['model']}-{options['loss']}-s{options['seed']}"
        assert Path(run_dir).name == name
        if name in self.fail:
            raise RuntimeError(f"{name} diverged")
        write_run(Path(run_dir).parents[1], options["model"], options["loss"], options["seed"])
        write_provenance(run_dir, run_provenance(options))
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
    config = _config(tmp_path)
    done = RunSpec("unet", "bce", 0)
    FakeTrainer()(train_options(config, done), done.folder(tmp_path), resume=True)
    trainer = FakeTrainer()
    outcome = run_benchmark(_config(tmp_path), train_fn=trainer, progress=False, prepare=False)
    assert outcome.ok and outcome.skipped == ["unet-bce-s0"]
    assert len(trainer.calls) == 7 and len(outcome.finished) == 7
    assert all(trainer.resumed)
    assert trainer.calls[0]["epochs"] == 2 and trainer.calls[0]["cache"].endswith("data")
    assert (tmp_path / "report.html").is_file() and (tmp_path / "summary.md").is_file()
    again = run_benchmark(_config(tmp_path), train_fn=FakeTrainer(), progress=False, prepare=False)
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


# -- provenance: runs made another way are not skipped or resumed -------------------------


def _trained(config: BenchmarkConfig) -> FakeTrainer:
    trainer = FakeTrainer()
    assert run_benchmark(config, train_fn=trainer, progress=False, prepare=False).ok
    return trainer


def test_changed_settings_are_refused_naming_what_changed(tmp_path: Path) -> None:
    _trained(_config(tmp_path))
    write_cache(tmp_path / "data", rows=3)  # the cache now holds something else
    trainer = FakeTrainer()
    with pytest.raises(StaleRunsError) as refused:
        run_benchmark(_config(tmp_path, epochs=5), train_fn=trainer, progress=False, prepare=False)
    message = str(refused.value)
    assert re.search(
        r"epochs 2 -> 5, cache digest [0-9a-f]{8}\.\. -> [0-9a-f]{8}\.\. for 8 runs", message
    ), message
    assert "--overwrite" in message and "--out" in message
    assert trainer.calls == [] and len(refused.value.stale) == 8
    assert len(list(tmp_path.glob("runs/*/done.json"))) == 8  # nothing was touched

    outcome = run_benchmark(
        _config(tmp_path, epochs=5), train_fn=trainer, progress=False, prepare=False,
        overwrite=True,
    )  # fmt: skip
    assert outcome.ok and len(outcome.overwritten) == 8 and outcome.skipped == []
    assert trainer.resumed == [False] * 8  # retrained from scratch
    record = json.loads((tmp_path / "runs" / "fpn-calf-s1" / "provenance.json").read_text())
    assert record["config"]["epochs"] == 5
    # now they match: a rerun skips them all
    again = run_benchmark(_config(tmp_path, epochs=5), train_fn=trainer, prepare=False)
    assert len(again.skipped) == 8 and again.finished == []


def test_runs_without_provenance_are_refused_unless_overwrite(tmp_path: Path) -> None:
    config = _config(tmp_path, models=("unet",), losses=("bce",), seeds=(0,))
    write_run(tmp_path, "unet", "bce", 0)  # a finished run of an older calf-seg
    with pytest.raises(StaleRunsError, match=r"no provenance recorded .* for 1 run \(unet-bce"):
        run_benchmark(config, train_fn=FakeTrainer(), progress=False, prepare=False)
    outcome = run_benchmark(
        config, train_fn=FakeTrainer(), progress=False, prepare=False, overwrite=True
    )
    assert outcome.overwritten == ["unet-bce-s0"] and outcome.finished == ["unet-bce-s0"]


def test_a_started_run_is_resumed_only_when_it_matches(tmp_path: Path) -> None:
    config = _config(tmp_path, models=("unet",), losses=("bce",), seeds=(0,))
    spec = RunSpec("unet", "bce", 0)
    folder = spec.folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(b"")  # killed after an epoch
    write_provenance(folder, run_provenance({**train_options(config, spec), "lr": 0.5}))
    with pytest.raises(StaleRunsError, match=r"lr 0\.5 -> 0\.001 for 1 run"):
        run_benchmark(config, train_fn=FakeTrainer(), progress=False, prepare=False)
    write_provenance(folder, run_provenance(train_options(config, spec)))
    trainer = FakeTrainer()
    run_benchmark(config, train_fn=trainer, progress=False, prepare=False)
    assert trainer.resumed == [True]


def test_runs_outside_the_grid_are_named_and_left_out_of_the_report(tmp_path: Path) -> None:
    _trained(_config(tmp_path))
    outcome = run_benchmark(
        _config(tmp_path, losses=("bce",)), train_fn=FakeTrainer(), progress=False, prepare=False
    )
    assert outcome.outside == ["fpn-calf-s0", "fpn-calf-s1", "unet-calf-s0", "unet-calf-s1"]
    results = (tmp_path / "results.csv").read_text()
    assert ",bce," in results and ",calf," not in results
    # another shard of the same grid is not "outside"
    shard = run_benchmark(
        _config(tmp_path, shard=(1, 2)), train_fn=FakeTrainer(), progress=False, prepare=False
    )
    assert shard.outside == [] and ",calf," in (tmp_path / "results.csv").read_text()


# -- progress lines -----------------------------------------------------------------------


def test_durations_and_eta_read_as_written() -> None:
    assert [format_duration(s) for s in (0.4, 43, 302, 3725)] == [
        "0 s", "43 s", "5 min 2 s", "1 h 2 min"
    ]  # fmt: skip
    assert [format_eta(s) for s in (40, 720, 749)] == ["~40 s", "~12 min", "~12 min"]
    # 3 runs left at the mean of 10 s and 20 s: 45 s
    line = run_line(2, 5, "unet-bce-s0", 20, 31, [10, 20], error="ValueError: x\ny")
    assert line == "[2/5] unet-bce-s0  FAILED after 20 s: ValueError: x | elapsed 31 s, ETA ~45 s"


def test_one_line_per_run_with_its_result_elapsed_time_and_eta(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, models=("unet",))
    trainer = FakeTrainer(fail=("unet-calf-s0",))
    run_benchmark(config, train_fn=trainer, progress=True, prepare=False)
    lines = [line for line in capsys.readouterr().err.splitlines() if "|" in line]
    assert len(lines) == 4
    done = re.compile(
        r"\[(\d)/4\] (unet-\w+-s\d)  done in \d+ s  val Dice (\d\.\d\d)  test Dice "
        r"(\d\.\d\d) \| elapsed \d+ s, (ETA ~\d+ s|no runs left)$"
    )
    for line, position in zip(lines, "1234", strict=True):
        if position == "3":
            assert re.fullmatch(
                r"\[3/4\] unet-calf-s0  FAILED after \d+ s: RuntimeError: unet-calf-s0 "
                r"diverged \| elapsed \d+ s, ETA ~\d+ s",
                line,
            ), line
            continue
        match = done.fullmatch(line)
        assert match is not None and match[1] == position, line
        _, loss, seed = match[2].split("-")
        # the mean per-case test Dice: per case TP / TRUE_AREA (FP = FN = TRUE_AREA - TP)
        case_dice = per_case_tp("unet", loss, int(seed[1:])) / TRUE_AREA
        assert match[4] == f"{case_dice.mean():.2f}"
        assert match[3] == "0.70"  # the fake log's best val_case_dice: 0.4 + 0.1 * 3 epochs
    assert lines[-1].endswith("no runs left")


def test_no_progress_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, models=("unet",), losses=("bce",))
    run_benchmark(
        config, train_fn=FakeTrainer(fail=("unet-bce-s1",)), progress=False, prepare=False
    )
    assert capsys.readouterr().err == ""
