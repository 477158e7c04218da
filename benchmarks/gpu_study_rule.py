"""``calf study rule --preset project`` on one GPU machine, in about 10 minutes of device time.

The prepared script for a lent GPU (issue 18). The project preset trains smp models of the
paper's sizes at 256x256 (Adam 1e-5, batch 32); the whole study at its full sizes (7
datasets x 9 losses x 3 seeds x 20 epochs) needs hours, so this run keeps every dataset and
every loss and cuts the rest: one seed, no cross-validation (the cache's own test split),
``--epochs`` (default 5) and 24 synthetic cases per dataset. Its resolution is therefore
coarse (one seed cannot see training noise: the verdicts say so); it shows whether the CPU
study's answer holds at the paper's image size and model capacity, not a final number.

    python -m benchmarks.gpu_study_rule [--out OUT] [--epochs 5] [--datasets ...]

Prints the wall time and the finding, and copies rule.csv and study.md to ``$OUT`` when that
environment variable is set (the device tool's output folder).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path


def main() -> None:
    from calfseg.bench.study import RULE_DATASETS, RuleStudy
    from calfseg.bench.study_report import finding, run_rule_study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-study-rule"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--datasets", nargs="+", default=list(RULE_DATASETS))
    args = parser.parse_args()
    study = RuleStudy(
        out=args.out, datasets=tuple(args.datasets), preset="project", seeds=(12345,), folds=1,
        epochs=args.epochs,
    )  # fmt: skip
    start = time.perf_counter()
    results = run_rule_study(study, progress=False)
    print(f"gpu study rule: {time.perf_counter() - start:.0f} s for {len(results)} datasets")
    print(finding(results))
    saved = os.environ.get("OUT")
    if saved:
        for name in ("rule.csv", "study.md"):
            shutil.copy(args.out / name, Path(saved) / name)


if __name__ == "__main__":
    main()
