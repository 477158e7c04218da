"""Wall time of a small benchmark grid at ``--jobs 1`` and ``--jobs 2``, idle and beside one
competing busy process, with the thread policy and without it (``--no-thread-policy``:
every run keeps torch's default threads, i.e. the code before the policy).

Every configuration is a fresh ``calf benchmark`` process on one shared synthetic cache
(prepared first), into its own OUT. Prints each configuration's wall time, its ratio to
``--jobs 1`` of the same policy and load measured in this run, and whether its
``results.csv`` is byte-identical to the baseline's (policy, idle, ``--jobs 1``).

    python -m benchmarks.bench_grid [--epochs 3 --cases 48 --slices 16 --size 48]
                                    [--only policy] [--no-busy] [--keep DIR]

Target (issue 11): with the policy, ``--jobs 2`` takes at most 0.75x the wall time of
``--jobs 1`` on a 2-core machine, and its results.csv is identical. docs/scale.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The grid: 2 losses x 2 folds of the default preset (tiny U-Net, cpu training preset).
GRID = ["--losses", "bce", "calf", "--folds", "2", "--seeds", "1"]
BUSY = "while True: pass"  # one competing process keeping one core busy


def calf(*argv: str, env: dict[str, str] | None = None) -> float:
    """Run ``calf ARGV`` in a fresh interpreter; its wall time in seconds."""
    tic = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "calfseg.cli", *argv], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - tic
    if done.returncode != 0:
        sys.exit(f"calf {' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3)")
    parser.add_argument("--cases", type=int, default=48, help="synthetic cases (default 48)")
    parser.add_argument("--slices", type=int, default=16, help="slices per case (default 16)")
    parser.add_argument("--size", type=int, default=48, help="slice side (default 48)")
    parser.add_argument(
        "--only", choices=("policy", "before"), help="measure one side only (default both)"
    )
    parser.add_argument("--no-busy", action="store_true", help="skip the competing process")
    parser.add_argument("--keep", type=Path, help="keep the OUT folders here")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-grid-"))
    root.mkdir(parents=True, exist_ok=True)
    cache = root / "data"
    calf(
        "prepare", "--synthetic", "paper-like", "--out", str(cache), "--size", str(args.size),
        "--cases", str(args.cases), "--slices", str(args.slices), "--no-progress",
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    sides = [s for s in ("policy", "before") if args.only in (None, s)]
    loads = ["idle"] + ([] if args.no_busy else ["busy"])
    print(
        f"# {platform.node()}: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), "
        f"grid {' '.join(GRID)} --epochs {args.epochs}, cache {args.cases}x{args.slices} "
        f"at {args.size}x{args.size}"
    )
    print(f"{'threads':8} {'load':5} {'jobs':>4} {'wall s':>8} {'x jobs 1':>9}  results.csv")
    baseline: str | None = None
    for side in sides:
        for load in loads:
            first: float | None = None
            for jobs in (1, 2):
                out = root / f"{side}-{load}-j{jobs}"
                argv = ["benchmark", "--data", str(cache), "--out", str(out), *GRID]
                argv += ["--epochs", str(args.epochs), "--jobs", str(jobs), "--no-progress"]
                if side == "before":
                    argv.append("--no-thread-policy")
                busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load == "busy" else None
                try:
                    seconds = calf(*argv, env=env)
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
                first = seconds if first is None else first
                results = (out / "results.csv").read_text()
                baseline = results if baseline is None else baseline
                same = "identical" if results == baseline else "DIFFERS"
                ratio = seconds / first
                print(
                    f"{side:8} {load:5} {jobs:4d} {seconds:8.1f} {ratio:9.2f}  {same}", flush=True
                )
    if args.keep is None:
        print(f"# OUT folders left in {root}")


if __name__ == "__main__":
    main()
