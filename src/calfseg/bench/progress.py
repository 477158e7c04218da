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
import sys
from pathlib import Path

import calfseg.run_files as files
from calfseg.bench.grid import RUNS_FOLDER

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
    test = _case_dice(folder / files.per_case_table(files.TEST_SPLIT))
    if test is None:
        test = _test_dice(folder / files.evaluation_report(files.TEST_SPLIT))
    return _best_val_dice(folder / files.LOG_CSV), test


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
    parallel: int = 1,
) -> str:
    """The line printed when run ``position`` of ``total`` ends.

    Args:
        seconds: how long this run took.
        elapsed: time since the benchmark started.
        durations: the durations of the runs trained so far in this invocation (this one
            included): their mean times the runs left is the ETA.
        folder: the run folder, to read the headline result from (finished runs).
        error: the error text of a failed run (its first line is shown).
        parallel: runs training at once (``--jobs``): the ETA divides by it.
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
        mean = sum(durations) / len(durations)
        eta = f"ETA {format_eta(left * mean / max(1, min(parallel, left)))}"
    else:
        eta = "no runs left"
    return f"[{position}/{total}] {name}  {result} | elapsed {format_duration(elapsed)}, {eta}"


def start_line(position: int, total: int, name: str) -> str:
    return f"[{position}/{total}] {name}  training ..."


def epoch_line(name: str, epoch: int | None, epochs: int | None, loss: float | None) -> str:
    """``    unet-bce-s0  epoch 3/30  loss 0.4121``: a running run's latest epoch."""
    of = f"/{epochs}" if epochs is not None else ""
    shown = "n/a" if loss is None or not math.isfinite(loss) else f"{loss:.4f}"
    return f"    {name}  epoch {epoch if epoch is not None else '?'}{of}  loss {shown}"


class RunBoard:
    """The progress display of runs training at once (``--jobs N``, ``--executor ray``).

    On a terminal every running run has a tqdm bar of its own (run name, epochs done, last
    training loss); elsewhere (a log file, a pipe) each start, epoch and end is a plain
    line. When a run ends, :func:`run_line` is printed either way. Events come from
    :class:`calfseg.bench.executors.RunEvent` (kind ``start``, ``epoch`` or ``end``).
    """

    def __init__(self, total: int, out: Path, *, parallel: int, enabled: bool = True) -> None:
        import time

        from calfseg.progress import stderr_is_terminal

        self.total = total
        self.out = out
        self.parallel = parallel
        self.enabled = enabled
        self.started = 0
        self.ended = 0
        self.durations: list[float] = []
        self._clock = time.perf_counter
        self._start = time.perf_counter()
        self._bars: dict[str, object] = {}
        self._tqdm = None
        if enabled and stderr_is_terminal():
            try:
                from tqdm import tqdm

                self._tqdm = tqdm
            except ImportError:
                self._tqdm = None

    def __call__(self, event: object) -> None:
        """Show ``event`` (a RunEvent)."""
        if not self.enabled:
            return
        kind, name = getattr(event, "kind", None), str(getattr(event, "name", ""))
        if kind == "start":
            self.started += 1
            epochs = getattr(event, "epochs", None)
            if self._tqdm is not None:
                self._bars[name] = self._tqdm(
                    total=epochs, desc=name, unit="epoch", file=sys.stderr, leave=False,
                    position=len(self._bars), dynamic_ncols=True,
                )  # fmt: skip
            else:
                self._print(start_line(self.started, self.total, name))
        elif kind == "epoch":
            epoch, loss = getattr(event, "epoch", None), getattr(event, "loss", None)
            bar = self._bars.get(name)
            if bar is not None:
                bar.n = epoch or 0  # type: ignore[attr-defined]
                bar.set_postfix_str(f"loss {loss:.4f}" if loss is not None else "")  # type: ignore[attr-defined]
            else:
                self._print(epoch_line(name, epoch, getattr(event, "epochs", None), loss))
        elif kind == "end":
            self.ended += 1
            seconds = float(getattr(event, "seconds", 0.0))
            self.durations.append(seconds)
            bar = self._bars.pop(name, None)
            if bar is not None:
                bar.close()  # type: ignore[attr-defined]
            line = run_line(
                self.ended, self.total, name, seconds, self._clock() - self._start,
                self.durations, folder=self.out / RUNS_FOLDER / name,
                error=getattr(event, "error", None), parallel=self.parallel,
            )  # fmt: skip
            self._print(line)

    def _print(self, line: str) -> None:
        if self._tqdm is not None:
            self._tqdm.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)


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
