"""Run a benchmark: prepare the data, train every pending run, collect, report.

A failing run does not stop the benchmark: its error goes to ``RUN/failed.json`` and the
next run starts. Runs with a ``done.json`` are skipped and runs with a ``last.pt`` resumed,
so rerunning a killed benchmark resumes it, and a failed run is retried; but only when
they were made the way the requested run would be (same result-defining options, cache
digest and calf-seg version, :mod:`calfseg.bench.stale`). Otherwise the benchmark refuses
(:class:`StaleRunsError`) unless ``overwrite``, which retrains them.

With ``folds`` K >= 2 (cross-validation) every fold is checked against the cache before
anything is trained, and ``OUT/folds.csv`` records each case's fold (:mod:`.folds`).
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

from calfseg.bench.folds import check_folds, fold_table, write_folds
from calfseg.bench.grid import DONE_FILE, FAILED_FILE, RUNS_FOLDER, BenchmarkConfig, RunSpec, runs
from calfseg.bench.progress import run_line, start_line
from calfseg.bench.stale import describe_stale, find_stale, grid_names, has_results, outside_grid

TrainFn = Callable[..., Any]
MakeConfig = Callable[[dict[str, Any]], Any]


class BenchmarkError(Exception):
    """The benchmark cannot start (no data, data preparation failed)."""


class StaleRunsError(BenchmarkError):
    """OUT holds runs of the grid made another way than requested (the message says how,
    for how many runs, and the ways out: ``--overwrite`` or another ``--out``)."""

    def __init__(self, message: str, stale: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.stale = stale


@dataclass
class BenchmarkOutcome:
    """What :func:`run_benchmark` did."""

    out: Path
    planned: int
    skipped: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    overwritten: list[str] = field(default_factory=list)  # stale runs retrained
    outside: list[str] = field(default_factory=list)  # run folders not in the grid

    @property
    def ok(self) -> bool:
        return not self.failed


def train_options(config: BenchmarkConfig, spec: RunSpec) -> dict[str, Any]:
    """The training options of one run, as plain values (the TrainConfig fields); a run of
    a cross-validation (``spec.fold``) gets ``split="cv"`` and its fold, which config.json
    and the provenance record keep."""
    cv: dict[str, Any] = {}
    if spec.fold is not None:
        cv = {
            "split": "cv",
            "cv_folds": config.folds,
            "cv_fold": spec.fold,
            "cv_seed": config.cv_seed,
        }
    return {
        "cache": str(config.cache),
        "model": spec.model,
        "preset": config.model_preset,
        "loss": spec.loss,
        "seed": spec.seed,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "loss_options": dict(config.loss_options.get(spec.loss, {})),
        **cv,
        **dict(config.extra),
    }


def make_train_config(options: dict[str, Any], *, preset: str = "tiny") -> Any:
    """A ``calfseg.train.TrainConfig`` from its preset ``preset`` (``tiny``, ``project`` or
    ``paper``) with ``options`` applied (every key must be a TrainConfig field)."""
    from calfseg.train import TrainConfig

    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise BenchmarkError(f"TrainConfig has no field(s) {', '.join(unknown)}")
    rest = dict(options)
    cache = rest.pop("cache")
    return TrainConfig.from_preset(preset, cache, **rest)


def ensure_data(config: BenchmarkConfig, *, overwrite: bool = False) -> Path:
    """The cache to train on; generates ``OUT/data`` with ``calf prepare --synthetic`` if
    no cache was given (idempotent: an up-to-date cache is kept; one made with other
    options is replaced only with ``overwrite``)."""
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
    if config.synthetic_cases is not None:
        argv += ["--cases", str(config.synthetic_cases)]
    if config.synthetic_slices is not None:
        argv += ["--slices", str(config.synthetic_slices)]
    if overwrite:
        argv.append("--overwrite")
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
    overwrite: bool = False,
) -> BenchmarkOutcome:
    """Train the pending runs of ``config``, then collect results and build the report.

    Args:
        config: the grid and settings.
        train_fn: ``train_fn(train_config, run_dir, *, resume=..., progress=...)``;
            default :func:`calfseg.train.train_run` (imported on first use).
        make_config: options dict -> the object passed to ``train_fn``. Default: a
            TrainConfig (:func:`make_train_config`) with the default ``train_fn``, the plain
            options dict with an injected one.
        progress: print a line when each run starts and ends (headline result, elapsed
            time, ETA) and pass ``progress`` on to training.
        prepare: generate the synthetic cache when ``config.data`` is None.
        overwrite: retrain the runs in OUT made another way than requested (stale runs),
            and let ``calf prepare`` replace a generated cache made with other options.

    Raises:
        StaleRunsError: without ``overwrite``, OUT holds stale runs of this grid (nothing
            is trained; the message names what changed).
        BenchmarkError: no data, or its preparation failed; ``folds`` the grid or the cache
            cannot take (K < 1, the paper preset, more folds than patients).
    """
    from calfseg.bench.report import build_report

    start = time.perf_counter()
    try:
        check_folds(config)
    except ValueError as err:
        raise BenchmarkError(str(err)) from err
    config.out.mkdir(parents=True, exist_ok=True)
    planned = runs(config)
    outcome = BenchmarkOutcome(config.out, len(planned))
    if prepare and planned:
        ensure_data(config, overwrite=overwrite)
    folds = None
    if planned:
        try:  # every fold fits the cache (before anything is trained)
            folds = fold_table(config)
        except ValueError as err:  # a CacheError is one too
            raise BenchmarkError(str(err)) from err
    if train_fn is None:
        from calfseg.train import train_run

        train_fn = train_run
        make_config = make_config or _default_make_config(config)
    build = make_config or dict
    stale: dict[str, list[str]] = {}
    if any(has_results(spec, config.out) for spec in planned):
        stale = find_stale(config, _requested(config, build))
    if stale and not overwrite:
        raise StaleRunsError(describe_stale(stale, config.out), stale)
    if folds is not None:  # the deal of the runs about to be trained, once they may be
        write_folds(config.out, folds)
    outcome.outside = outside_grid(config)
    for name in sorted(stale):  # their old results must not outlive a failed retraining
        (config.out / RUNS_FOLDER / name / DONE_FILE).unlink(missing_ok=True)
    todo = [s for s in planned if s.name in stale or not s.is_done(config.out)]
    outcome.skipped = [s.name for s in planned if s not in todo]
    outcome.overwritten = [s.name for s in todo if s.name in stale]
    durations: list[float] = []
    for i, spec in enumerate(todo, 1):
        if progress:
            print(start_line(i, len(todo), spec.name), file=sys.stderr, flush=True)
        tic = time.perf_counter()
        resume = spec.name not in stale
        error = _train_one(config, spec, train_fn, build, progress, resume)
        durations.append(time.perf_counter() - tic)
        if error is None:
            outcome.finished.append(spec.name)
        else:
            outcome.failed[spec.name] = error
        if progress:
            line = run_line(
                i, len(todo), spec.name, durations[-1], time.perf_counter() - start, durations,
                folder=spec.folder(config.out), error=error,
            )  # fmt: skip
            print(line, file=sys.stderr, flush=True)
    # The report (results.csv first) covers the requested grid, every shard of it, and not
    # other runs kept in OUT: those were not checked against the requested settings.
    build_report(config.out, only=grid_names(config), margin=config.margin)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _requested(config: BenchmarkConfig, build: MakeConfig) -> Callable[[RunSpec], Any]:
    """spec -> the provenance record the run would get, to compare with the stored one."""
    from calfseg.data.cache import CacheError, cache_digest
    from calfseg.train.provenance import run_provenance

    try:
        digest = cache_digest(config.cache)
    except CacheError as err:
        raise BenchmarkError(
            f"cannot check the runs already in {config.out} against the cache: {err}"
        ) from err
    return lambda spec: run_provenance(build(train_options(config, spec)), digest=digest)


def _default_make_config(config: BenchmarkConfig) -> MakeConfig:
    return lambda options: make_train_config(options, preset=config.train_preset)


def _train_one(
    config: BenchmarkConfig,
    spec: RunSpec,
    train_fn: TrainFn,
    build: MakeConfig,
    progress: bool,
    resume: bool = True,
) -> str | None:
    """Train one run; the error text on failure (also written to failed.json)."""
    folder = spec.folder(config.out)
    folder.mkdir(parents=True, exist_ok=True)
    failed = folder / FAILED_FILE
    failed.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        train_fn(build(train_options(config, spec)), folder, resume=resume, progress=progress)
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
