"""Run a benchmark: prepare the data, train every pending run, collect, report.

A failing run does not stop the benchmark: its error goes to ``RUN/failed.json`` and the
next run starts. Runs with a ``done.json`` are skipped, so rerunning a killed benchmark
resumes it, and a failed run is retried.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from calfseg.bench.grid import DONE_FILE, FAILED_FILE, BenchmarkConfig, RunSpec, pending, runs

TrainFn = Callable[..., Any]
MakeConfig = Callable[[dict[str, Any]], Any]


class BenchmarkError(Exception):
    """The benchmark cannot start (no data, data preparation failed)."""


@dataclass
class BenchmarkOutcome:
    """What :func:`run_benchmark` did."""

    out: Path
    planned: int
    skipped: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def train_options(config: BenchmarkConfig, spec: RunSpec) -> dict[str, Any]:
    """The training options of one run, as plain values (the TrainConfig fields)."""
    return {
        "cache": str(config.cache),
        "model": spec.model,
        "preset": config.model_preset,
        "loss": spec.loss,
        "seed": spec.seed,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        **dict(config.extra),
    }


def make_train_config(options: dict[str, Any], *, paper: bool = False) -> Any:
    """A ``calfseg.train.TrainConfig`` from its ``paper()`` or ``tiny()`` preset with
    ``options`` applied (every key must be a TrainConfig field)."""
    from calfseg.train import TrainConfig

    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise BenchmarkError(f"TrainConfig has no field(s) {', '.join(unknown)}")
    rest = dict(options)
    cache = rest.pop("cache")
    preset = TrainConfig.paper if paper else TrainConfig.tiny
    return preset(cache, **rest)


def ensure_data(config: BenchmarkConfig) -> Path:
    """The cache to train on; generates ``OUT/data`` with ``calf prepare --synthetic`` if
    no cache was given (idempotent: an up-to-date cache is kept)."""
    if config.data is not None:
        if not (config.data / "meta.json").is_file():
            raise BenchmarkError(f"{config.data} is not a slice cache (no meta.json)")
        return config.data
    from calfseg.cli import main as calf

    argv = [
        "prepare",
        "--synthetic",
        config.synthetic,
        "--out",
        str(config.cache),
        "--size",
        str(config.size),
        "--no-progress",
    ]
    if calf(argv) != 0:
        raise BenchmarkError(f"calf {' '.join(argv)} failed; see the message above")
    return config.cache


def run_benchmark(
    config: BenchmarkConfig,
    *,
    train_fn: TrainFn | None = None,
    make_config: MakeConfig | None = None,
    progress: bool = True,
    prepare: bool = True,
) -> BenchmarkOutcome:
    """Train the pending runs of ``config``, then collect results and build the report.

    Args:
        config: the grid and settings.
        train_fn: ``train_fn(train_config, run_dir, *, resume=True, progress=...)``;
            default :func:`calfseg.train.train_run` (imported on first use).
        make_config: options dict -> the object passed to ``train_fn``. Default: a
            TrainConfig (:func:`make_train_config`) with the default ``train_fn``, the plain
            options dict with an injected one.
        progress: print one line per run and pass ``progress`` on to training.
        prepare: generate the synthetic cache when ``config.data`` is None.
    """
    from calfseg.bench.report import build_report

    start = time.perf_counter()
    config.out.mkdir(parents=True, exist_ok=True)
    todo = pending(config)
    planned = runs(config)
    outcome = BenchmarkOutcome(config.out, len(planned))
    outcome.skipped = [s.name for s in planned if s not in todo]
    if todo and prepare:
        ensure_data(config)
    if train_fn is None:
        from calfseg.train import train_run

        train_fn = train_run
        make_config = make_config or _default_make_config(config)
    build = make_config or dict
    for i, spec in enumerate(todo, 1):
        if progress:
            print(f"[{i}/{len(todo)}] {spec.name}", file=sys.stderr, flush=True)
        error = _train_one(config, spec, train_fn, build, progress)
        if error is None:
            outcome.finished.append(spec.name)
        else:
            outcome.failed[spec.name] = error
            if progress:
                print(f"  failed: {error.splitlines()[0]}", file=sys.stderr, flush=True)
    build_report(config.out)  # collects the results (results.csv, per_image.csv) first
    outcome.seconds = time.perf_counter() - start
    return outcome


def _default_make_config(config: BenchmarkConfig) -> MakeConfig:
    paper = config.preset == "paper"
    return lambda options: make_train_config(options, paper=paper)


def _train_one(
    config: BenchmarkConfig,
    spec: RunSpec,
    train_fn: TrainFn,
    build: MakeConfig,
    progress: bool,
) -> str | None:
    """Train one run; the error text on failure (also written to failed.json)."""
    folder = spec.folder(config.out)
    folder.mkdir(parents=True, exist_ok=True)
    failed = folder / FAILED_FILE
    failed.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        train_fn(build(train_options(config, spec)), folder, resume=True, progress=progress)
        if not (folder / DONE_FILE).is_file():
            raise BenchmarkError(f"training returned but wrote no {DONE_FILE}")
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a failed run is recorded; the benchmark goes on
        text = f"{type(err).__name__}: {err}"
        record = {
            "run": spec.name,
            "error": text,
            "traceback": traceback.format_exc(),
            "seconds": round(time.perf_counter() - start, 3),
        }
        failed.write_text(json.dumps(record, indent=2) + "\n")
        return text
    return None
