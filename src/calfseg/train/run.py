"""``train_run``: train, evaluate ``best.pt`` on the test split, then write ``done.json``.

The run folder (docs/train.md lists every file)::

    config.json, log.csv, log.jsonl, best.pt, last.pt, epoch_N.pt,
    eval_test.json, per_image_test.csv, qualitative_test.npz, done.json (written last)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from calfseg.train import distributed as D
from calfseg.train.atomic import atomic_write_text
from calfseg.train.config import TrainConfig
from calfseg.train.evaluate import evaluate_checkpoint
from calfseg.train.loop import fit

DONE_FILE = "done.json"


def train_run(
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = True,
    progress: bool = True,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` into ``run_dir`` and evaluate its best checkpoint on the test split.

    A finished run (``done.json`` present) returns at once when ``resume`` (the default);
    ``resume=False`` starts afresh. With ``resume`` and a ``last.pt``, training continues
    exactly where that checkpoint left it. ``on_epoch`` gets each epoch's log row. Under
    torchrun, every rank trains; rank 0 writes and evaluates.

    Returns ``{"run_dir", "seconds", "best_epoch", "epochs", "results"}`` (``results``: the
    test metrics of ``eval_test.json``; None on ranks other than 0).
    """
    run = Path(run_dir)
    done = run / DONE_FILE
    if done.is_file():
        if resume:
            return _finished(run)
        done.unlink()
    tic = time.perf_counter()
    ctx = D.setup(config.device)
    try:
        outcome = fit(config, run, resume=resume, progress=progress, ctx=ctx, on_epoch=on_epoch)
        results = None
        if ctx.is_main:
            report = evaluate_checkpoint(
                run / "best.pt", config.cache, config.test_split, device=str(ctx.device),
                out_dir=run, progress=progress,
            )  # fmt: skip
            results = report["results"]
            summary = {
                "seconds": time.perf_counter() - tic,
                "best_epoch": outcome.best_epoch,
                "epochs": outcome.epochs,
            }
            atomic_write_text(done, json.dumps(summary, indent=2) + "\n")
        D.barrier(ctx)
    finally:
        D.teardown(ctx)
    if results is None:
        return {"run_dir": str(run), "results": None}
    return {"run_dir": str(run), **summary, "results": results}


def _finished(run: Path) -> dict[str, Any]:
    summary = json.loads((run / DONE_FILE).read_text())
    results = None
    report = run / "eval_test.json"
    if report.is_file():
        results = json.loads(report.read_text()).get("results")
    return {"run_dir": str(run), **summary, "results": results}
