"""Where the time of one default benchmark run goes: data, forward, backward, optimiser,
validation, checkpoint writes, the test evaluation and the worker's start-up.

Trains one run of the ``default`` benchmark preset (``unet``, the given loss, seed and fold
of its cross-validation) in this process at one thread, as a ``--jobs auto`` worker
would, under :mod:`cProfile`, and prints the seconds of each stage (cumulative time of the
functions that make it) and their share of the run::

    python -m benchmarks.profile_run                      # bce, seed 0, fold 1
    python -m benchmarks.profile_run --loss calf --fold 2
    python -m benchmarks.profile_run --data OUT/data      # an existing default cache

Import time (what a fresh worker process pays once) is measured in a child interpreter.
Give it the machine: a second PyTorch job on two cores distorts every number.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (stage, function names whose cumulative time makes it); the first match of each name
STAGES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("data (batches read)", (("calfseg/data/dataset.py", "read_batches"),)),
    ("forward (train)", (("calfseg/train/loop.py", "_train_epoch"),)),  # minus the others
    ("backward + optimiser", (("calfseg/train/loop.py", "_optimizer_step"),)),
    ("validation", (("calfseg/train/loop.py", "validate_epoch"),)),
    ("checkpoint writes", (("calfseg/train/checkpoint.py", "save"),)),
    ("test evaluation", (("calfseg/train/evaluate.py", "evaluate_checkpoint"),)),
    ("set-up (model, data)", (("calfseg/train/state.py", "start_training"),)),
)


def _cumulative(stats: pstats.Stats, path: str, name: str) -> float:
    total = 0.0
    for (file, _, func), row in stats.stats.items():  # type: ignore[attr-defined]
        if func == name and file.endswith(path):
            total += row[3]
    return total


def _import_seconds() -> float:
    code = (
        "import time; t = time.perf_counter(); "
        "import calfseg.train, calfseg.bench.executors.task; print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loss", default="bce")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--data", type=Path, help="the default preset's cache (else made here)")
    args = parser.parse_args()

    import torch

    from calfseg.bench import BENCHMARK_PRESETS
    from calfseg.bench.grid import RunSpec
    from calfseg.bench.run_options import make_train_config, train_options
    from calfseg.bench.runner import ensure_data
    from calfseg.train import train_run

    torch.set_num_threads(1)
    # What a worker imports on its first run (MONAI for the test distances, dynamo for the
    # deterministic settings) is paid once per worker: import it before the profile.
    import monai  # noqa: F401
    import torch._dynamo

    work = Path(tempfile.mkdtemp(prefix="calf-profile-"))
    config = BENCHMARK_PRESETS["default"].with_overrides(out=work, data=args.data)
    ensure_data(config)
    spec = RunSpec("unet", args.loss, args.seed, args.fold)
    train = make_train_config(train_options(config, spec), preset=config.train_preset)
    profiler = cProfile.Profile()
    tic = time.perf_counter()
    profiler.enable()
    outcome = train_run(train, work / "run", progress=False)
    profiler.disable()
    total = time.perf_counter() - tic
    stats = pstats.Stats(profiler)
    found = {
        stage: sum(_cumulative(stats, path, name) for path, name in functions)
        for stage, functions in STAGES
    }
    # _train_epoch holds the batches it reads and the optimiser steps: the rest is forward,
    # the loss and the logging
    train_epochs = found["forward (train)"]
    found["forward (train)"] = max(
        0.0, train_epochs - found["data (batches read)"] - found["backward + optimiser"]
    )
    # read_batches also feeds validation and the test evaluation: count it once, in training
    print(
        f"one run: {train.model}/{train.loss} seed {train.seed} fold {args.fold}: "
        f"{outcome['epochs_run']} epochs, best {outcome['best_epoch']}, {total:.1f} s "
        f"(under cProfile), 1 thread, output_prior={train.output_prior}, "
        f"channels_last={train.channels_last}"
    )
    print("| stage | seconds | share |")
    print("|---|---|---|")
    for stage, seconds in found.items():
        print(f"| {stage} | {seconds:.1f} | {seconds / total:.0%} |")
    print(f"| worker start-up (imports, once per worker) | {_import_seconds():.1f} | |")


if __name__ == "__main__":
    main()
