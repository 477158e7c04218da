"""Per-epoch logs: ``log.csv`` and ``log.jsonl``, one row per epoch, rewritten atomically.

``val_case_dice`` (mean per-case Dice, which picks ``best.pt`` and drives early stopping) and
``val_dice`` (mean per-image Dice, empty-on-empty 1, kept for comparison) are defined in
:mod:`calfseg.train.case_dice`; ``lr`` is the rate of the epoch's first step.

Each append rewrites both files through a temporary file and ``os.replace`` (the logs are a
few hundred rows at most), so a killed run never leaves half a line. On resume,
:meth:`EpochLog.truncate` drops the rows of epochs after the checkpoint's.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import calfseg.run_files as files
from calfseg.atomic import atomic_write_text
from calfseg.rule import BRANCHES

BASE_COLUMNS: tuple[str, ...] = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_case_dice",
    "val_dice",
    "seconds",
    "lr",
    "steps",
)
BRANCH_COLUMNS: tuple[str, ...] = tuple(f"branch/{b}" for b in BRANCHES)
COMPARABLE_COLUMN = "train_bce"


class EpochLog:
    """The two log files of a run folder.

    Args:
        run_dir: the run folder.
        branches: add ``train_bce`` (the BCE of the training logits, comparable across
            steps and runs where CALF's own loss changes formula with its pick) and the
            ``branch/<name>`` columns (CALF losses).
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, branches: bool) -> None:
        self.csv_path = Path(run_dir) / files.LOG_CSV
        self.jsonl_path = Path(run_dir) / files.LOG_JSONL
        extra = (COMPARABLE_COLUMN, *BRANCH_COLUMNS) if branches else ()
        self.columns: tuple[str, ...] = BASE_COLUMNS + extra
        self.rows: list[dict[str, Any]] = self._read()

    def _read(self) -> list[dict[str, Any]]:
        if not self.jsonl_path.is_file():
            return []
        return [json.loads(line) for line in self.jsonl_path.read_text().splitlines() if line]

    def append(self, row: dict[str, Any]) -> None:
        """Add one epoch's row (missing columns stay empty) and rewrite both files."""
        self.rows.append({name: _clean(row.get(name)) for name in self.columns})
        self._write()

    def truncate(self, last_epoch: int) -> None:
        """Keep the rows of epochs ``<= last_epoch`` only."""
        kept = [r for r in self.rows if int(r["epoch"]) <= last_epoch]
        if len(kept) != len(self.rows) or not self.csv_path.is_file():
            self.rows = kept
            self._write()

    def _write(self) -> None:
        atomic_write_text(self.csv_path, rows_to_csv(self.rows, self.columns))
        atomic_write_text(
            self.jsonl_path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in self.rows)
        )


def rows_to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """CSV text with a header; None becomes an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return out.getvalue()


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class TensorBoardLog:
    """Scalars to TensorBoard when ``torch.utils.tensorboard`` imports; a no-op otherwise."""

    def __init__(self, run_dir: str | os.PathLike[str], enabled: bool = True) -> None:
        self.writer: Any = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def write(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for name, value in row.items():
            if name != "epoch" and isinstance(value, int | float) and value is not None:
                self.writer.add_scalar(name, value, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
