"""Timing helpers for the benchmark scripts: median of repeated runs after a warm-up."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int = 15, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_times(
    fns: dict[str, Callable[[], object]], repeats: int = 15, warmup: int = 3, seed: int = 0
) -> dict[str, list[float]]:
    """Seconds of each call of each function, timed round-robin (one call of each per round)
    so that drift in the machine's speed and allocator warm-up affect all alike. The order
    within a round is shuffled (seeded): on a CPU a function's time depends on what ran just
    before it (caches, pages freed by the previous call), and a fixed order turns that into
    a bias between two copies of one function."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    rng = random.Random(seed)
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            fn = fns[name]
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def interleaved_medians(
    fns: dict[str, Callable[[], object]], repeats: int = 15, warmup: int = 3, seed: int = 0
) -> dict[str, float]:
    """Median seconds of each function (:func:`interleaved_times`)."""
    times = interleaved_times(fns, repeats=repeats, warmup=warmup, seed=seed)
    return {name: statistics.median(t) for name, t in times.items()}


def paired_ratios(times: dict[str, list[float]], base: str) -> dict[str, float]:
    """Median over rounds of each function's time divided by ``base``'s time in the same
    round: a slow round (another tenant, a frequency change) slows both and cancels."""
    return {
        name: statistics.median(a / b for a, b in zip(t, times[base], strict=True))
        for name, t in times.items()
    }
