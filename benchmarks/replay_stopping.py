"""Replay early stopping on the validation curves a benchmark logged.

For every finished run of a ``calf benchmark`` OUT, feeds the run's logged validation case
Dice (``log.csv``) to :class:`calfseg.train.stopping.EarlyStopping` under the given rule and
prints where that rule would have stopped the run and the best score it would have kept,
next to what the run actually did. Used to measure what ``min_epochs`` changes:

    python -m benchmarks.replay_stopping calf-benchmark --min-epochs 0

A replay can only stop a run earlier than it ran (the curve after its real end is unknown);
runs the replayed rule would have trained longer are marked ``(ran out of log)``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from calfseg.train.stopping import EarlyStopping


def replay(scores: list[float], patience: int, min_delta: float, min_epochs: int) -> int | None:
    """The epoch at which the rule stops a run with these scores, or None (it would not)."""
    stopping = EarlyStopping(patience, min_delta)
    for epoch, score in enumerate(scores, start=1):
        stopping.observe(score)
        if stopping.ends_run(epoch, min_epochs):  # the training loop's own test
            return epoch
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="a calf benchmark --out")
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--min-delta", type=float, default=0.005)
    parser.add_argument("--min-epochs", type=int, default=0)
    args = parser.parse_args()
    earlier = []
    for run in sorted((args.out / "runs").iterdir()):
        if not (run / "done.json").exists():
            continue
        done = json.loads((run / "done.json").read_text())
        with (run / "log.csv").open() as f:
            scores = [float(row["val_case_dice"]) for row in csv.DictReader(f)]
        stop = replay(scores, args.patience, args.min_delta, args.min_epochs)
        kept = max(scores[: stop or len(scores)])
        where = f"stop at {stop:>2}" if stop else "(ran out of log)"
        print(
            f"{run.name:<24} replay: {where}, best {kept:.3f} | ran {done['epochs_run']:>2} "
            f"epochs, best {done['best_val_case_dice']:.3f}, {done['stop_reason']}"
        )
        if stop is not None and stop < done["epochs_run"]:
            earlier.append((run.name, stop, kept, done["epochs_run"], done["best_val_case_dice"]))
    print(f"the replayed rule stops {len(earlier)} run(s) before they stopped:")
    for name, stop, kept, ran, best in earlier:
        print(f"  {name}: epoch {stop} with best {kept:.3f}; ran {ran} epochs, best {best:.3f}")


if __name__ == "__main__":
    main()
