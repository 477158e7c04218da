"""Speed of ``calf prepare`` on the BraTS 2015 subset, and where one case's time goes.

    python -m benchmarks.bench_prepare [--src ../shared/data/brats2015_subset] [--size 256]
                                       [--workers 1,2] [--repeats 3]

1. The command, end to end (a fresh cache each time; the interpreter's start and torch's
   import included), with each worker count: seconds in all and per case; then the
   library call alone (``prepare_cache``) and a rerun that finds the cache up to date.
2. One case, phase by phase (median of ``--repeats`` warm runs): the reader's ``load``
   and, inside it, the bare gzip decompression of the case's files; the sha256 of the
   files; ``slice_case`` (normalise, resize, quantise); writing the part.
3. cProfile of one case: the functions with the largest cumulative time, and the share of
   the profile spent in gzip/zlib.

Target (issue "data pipeline"): the work is dominated by NIfTI decompression, not by
Python loops over pixels.
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import median_seconds
from calfseg.data.preparation.case_worker import CaseJob, CaseTask, prepare_case
from calfseg.data.preparation.file_state import sha256_file, stat_files
from calfseg.data.preparation.pipeline import prepare_cache
from calfseg.data.preparation.source import PrepareSource, folder_source, source_files
from calfseg.data.preprocess import PreprocessOptions, slice_case

DEFAULT_SRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "brats2015_subset"


def command_seconds(src: Path, size: int, workers: int, repeats: int) -> float:
    """Median wall time of ``calf prepare SRC --out NEW --size S --workers W``."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            argv = [sys.executable, "-m", "calfseg.cli", "prepare", str(src), "--out",
                    f"{tmp}/cache", "--size", str(size), "--workers", str(workers),
                    "--no-progress"]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def library_seconds(source: PrepareSource, options: PreprocessOptions, workers: int) -> tuple:
    """(seconds of a fresh prepare_cache, seconds of the up-to-date rerun, slices)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = prepare_cache(source, Path(tmp) / "cache", options, workers=workers)
        fresh = time.perf_counter() - start
        start = time.perf_counter()
        again = prepare_cache(source, Path(tmp) / "cache", options, workers=workers)
        assert again.status == "up-to-date"
        return fresh, time.perf_counter() - start, report.n_slices


def phases(source: PrepareSource, options: PreprocessOptions, repeats: int) -> None:
    case = source.find_cases()[0]
    files = source_files(case)
    gz = [p for p in files if p.name.endswith(".gz")]
    with tempfile.TemporaryDirectory() as tmp:
        task = CaseTask(source.reader, source.root, options, "bench", Path(tmp))
        job = CaseJob(case, stat_files(files, source.root))
        volumes = source.reader.load(case)
        slices = slice_case(volumes, options)
        rows = {
            "whole case (prepare_case)": median_seconds(lambda: prepare_case(task, job), repeats),
            "  read (reader.load)": median_seconds(lambda: source.reader.load(case), repeats),
            "    of which gunzip alone": median_seconds(
                lambda: [gzip.decompress(p.read_bytes()) for p in gz], repeats
            ),
            "  sha256 of the files": median_seconds(
                lambda: [sha256_file(p) for p in files], repeats
            ),
            "  slice_case (normalise, resize, quantise)": median_seconds(
                lambda: slice_case(volumes, options), repeats
            ),
        }
        total = rows["whole case (prepare_case)"]
        print(f"\none case ({case.case_id}, {len(slices)} slices), median of {repeats}:")
        for name, seconds in rows.items():
            print(f"  {name:<46}{seconds:7.3f} s  {seconds / total:6.1%}")
        rest = total - sum(v for k, v in rows.items() if k.startswith("  ") and "of which" not in k)
        print(f"  {'  writing the part, the rest':<46}{rest:7.3f} s  {rest / total:6.1%}")
        profile(task, job)


def profile(task: CaseTask, job: CaseJob) -> None:
    prepare_case(task, job)
    profiler = cProfile.Profile()
    profiler.enable()
    prepare_case(task, job)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = max(stats.total_tt, 1e-9)  # type: ignore[attr-defined]
    raw = stats.stats  # type: ignore[attr-defined]
    decompress = sum(
        tt
        for (filename, _, name), (_, _, tt, _, _) in raw.items()
        if "zlib" in name or "decompress" in name or "crc32" in name
        or filename.endswith(("gzip.py", "_compression.py"))
    )  # fmt: skip
    print(f"\ncProfile of one case: {total:.3f} s; gzip/zlib (decompression, crc) "
          f"{decompress:.3f} s = {decompress / total:.0%} of the profile")  # fmt: skip
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(14)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    print("\n".join(line.replace(str(Path.cwd()) + "/", "") for line in lines[start:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.src.is_dir():
        sys.exit(f"no such folder: {args.src}")
    source, message = folder_source(args.src)
    cases = len(source.find_cases())
    options = PreprocessOptions(size=args.size)
    print(
        f"calf prepare {args.src} --size {args.size}: {message}, {cases} cases; "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    for workers in (int(w) for w in args.workers.split(",")):
        command = command_seconds(args.src, args.size, workers, args.repeats)
        fresh, rerun, slices = library_seconds(source, options, workers)
        print(
            f"--workers {workers}: command {command:6.2f} s ({command / cases:.2f} s per case); "
            f"prepare_cache {fresh:6.2f} s ({fresh / cases:.2f} s per case, "
            f"{slices / fresh:,.0f} slices/s); up-to-date rerun {rerun:.3f} s"
        )
    phases(source, options, args.repeats)


if __name__ == "__main__":
    main()
