"""Trainers for the worker-process and Ray executors: module-level, so that a spawned
process can unpickle them."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from calfseg.run_files import DONE
from calfseg.train.provenance import run_provenance, write_provenance

from .fakes import write_run


class ParallelTrainer:
    """Writes a fake finished run after reporting two epochs; raises for the run names in
    ``fail`` and ends its whole process (as a crash or the OOM killer would) for ``die``."""

    def __init__(self, fail: tuple[str, ...] = (), die: tuple[str, ...] = ()) -> None:
        self.fail = fail
        self.die = die

    def __call__(self, options: dict[str, Any], run_dir: Path, **kwargs: Any) -> None:
        name = Path(run_dir).name
        hook = kwargs.get("on_epoch")
        if hook is not None:
            for epoch in (1, 2):
                hook({"epoch": epoch, "train_loss": 1.0 / epoch})
        if name in self.die:
            os._exit(3)
        if name in self.fail:
            raise RuntimeError(f"{name} diverged")
        (Path(run_dir) / "threads.txt").write_text(os.environ.get("OMP_NUM_THREADS", ""))
        (Path(run_dir) / "resumed.txt").write_text(str(kwargs["resume"]))
        write_run(Path(run_dir).parents[1], options["model"], options["loss"], options["seed"])
        write_provenance(run_dir, run_provenance(options))


class DiesMidMessage:
    """For the runs in ``die``: marks ``RUN/sending``, sends a 16 MB epoch event (more than a
    pipe holds, so the write waits for a reader) and is ended by a timer 1 s later, mid-
    message, as the OOM killer can end a worker. Other runs finish at once."""

    def __init__(self, die: tuple[str, ...]) -> None:
        self.die = die

    def __call__(self, options: dict[str, Any], run_dir: Path, **kwargs: Any) -> None:
        run_dir = Path(run_dir)
        if run_dir.name in self.die:
            (run_dir / "sending").touch()
            threading.Timer(1.0, os._exit, args=(3,)).start()
            kwargs["on_epoch"]({"epoch": b"x" * (16 << 20), "train_loss": 1.0})
            time.sleep(60)  # not reached before the timer
        (run_dir / DONE).write_text("{}")
