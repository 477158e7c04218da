"""Run a benchmark: prepare the data, train every pending run, collect, report.

A failing run does not stop the benchmark: its error goes to ``RUN/failed.json`` and the
next run starts. Runs with a ``done.json`` are skipped and runs with a ``last.pt`` resumed,
so rerunning a killed benchmark resumes it, and a failed run is retried; but only when
they were made the way the requested run would be (same result-defining options, cache
digest and calf-seg version, :mod:`calfseg.bench.stale`). Otherwise the benchmark refuses
(:class:`StaleRunsError`) unless ``overwrite``, which retrains them.

With ``folds`` K >= 2 (cross-validation) every fold is checked against the cache before
anything is trained, and ``OUT/folds.csv`` records each case's fold (:mod:`.folds`).

The runs train one after another in this process, in worker processes (``--jobs N``) or as
Ray tasks (``--executor ray``), each at the thread policy's threads (:mod:`.executors`,
:mod:`calfseg.threads`, docs/scale.md); results do not depend on which.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import calfseg.run_files as files
from calfseg.bench.errors import BenchmarkError, StaleRunsError
from calfseg.bench.executors.dispatch import (
    Execution,
    ExecutionError,
    ExecutionPlan,
    plan_execution,
    train_tasks,
)
from calfseg.bench.executors.ray_tasks import ExecutorError
from calfseg.bench.executors.task import RunTask
from calfseg.bench.folds import check_folds, fold_table, write_folds
from calfseg.bench.grid import (
    RUNS_FOLDER,
    BenchmarkConfig,
    RunSpec,
    check_loss_options,
    check_names,
    runs,
)
from calfseg.bench.run_options import make_train_config, train_options
from calfseg.bench.stale import describe_stale, find_stale, grid_names, has_results, outside_grid
from calfseg.writer_lock import writing

TrainFn = Callable[..., Any]
MakeConfig = Callable[[dict[str, Any]], Any]


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
    plan: ExecutionPlan | None = None  # how the runs trained (None: nothing to train)

    @property
    def ok(self) -> bool:
        return not self.failed


def ensure_data(config: BenchmarkConfig, *, overwrite: bool = False) -> Path:
    """The cache to train on; prepares the synthetic cache ``OUT/data`` with
    :func:`calfseg.data.prepare` if no cache was given (idempotent: an up-to-date cache is
    kept; one made with other options is replaced only with ``overwrite``)."""
    if config.data is not None:
        if not (config.data / "meta.json").is_file():
            raise BenchmarkError(f"{config.data} is not a slice cache (no meta.json)")
        return config.data
    from calfseg.data import PrepareError, prepare

    try:
        report = prepare(
            None,
            config.cache,
            synthetic=config.synthetic,
            cases=config.synthetic_cases,
            slices=config.synthetic_slices,
            size=config.size,
            workers=min(4, os.cpu_count() or 1),
            overwrite=overwrite,
        )
    except PrepareError as err:
        raise BenchmarkError(f"cannot prepare the synthetic data {config.cache}: {err}") from err
    print(f"calf benchmark: data {report.cache}: {report.status}", file=sys.stderr)
    return config.cache


def run_benchmark(
    config: BenchmarkConfig,
    *,
    train_fn: TrainFn | None = None,
    make_config: MakeConfig | None = None,
    progress: bool = True,
    prepare: bool = True,
    overwrite: bool = False,
    execution: Execution | None = None,
    report: bool = True,
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
        execution: where and how many at once (``--jobs``, ``--threads``, ``--executor``,
            :mod:`calfseg.bench.executors`); default one after another in this process at
            the thread policy's threads. An injected ``train_fn``/``make_config`` must be
            picklable for worker processes and Ray.
        report: build the report at the end (``calf study rule`` writes its own).

    Raises:
        FolderBusyError: another process is writing into OUT (the message names it);
            shards of one grid (``config.shard``) may write side by side.
        StaleRunsError: without ``overwrite``, OUT holds stale runs of this grid (nothing
            is trained; the message names what changed).
        OptionError: an unknown model or loss (with "did you mean"), a loss option its
            loss refuses, ``folds`` the grid cannot take (K < 1, the paper preset).
        BenchmarkError: no data, or its preparation failed; more folds than the cache has
            patients; execution options this machine cannot take (``--gpus``), Ray that
            cannot start.
    """
    with writing(config.out, "calf benchmark", shard=config.shard):
        return _run_benchmark(
            config, train_fn, make_config, progress, prepare, overwrite, execution, report
        )


def _run_benchmark(
    config: BenchmarkConfig,
    train_fn: TrainFn | None,
    make_config: MakeConfig | None,
    progress: bool,
    prepare: bool,
    overwrite: bool,
    execution: Execution | None,
    report: bool,
) -> BenchmarkOutcome:
    from calfseg.bench.report import build_benchmark_report

    start = time.perf_counter()
    # the checks calf benchmark makes before any work, so that Python refuses the same
    check_names(config.models, config.losses)
    check_folds(config)
    check_loss_options({k: dict(v) for k, v in config.loss_options.items()})
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
    injected = (train_fn, make_config)  # the tasks build the defaults where they run
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
        (config.out / RUNS_FOLDER / name / files.DONE).unlink(missing_ok=True)
    todo = [s for s in planned if s.name in stale or not s.is_done(config.out)]
    outcome.skipped = [s.name for s in planned if s not in todo]
    outcome.overwritten = [s.name for s in todo if s.name in stale]
    tasks = [_task(config, spec, *injected, progress, spec.name not in stale) for spec in todo]
    outcome.plan, results = _train(tasks, execution or Execution(), config, progress)
    for spec in todo:
        error = results.get(spec.name, "not trained (the benchmark stopped before it)")
        if error is None:
            outcome.finished.append(spec.name)
        else:
            outcome.failed[spec.name] = error
    # The report (results.csv first) covers the requested grid, every shard of it, and not
    # other runs kept in OUT: those were not checked against the requested settings.
    if report:
        build_benchmark_report(config.out, only=grid_names(config), margin=config.margin)
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


def _task(
    config: BenchmarkConfig,
    spec: RunSpec,
    train_fn: TrainFn | None,
    make_config: MakeConfig | None,
    progress: bool,
    resume: bool,
) -> RunTask:
    return RunTask(
        name=spec.name,
        folder=str(spec.folder(config.out)),
        options=train_options(config, spec),
        resume=resume,
        train_preset=config.train_preset,
        progress=progress,
        train_fn=train_fn,
        make_config=make_config,
    )


def _train(
    tasks: list[RunTask], execution: Execution, config: BenchmarkConfig, progress: bool
) -> tuple[ExecutionPlan | None, dict[str, str | None]]:
    """Plan and train ``tasks`` (:mod:`calfseg.bench.executors`); the failures recorded."""
    if not tasks:
        return None, {}
    workers = int(tasks[0].options.get("workers") or 0)
    try:
        plan = plan_execution(execution, runs=len(tasks), workers=workers)
    except ExecutionError as err:
        raise BenchmarkError(str(err)) from None
    if execution.gpus == 0:  # runs on the CPU even where CUDA is
        tasks = [replace(t, options={**t.options, "device": "cpu"}) for t in tasks]
    for note in plan.notes:
        print(f"calf benchmark: {note}", file=sys.stderr)
    try:
        return plan, train_tasks(tasks, execution, plan, out=config.out, progress=progress)
    except ExecutorError as err:
        raise BenchmarkError(str(err)) from None
