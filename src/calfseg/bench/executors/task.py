"""One run of a benchmark as a picklable task, and the function every executor calls to
train it: the run's error goes to ``RUN/failed.json`` instead of stopping the benchmark, and
a run that returns without ``done.json`` counts as failed."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import calfseg.run_files as files
from calfseg.atomic import atomic_write_json

TrainFn = Callable[..., Any]
MakeConfig = Callable[[dict[str, Any]], Any]
EpochHook = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RunTask:
    """Everything a process needs to train one run of the grid.

    Attributes:
        name: the run's name (its folder's).
        folder: the run folder (``OUT/runs/NAME``).
        options: the training options (:func:`calfseg.bench.runner.train_options`).
        resume: resume from ``last.pt`` / keep a matching ``done.json``; False retrains.
        train_preset: the TrainConfig preset the options apply to.
        progress: let training draw its own progress bars (serial runs only).
        train_fn, make_config: injected trainer and options -> config (tests); None: the
            real ``calfseg.train.train_run`` on a ``TrainConfig``. They must be picklable
            (module-level) for the process and Ray executors.
    """

    name: str
    folder: str
    options: dict[str, Any]
    resume: bool = True
    train_preset: str = "tiny"
    progress: bool = False
    train_fn: TrainFn | None = field(default=None, compare=False)
    make_config: MakeConfig | None = field(default=None, compare=False)

    @property
    def epochs(self) -> int | None:
        value = self.options.get("epochs")
        return value if isinstance(value, int) else None


@dataclass(frozen=True)
class RunEvent:
    """What a running run reports to the progress display.

    ``kind`` is ``"start"``, ``"epoch"`` (with ``epoch`` and ``loss``, the epoch's mean
    training loss) or ``"end"`` (with ``seconds`` and ``error``, None when it finished).
    """

    kind: str
    name: str
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None
    seconds: float = 0.0
    error: str | None = None


def execute(task: RunTask, on_epoch: EpochHook | None = None) -> str | None:
    """Train ``task``; None when it finished, else its error text (also in failed.json).

    ``on_epoch`` gets each epoch's log row (passed to the trainer only when given, so a
    trainer without the hook still works serially).
    """
    folder = Path(task.folder)
    folder.mkdir(parents=True, exist_ok=True)
    failed = folder / files.FAILED
    failed.unlink(missing_ok=True)
    start = time.perf_counter()
    train_fn, build = _trainer(task)
    hook: dict[str, Any] = {} if on_epoch is None else {"on_epoch": on_epoch}
    try:
        train_fn(
            build(dict(task.options)), folder, resume=task.resume, progress=task.progress, **hook
        )
        if not (folder / files.DONE).is_file():
            raise RuntimeError(f"training returned but wrote no {files.DONE}")
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a failed run is recorded; the benchmark goes on
        text = f"{type(err).__name__}: {err}"
        record_failure(folder, task.name, text, traceback.format_exc(), time.perf_counter() - start)
        return text
    return None


def record_failure(folder: Path, name: str, error: str, trace: str, seconds: float) -> None:
    """Write ``folder/failed.json``: the run, its error, the traceback and the seconds."""
    record = {"run": name, "error": error, "traceback": trace, "seconds": round(seconds, 3)}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / files.FAILED, record)


def _trainer(task: RunTask) -> tuple[TrainFn, MakeConfig]:
    if task.train_fn is not None:
        return task.train_fn, task.make_config or dict
    from calfseg.bench.run_options import make_train_config
    from calfseg.train import train_run

    make = task.make_config
    if make is None:
        preset = task.train_preset

        def make(options: dict[str, Any]) -> Any:
            return make_train_config(options, preset=preset)

    return train_run, make
