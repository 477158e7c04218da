"""One progress line per benchmark run, with its headline result, the time so far and an
estimate of the time left::

    [3/42] unet-bce-s0  done in 43 s  val Dice 0.71  test Dice 0.68 | elapsed 2 min 9 s, ETA ~28 min
    [4/42] unet-combo-s0  FAILED after 2 s: RuntimeError: ... | elapsed 2 min 11 s, ETA ~27 min

``val Dice`` is the best validation case Dice of ``log.csv`` (``val_case_dice``, which picks
``best.pt``; logs of older runs: ``val_dice``),
``test Dice`` the mean per-case test Dice of ``per_case_test.csv`` (the unit of the
verdicts; runs without that file: the per-image Dice of ``eval_test.json``). The ETA is the
mean duration of the runs this invocation has trained (finished or failed) times the runs
left.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

TEST_DICE_KEY = "dice/per_image"


def format_duration(seconds: float) -> str:
    """``43 s``, ``5 min 2 s``, ``1 h 4 min``."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    return f"{total // 3600} h {total % 3600 // 60} min"


def format_eta(seconds: float) -> str:
    """A rough estimate: ``~40 s`` under a minute, else whole minutes (``~12 min``) or
    hours and minutes."""
    if seconds < 60:
        return f"~{max(0, round(seconds))} s"
    if seconds < 3600:
        return f"~{round(seconds / 60)} min"
    return "~" + format_duration(seconds)


def headline(folder: Path) -> tuple[float | None, float | None]:
    """(best validation case Dice, mean per-case test Dice) of a finished run folder; None
    where the run has no such number (no validation split, an undefined Dice, a missing
    file)."""
    test = _case_dice(folder / "per_case_test.csv")
    if test is None:
        test = _test_dice(folder / "eval_test.json")
    return _best_val_dice(folder / "log.csv"), test


def run_line(
    position: int,
    total: int,
    name: str,
    seconds: float,
    elapsed: float,
    durations: list[float],
    *,
    folder: Path | None = None,
    error: str | None = None,
) -> str:
    """The line printed when run ``position`` of ``total`` ends.

    Args:
        seconds: how long this run took.
        elapsed: time since the benchmark started.
        durations: the durations of the runs trained so far in this invocation (this one
            included): their mean times the runs left is the ETA.
        folder: the run folder, to read the headline result from (finished runs).
        error: the error text of a failed run (its first line is shown).
    """
    if error is not None:
        first = error.splitlines()[0] if error else "unknown error"
        result = f"FAILED after {format_duration(seconds)}: {first}"
    else:
        val, test = headline(folder) if folder is not None else (None, None)
        result = (
            f"done in {format_duration(seconds)}  val Dice {_dice(val)}  test Dice {_dice(test)}"
        )
    left = total - position
    if left > 0 and durations:
        eta = f"ETA {format_eta(left * sum(durations) / len(durations))}"
    else:
        eta = "no runs left"
    return f"[{position}/{total}] {name}  {result} | elapsed {format_duration(elapsed)}, {eta}"


def start_line(position: int, total: int, name: str) -> str:
    return f"[{position}/{total}] {name}  training ..."


def _dice(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _best_val_dice(path: Path) -> float | None:
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        column = "val_case_dice" if rows and "val_case_dice" in rows[0] else "val_dice"
        cells = [row.get(column) for row in rows]
    except OSError:
        return None
    values = [_finite(c) for c in cells]
    found = [v for v in values if v is not None]
    return max(found) if found else None


def _case_dice(path: Path) -> float | None:
    try:
        with path.open(newline="") as handle:
            values = [_finite(row.get("dice")) for row in csv.DictReader(handle)]
    except OSError:
        return None
    found = [v for v in values if v is not None]
    return sum(found) / len(found) if found else None


def _test_dice(path: Path) -> float | None:
    try:
        results = json.loads(path.read_text()).get("results") or {}
    except (OSError, ValueError, AttributeError):
        return None
    return _finite(results.get(TEST_DICE_KEY))


def _finite(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
