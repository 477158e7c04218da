"""Coverage and width of the verdicts' interval, by simulation.

Simulates benchmarks of the crossed design the verdicts model (docs/benchmark.md,
*Statistics*): ``D[c, s] = mu + a[c] + r[s, fold(c)] + e[c, s]``, with ``mu = 0``, and counts
how often each interval contains ``mu``, how wide it is against the narrowest honest one (the
normal interval with the true standard deviation of the estimate, measured over the
replications), and how often it says "better" or "worse" although the truth is 0.

Two sets of designs:

- **named** designs: case-, run- and interaction-dominated variance, 2 to 10 seeds, 6 to
  500 cases, with and without cross-validation (leave-one-out included), normal, heavy-tailed
  (t with 3 df) and skewed (centred exponential) case effects, heavy-tailed runs, missing
  cells and a missing run; and the shape of the default benchmark's own numbers;
- **random** designs, drawn from a fixed generator over the same ranges, which the interval
  was never looked at on while it was written: the held-out check.

Intervals compared: ``paired`` (:func:`calfseg.bench.stats.paired_interval`, the one the
verdicts use: the hull of the generalized pivot and a studentized bootstrap of the case
means), ``pivot`` (the generalized pivot alone, the verdicts' interval before the hull),
``satterthwaite`` (the same mean squares with Satterthwaite's degrees of
freedom instead of the generalized pivot), ``pigeonhole`` (the percentile bootstrap over
cases and seeds used before, written out here for comparison) and ``seed-t`` (a t-interval
over the seeds' mean differences, k - 1 df, which ignores the cases).

    python -m benchmarks.coverage                 # named designs, 2,000 benchmarks each
    python -m benchmarks.coverage --random 200    # plus 200 random designs (500 each)
    python -m benchmarks.coverage --quick         # 400 benchmarks each, no bootstrap
    python -m benchmarks.coverage --only-random --random 200 --csv designs.csv
    python -m benchmarks.coverage --methods paired pivot   # only these intervals
    python -m benchmarks.coverage --only-random --random 200 --random-seed 7   # a fresh set

The random designs are summarised over those that keep two or more seeds in every benchmark;
a design that a missing run leaves with one seed is listed apart (its verdicts say they
cannot see training variance).

The random designs compare ``paired``, ``pivot`` and ``satterthwaite`` only (the bootstrap over 200
designs would take hours on two cores; the named designs show where it fails).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats

from calfseg.bench.interval import generalized_half_width, mean_squares
from calfseg.bench.stats import paired_estimate

CONFIDENCE = 0.95
Z = stats.norm.ppf((1 + CONFIDENCE) / 2)


@dataclass(frozen=True)
class Design:
    """One simulated benchmark design: sizes, variance components (SDs in Dice), the shape
    of the case effects and runs, and what is missing."""

    name: str
    cases: int
    seeds: int
    folds: int = 1  # 1: every run tests every case; cases: leave-one-out
    sd_case: float = 0.05
    sd_run: float = 0.01
    sd_within: float = 0.03
    case_shape: str = "normal"  # normal | t3 | skewed
    run_shape: str = "normal"  # normal | t3
    missing_cells: float = 0.0  # share of cells missing at random
    missing_run: bool = False  # one (seed, fold) run failed: its cells are missing


NAMED: tuple[Design, ...] = (
    Design("case-dominated, 48 cases, 3 seeds, 3 folds", 48, 3, 3, 0.10, 0.005, 0.03),
    Design("run-dominated, 48 cases, 3 seeds, 3 folds", 48, 3, 3, 0.02, 0.05, 0.02),
    Design("interaction-dominated, 48 cases, 3 seeds, 3 folds", 48, 3, 3, 0.01, 0.005, 0.10),
    Design("default-like (seeds -0.04/+0.07/+0.08), 48 x 3, 3 folds", 48, 3, 3, 0.05, 0.06, 0.05),
    Design("run-dominated, 48 cases, 2 seeds, 3 folds", 48, 2, 3, 0.02, 0.05, 0.02),
    Design("run-dominated, 48 cases, 5 seeds, 3 folds", 48, 5, 3, 0.02, 0.05, 0.02),
    Design("run-dominated, 48 cases, 10 seeds, 3 folds", 48, 10, 3, 0.02, 0.05, 0.02),
    Design("run-dominated, 48 cases, 3 seeds, no CV", 48, 3, 1, 0.02, 0.05, 0.02),
    Design("run-dominated, 48 cases, 2 seeds, no CV", 48, 2, 1, 0.02, 0.05, 0.02),
    Design("balanced, 6 cases, 3 seeds, 3 folds (BraTS subset)", 6, 3, 3, 0.08, 0.05, 0.05),
    Design("balanced, 6 cases, 3 seeds, leave-one-out", 6, 3, 6, 0.08, 0.05, 0.05),
    Design("balanced, 6 cases, 2 seeds, no CV", 6, 2, 1, 0.08, 0.05, 0.05),
    Design("case-dominated, 6 cases, 5 seeds, no CV", 6, 5, 1, 0.10, 0.01, 0.03),
    Design("balanced, 12 cases, 3 seeds, 4 folds", 12, 3, 4, 0.05, 0.03, 0.05),
    Design("balanced, 200 cases, 3 seeds, 5 folds", 200, 3, 5, 0.10, 0.02, 0.08),
    Design("case-dominated, 500 cases, 3 seeds, 5 folds", 500, 3, 5, 0.15, 0.005, 0.05),
    Design("run-dominated, 500 cases, 10 seeds, no CV", 500, 10, 1, 0.05, 0.03, 0.05),
    Design("heavy-tailed cases (t3), 48 x 3, 3 folds", 48, 3, 3, 0.08, 0.02, 0.04, "t3"),
    Design("heavy-tailed cases (t3), 6 x 3, no CV", 6, 3, 1, 0.08, 0.02, 0.04, "t3"),
    Design("skewed cases, 48 x 3, 3 folds", 48, 3, 3, 0.08, 0.02, 0.04, "skewed"),
    Design("skewed cases, 12 x 3, 3 folds", 12, 3, 3, 0.08, 0.02, 0.04, "skewed"),
    Design("heavy-tailed runs (t3), 48 x 5, 3 folds", 48, 5, 3, 0.03, 0.04, 0.03, "normal", "t3"),
    Design("10 % cells missing, 48 x 3, 3 folds", 48, 3, 3, 0.05, 0.03, 0.05, missing_cells=0.1),
    Design("one run missing, 48 x 3, 3 folds", 48, 3, 3, 0.05, 0.03, 0.05, missing_run=True),
    Design("one run missing, 6 x 3, no CV", 6, 3, 1, 0.05, 0.03, 0.05, missing_run=True),
    # the default benchmark's own variance components (docs/benchmark.md, Statistics)
    Design("the default's CALF - BCE (2 folds), 48 x 3", 48, 3, 2, 0.010, 0.013, 0.029),
    Design("the default's control (2 folds), 48 x 3", 48, 3, 2, 0.0, 0.011, 0.039),
    # the four-seed default's components on a later machine (docs/results.md)
    Design("the default's CALF - BCE (2 folds), 48 x 4", 48, 4, 2, 0.019, 0.014, 0.037),
    Design("the default's control (2 folds), 48 x 4", 48, 4, 2, 0.0, 0.015, 0.040),
)


def simulate(design: Design, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One benchmark of ``design``: the cases x seeds table (NaN: missing) and the fold of
    every case (dealt round-robin, as ``calf benchmark --folds`` deals patients)."""
    n, k, f = design.cases, design.seeds, design.folds
    folds = np.arange(n) % f
    a = _draw(rng, design.case_shape, n) * design.sd_case
    r = _draw(rng, design.run_shape, k * f).reshape(k, f) * design.sd_run
    e = rng.normal(0.0, design.sd_within, (n, k))
    table = a[:, None] + r[:, folds].T + e
    if design.missing_cells > 0:
        holes = rng.random((n, k)) < design.missing_cells
        holes[np.arange(n), rng.integers(0, k, n)] = False  # every case keeps one value
        table[holes] = np.nan
    if design.missing_run:
        table[folds == rng.integers(0, f), rng.integers(0, k)] = np.nan
    return table, folds


def _draw(rng: np.random.Generator, shape: str, size: int) -> np.ndarray:
    """Unit-variance, mean-zero draws of the named shape."""
    if shape == "normal":
        return rng.normal(0.0, 1.0, size)
    if shape == "t3":
        return rng.standard_t(3, size) / math.sqrt(3.0)  # Var(t3) = 3
    if shape == "skewed":
        return rng.exponential(1.0, size) - 1.0
    raise ValueError(f"unknown shape {shape!r}")


def interval_paired(table: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    estimate = paired_estimate(table, confidence=CONFIDENCE, folds=folds.tolist())
    return estimate.low, estimate.high


def interval_pigeonhole(
    table: np.ndarray, folds: np.ndarray, resamples: int = 1000, seed: int = 2504
) -> tuple[float, float]:
    """The previous release's interval: percentile bootstrap drawing cases and seeds
    independently with replacement (Owen 2007), per drawn case the mean over the drawn
    seeds it has, then the mean over the drawn cases."""
    n, k = table.shape
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n, (resamples, n))
    cols = rng.integers(0, k, (resamples, k))
    block = table[rows[:, :, None], cols[:, None, :]]
    with np.errstate(invalid="ignore"), _quiet():
        means = np.nanmean(np.nanmean(block, axis=2), axis=1)
    means = means[~np.isnan(means)]
    low, high = np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(low), float(high)


def interval_pivot(table: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """The generalized pivot alone, without the studentized bootstrap's skew guard (the
    verdicts' interval before the hull)."""
    squares = mean_squares(table, folds=folds.tolist())
    half = generalized_half_width(squares, CONFIDENCE)
    return squares.mean - half, squares.mean + half


def interval_satterthwaite(table: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """The same mean squares as ``paired``, with a t whose degrees of freedom are
    Satterthwaite's (1946) for ``S2 / n + g MS_seeds / m`` (both terms positive)."""
    squares = mean_squares(table, folds=folds.tolist())
    terms = [(squares.ms_cases / squares.n_cases, squares.df_cases)]
    if squares.run_weight > 0 and squares.ms_seeds > 0:
        terms.append((squares.run_weight * squares.ms_seeds / squares.seeds_per_run,
                      squares.df_seeds))  # fmt: skip
    variance = sum(term for term, _ in terms)
    if variance == 0:
        return squares.mean, squares.mean
    df = variance**2 / sum(term**2 / dof for term, dof in terms)
    half = stats.t.ppf((1 + CONFIDENCE) / 2, df) * math.sqrt(variance)
    return squares.mean - half, squares.mean + half


def interval_seed_t(table: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """A t-interval over the k seeds' mean differences (k - 1 df): blind to the cases."""
    with _quiet():
        seed_means = np.nanmean(table, axis=0)
    k = seed_means.size
    half = stats.t.ppf((1 + CONFIDENCE) / 2, k - 1) * seed_means.std(ddof=1) / math.sqrt(k)
    centre = float(np.nanmean(np.nanmean(table, axis=1)))
    return centre - half, centre + half


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's "mean of empty slice" for the cases and seeds a draw left empty."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


METHODS = {
    "paired": interval_paired,
    "pivot": interval_pivot,
    "satterthwaite": interval_satterthwaite,
    "pigeonhole": interval_pigeonhole,
    "seed-t": interval_seed_t,
}


@dataclass
class Outcome:
    coverage: dict[str, float]
    width_ratio: dict[str, float]  # mean half-width / (z x SD of the estimate)
    oracle_half: float
    blind: float  # share of benchmarks left with one seed (the verdict says it is blind)


def run_design(design: Design, reps: int, methods: list[str], seed: int) -> Outcome:
    rng = np.random.default_rng(seed)
    hits = {m: 0 for m in methods}
    halves: dict[str, list[float]] = {m: [] for m in methods}
    estimates = []
    blind = 0
    for _ in range(reps):
        table, folds = simulate(design, rng)
        estimate = paired_estimate(table, folds=folds.tolist())
        estimates.append(estimate.mean)
        blind += not estimate.sees_runs
        for method in methods:
            low, high = METHODS[method](table, folds)
            hits[method] += low <= 0.0 <= high
            halves[method].append((high - low) / 2)
    oracle = Z * float(np.std(estimates))
    return Outcome(
        coverage={m: hits[m] / reps for m in methods},
        width_ratio={m: float(np.mean(halves[m])) / oracle for m in methods},
        oracle_half=oracle,
        blind=blind / reps,
    )


RANDOM_SEED = 20261207


def random_designs(count: int, seed: int = RANDOM_SEED) -> list[Design]:
    """Designs drawn over the ranges users run: 6-500 cases (log-uniform), 2-10 seeds, no
    CV / 3 / 5 folds / leave-one-out (small n), variance shares from a Dirichlet(1, 1, 1)
    with a total SD of 0.02-0.15, the three case shapes, runs normal or t3, and missing
    cells or runs now and then."""
    rng = np.random.default_rng(seed)
    designs = []
    for i in range(count):
        n = round(math.exp(rng.uniform(math.log(6), math.log(500))))
        k = int(rng.integers(2, 11))
        choices = [1, 3, 5] + ([n] if n <= 12 else [])
        folds = int(rng.choice([c for c in choices if c <= n]))
        shares = rng.dirichlet([1.0, 1.0, 1.0])
        total = rng.uniform(0.02, 0.15)
        sd_case, sd_run, sd_within = (float(total * math.sqrt(s)) for s in shares)
        designs.append(
            Design(
                f"random {i + 1}",
                n,
                k,
                folds,
                sd_case,
                sd_run,
                sd_within,
                case_shape=str(rng.choice(["normal", "t3", "skewed"])),
                run_shape=str(rng.choice(["normal", "normal", "t3"])),
                missing_cells=float(rng.choice([0.0, 0.0, 0.0, 0.05, 0.15])),
                missing_run=bool(rng.random() < 0.15),
            )
        )
    return designs


def _random_summary(designs: list[Design], reps: int, methods: list[str], csv: str | None) -> None:
    """Coverage over the random designs, split by what the verdict claims: designs whose
    benchmarks keep two or more seeds (the interval sees the runs) and designs a missing run
    leaves with one seed, where the verdict says it cannot see training variance."""
    random_methods = [m for m in methods if m in ("paired", "pivot", "satterthwaite")]
    outcomes = []
    for i, design in enumerate(designs):
        outcomes.append(run_design(design, reps, random_methods, seed=5000 + i))
    if csv:
        with open(csv, "w", encoding="utf-8") as out:
            fields = [f.name for f in dataclasses.fields(Design)]
            columns = [f"{m}_{what}" for m in random_methods for what in ("cover", "width")]
            out.write(",".join(fields + columns + ["one_seed_share"]) + "\n")
            for design, outcome in zip(designs, outcomes, strict=True):
                values = [str(getattr(design, f)) for f in fields]
                for m in random_methods:
                    values += [f"{outcome.coverage[m]:.4f}", f"{outcome.width_ratio[m]:.4f}"]
                out.write(",".join([*values, f"{outcome.blind:.4f}"]) + "\n")
    pairs = list(zip(designs, outcomes, strict=True))
    seeing = [o for _, o in pairs if o.blind == 0]
    blind = [(d, o) for d, o in pairs if o.blind > 0]
    print(
        f"\n{len(designs)} random designs ({reps} benchmarks each); {len(seeing)} keep two or "
        "more seeds in every benchmark (the interval sees the runs):\n"
    )
    print("| interval | min coverage | 5th pct | median | share >= 92 % | median width |")
    print("|---|---|---|---|---|---|")
    for m in random_methods:
        c = np.asarray([o.coverage[m] for o in seeing])
        w = np.asarray([o.width_ratio[m] for o in seeing])
        print(
            f"| {m} | {c.min():.1%} | {np.quantile(c, 0.05):.1%} | {np.median(c):.1%} | "
            f"{(c >= 0.92).mean():.0%} | {np.median(w):.2f} |"
        )
    worst = min((p for p in pairs if p[1].blind == 0), key=lambda p: p[1].coverage["paired"])
    print(f"\nlowest 'paired' coverage among them: {worst[0]}")
    if blind:
        print(
            f"\n{len(blind)} designs lose a run and keep one seed in some benchmarks "
            "(their verdicts say the interval cannot see training variance):"
        )
        for design, outcome in blind:
            print(
                f"- {design.name}: {design.cases} cases, {design.seeds} seeds, "
                f"{design.folds} fold(s), one seed in {outcome.blind:.0%} of benchmarks; "
                f"'paired' covers {outcome.coverage['paired']:.1%}"
            )


def _named(pattern: str | None) -> tuple[Design, ...]:
    """The named designs whose name contains ``pattern`` (all of them for None)."""
    return tuple(d for d in NAMED if pattern is None or pattern in d.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2000, help="benchmarks per design")
    parser.add_argument("--random", type=int, default=0, help="random designs to add")
    parser.add_argument("--quick", action="store_true", help="400 reps, no bootstrap")
    parser.add_argument("--only-random", action="store_true")
    parser.add_argument("--named", metavar="TEXT", help="only the named designs containing TEXT")
    parser.add_argument("--csv", metavar="FILE", help="write each random design's row here")
    parser.add_argument(
        "--random-seed", type=int, default=RANDOM_SEED,
        help=f"the random designs' generator (default {RANDOM_SEED}; another draws a fresh, "
        "held-out set)",
    )  # fmt: skip
    parser.add_argument(
        "--methods", nargs="+", choices=list(METHODS), help="only these intervals (default: all)"
    )
    args = parser.parse_args()
    reps = 400 if args.quick else args.reps
    methods = ["paired", "satterthwaite", "seed-t"] if args.quick else list(METHODS)
    if args.methods:
        methods = [m for m in methods if m in args.methods]
    start = time.perf_counter()
    header = "| design | " + " | ".join(f"{m} cover | {m} width" for m in methods) + " |"
    if not args.only_random:
        print(
            f"Nominal {CONFIDENCE:.0%}; {reps} simulated benchmarks per design; width = mean "
            "half-width / the narrowest honest one (z x the estimate's true SD).\n"
        )
        print(header)
        print("|---" * (1 + 2 * len(methods)) + "|")
        for i, design in enumerate(NAMED):
            if design not in _named(args.named):
                continue
            outcome = run_design(design, reps, methods, seed=1000 + i)
            cells = " | ".join(
                f"{outcome.coverage[m]:.1%} | {outcome.width_ratio[m]:.2f}" for m in methods
            )
            print(f"| {design.name} | {cells} |", flush=True)
    if args.random:
        designs = random_designs(args.random, args.random_seed)
        _random_summary(designs, max(200, reps // 4), methods, args.csv)
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
