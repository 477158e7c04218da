"""``train_run``: train, evaluate ``best.pt`` on the test split, then write ``done.json``.

The run folder (docs/train.md lists every file)::

    provenance.json (written first), config.json, log.csv, log.jsonl, best.pt, last.pt,
    epoch_N.pt, eval_test.json, per_image_test.csv, qualitative_test.npz,
    done.json (written last: seconds, best_epoch, epochs, epochs_run, best_val_case_dice,
    converged, stop_reason, and the provenance record)

A run folder that already holds a run is only continued (``resume``) when that run was made
the same way: same result-defining options, same cache digest, same calf-seg version
(:mod:`calfseg.train.provenance`). Otherwise :class:`RunMismatchError` names what changed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import calfseg.run_files as files
from calfseg.atomic import atomic_write_text
from calfseg.train import distributed as D
from calfseg.train.checkpoint import CheckpointError
from calfseg.train.config import RESUMABLE_CHANGES, TrainConfig
from calfseg.train.evaluate import evaluate_checkpoint
from calfseg.train.loop import FitResult, fit
from calfseg.train.provenance import (
    provenance_changes,
    read_provenance,
    run_provenance,
    write_provenance,
)
from calfseg.train.stopping import CONVERGENCE_RULE
from calfseg.writer_lock import writing

_WAYS_OUT = "use another run folder, or start again over it (--overwrite; resume=False)"


class RunMismatchError(CheckpointError):
    """The run folder holds a run made with other options, another cache or another
    calf-seg version than the requested one; resuming it would mix the two."""


def train_run(
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = True,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` into ``run_dir`` and evaluate its best checkpoint on the test split.

    A finished run (``done.json`` present) returns its stored results at once when
    ``resume`` (the default) and it was made the same way; asked for more epochs, it trains
    on from ``last.pt``. ``resume=False`` starts afresh. With ``resume`` and a ``last.pt``,
    training continues exactly where that checkpoint left it. ``on_epoch`` gets each
    epoch's log row. Under torchrun, every rank trains; rank 0 writes and evaluates.

    Returns ``{"run_dir", "seconds", "best_epoch", "epochs", "epochs_run",
    "best_val_case_dice", "converged", "convergence_rule", "stop_reason", "results"}``, the
    keys of ``done.json`` (``epochs``: planned; ``epochs_run``: trained, fewer when early
    stopping ended the run, ``stop_reason`` ``"patience"``, else ``"budget"``; ``converged``:
    the validation case Dice plateaued, under ``convergence_rule``,
    :mod:`calfseg.train.stopping`) and ``results``, the test
    metrics of ``eval_test.json`` (None on ranks other than 0). A run that stopped early
    and is asked for more epochs trains no further.

    Raises:
        FolderBusyError: another process is writing into ``run_dir``.
        RunMismatchError: ``resume`` over a run made with other result-defining options,
            another cache (digest) or another calf-seg version; the message names them.
        calfseg.data.CacheError: ``config.cache`` is not a finished cache.
    """
    guard = writing(run_dir, "a training run") if D.is_main_process() else nullcontext()
    with guard:
        return _train_run(config, Path(run_dir), resume, progress, on_epoch)


def _train_run(
    config: TrainConfig,
    run: Path,
    resume: bool,
    progress: bool,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    done = run / files.DONE
    requested = run_provenance(config)
    if done.is_file():
        if resume:
            finished = _finished(run, config, requested)
            if finished is not None:
                return finished
        done.unlink(missing_ok=True)  # every rank may get here
    elif resume and (run / files.LAST_CHECKPOINT).is_file():
        _check_started(run, requested)
    tic = time.perf_counter()
    ctx = D.setup(config.device)
    try:
        if ctx.is_main:
            write_provenance(run, requested)
        outcome = fit(config, run, resume=resume, progress=progress, ctx=ctx, on_epoch=on_epoch)
        finished = None
        if ctx.is_main:
            finished = _evaluate_and_finish(run, config, outcome, requested, ctx, progress, tic)
        D.barrier(ctx)
    finally:
        D.teardown(ctx)
    return finished if finished is not None else {"run_dir": str(run), "results": None}


def _evaluate_and_finish(
    run: Path,
    config: TrainConfig,
    outcome: FitResult,
    requested: dict[str, Any],
    ctx: D.DistContext,
    progress: bool,
    tic: float,
) -> dict[str, Any]:
    """Rank 0's end of a run: evaluate ``best.pt`` on the test split, then write
    ``done.json`` (last, so that its presence means the run is complete)."""
    report = evaluate_checkpoint(
        run / files.BEST_CHECKPOINT, config.cache, config.test_split, device=str(ctx.device),
        out_dir=run, progress=progress,
    )  # fmt: skip
    summary = {
        "seconds": time.perf_counter() - tic,
        "best_epoch": outcome.best_epoch,
        "epochs": outcome.epochs,
        "epochs_run": outcome.epochs_run,
        "best_val_case_dice": outcome.best_score,
        "converged": outcome.converged,
        "convergence_rule": CONVERGENCE_RULE,
        "stop_reason": outcome.stop_reason,
    }
    record = {**summary, "provenance": requested}
    atomic_write_text(run / files.DONE, json.dumps(record, indent=2) + "\n")
    return {"run_dir": str(run), **summary, "results": report["results"]}


def _finished(run: Path, config: TrainConfig, requested: dict[str, Any]) -> dict[str, Any] | None:
    """The stored results of the finished run in ``run``, or None when it should train on
    (more epochs asked); :class:`RunMismatchError` when it was made another way."""
    recorded = read_provenance(run)
    older = recorded is None  # a run of an older calf-seg: compare its config.json at least
    if recorded is None:
        recorded = {"config": _stored_config(run)}
    changes = provenance_changes(recorded, requested, allowed=RESUMABLE_CHANGES)
    if older:  # it recorded neither digest nor version: nothing to compare them with
        changes = [c for c in changes if not c.startswith(("cache digest", "calf-seg version"))]
    if changes:
        raise RunMismatchError(
            f"{run} holds a finished run made another way ({'; '.join(changes)}); resuming "
            f"would report its results for the options asked now: {_WAYS_OUT}"
        )
    stored_epochs = int(recorded["config"].get("epochs", config.epochs))
    if config.epochs < stored_epochs:
        raise RunMismatchError(
            f"{run} holds a finished run of {stored_epochs} epochs; epochs {config.epochs} "
            f"cannot shorten it: {_WAYS_OUT}"
        )
    if config.epochs > stored_epochs:
        if not (run / files.LAST_CHECKPOINT).is_file():
            raise RunMismatchError(
                f"{run} holds a finished run of {stored_epochs} epochs without "
                f"{files.LAST_CHECKPOINT} to train on to {config.epochs}: {_WAYS_OUT}"
            )
        return None
    summary = json.loads((run / files.DONE).read_text())
    summary.pop("provenance", None)
    results = None
    report = run / files.evaluation_report(config.test_split)
    if report.is_file():
        results = json.loads(report.read_text()).get("results")
    return {"run_dir": str(run), **summary, "results": results}


def _check_started(run: Path, requested: dict[str, Any]) -> None:
    """Refuse to resume a started run made with another cache or calf-seg version (the
    options themselves are checked against ``last.pt`` by ``fit``)."""
    recorded = read_provenance(run)
    if recorded is None:
        return  # an older run: fit still compares its options with last.pt's
    changes = provenance_changes(recorded, requested, allowed=RESUMABLE_CHANGES)
    if changes:
        raise RunMismatchError(
            f"{run} holds a started run made another way ({'; '.join(changes)}); resuming "
            f"would mix the two: {_WAYS_OUT}"
        )


def _stored_config(run: Path) -> dict[str, Any]:
    path = run / files.CONFIG
    try:
        return TrainConfig.from_json(path).to_dict()
    except (OSError, ValueError, TypeError) as err:
        raise RunMismatchError(f"{path}: cannot read the finished run's options ({err})") from err
