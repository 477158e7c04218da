"""The branches CALF picked during an nnU-Net training: counted per class and epoch, logged
as one line per epoch and kept in ``calf_branches.json`` beside the checkpoints.

Only the full-resolution output is counted (under deep supervision every scale picks its own
branch from its own, downsampled, targets; the full-resolution pick is the one that matches
the areas of the data). The JSON, rewritten after every epoch::

    {"format": "calfseg.nnunet.branches/1", "trainer": "nnUNetTrainerCALF",
     "training": "softmax", "classes": ["outer", "inner"],
     "counted": "full-resolution output, training steps",
     "epochs": [{"epoch": 0, "steps": 250,
                 "branches": {"outer": {"log10": 180, "ln": 70}, "inner": {...}}}],
     "total": {"outer": {"log10": 180, "ln": 70}, "inner": {...}}}
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from calfseg.atomic import atomic_write_json
from calfseg.errors import DataValueError, OptionError
from calfseg.rule import Selection

BRANCH_LOG = "calf_branches.json"
BRANCH_LOG_FORMAT = "calfseg.nnunet.branches/1"
COUNTED = "full-resolution output, training steps"


class BranchTally:
    """Counts of the branch picked for each class, per epoch."""

    def __init__(self, classes: Sequence[str], *, trainer: str, training: str) -> None:
        self.classes = list(classes)
        self.trainer = trainer
        self.training = training
        self.epochs: list[dict[str, Any]] = []
        self._epoch: int | None = None
        self._steps = 0
        self._counts: list[Counter[str]] = [Counter() for _ in self.classes]

    def start_epoch(self, epoch: int) -> None:
        """Begin counting ``epoch`` (a resumed training drops what it will redo)."""
        self.epochs = [e for e in self.epochs if e["epoch"] < epoch]
        self._epoch, self._steps = epoch, 0
        self._counts = [Counter() for _ in self.classes]

    def add(self, picks: Sequence[Selection]) -> None:
        """Count one training step's picks, one per class."""
        if len(picks) != len(self.classes):
            raise OptionError(f"{len(picks)} picks for {len(self.classes)} classes")
        self._steps += 1
        for counts, pick in zip(self._counts, picks, strict=True):
            counts[pick.branch] += 1

    def end_epoch(self) -> str:
        """Close the epoch, keep its counts, and return its log line."""
        if self._epoch is None:
            raise RuntimeError("end_epoch() without start_epoch()")
        branches = {
            name: dict(counts.most_common())
            for name, counts in zip(self.classes, self._counts, strict=True)
        }
        self.epochs.append({"epoch": self._epoch, "steps": self._steps, "branches": branches})
        self._epoch = None
        parts = [
            f"{name}: " + (", ".join(f"{b} {n}" for b, n in counts.items()) or "none")
            for name, counts in branches.items()
        ]
        return f"CALF branches ({COUNTED}, {self._steps} steps): " + "; ".join(parts)

    def total(self) -> dict[str, dict[str, int]]:
        """Counts of each class's branches over every closed epoch."""
        totals: dict[str, Counter[str]] = {name: Counter() for name in self.classes}
        for record in self.epochs:
            for name, counts in record["branches"].items():
                totals[name].update(counts)
        return {name: dict(c.most_common()) for name, c in totals.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BRANCH_LOG_FORMAT,
            "trainer": self.trainer,
            "training": self.training,
            "classes": self.classes,
            "counted": COUNTED,
            "epochs": self.epochs,
            "total": self.total(),
        }

    def write(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``calf_branches.json`` into ``folder`` atomically (a reader never sees half a
        file)."""
        path = Path(folder) / BRANCH_LOG
        atomic_write_json(path, self.to_dict())
        return path

    def resume(self, folder: str | os.PathLike[str]) -> None:
        """Take the epochs of an earlier run's ``calf_branches.json`` in ``folder``, if any
        (a training continued with ``--c``)."""
        path = Path(folder) / BRANCH_LOG
        if not path.is_file():
            return
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DataValueError(f"{path}: cannot read the earlier branch log ({err})") from err
        if data.get("classes") != self.classes:
            raise DataValueError(
                f"{path}: the earlier branch log counts the classes {data.get('classes')}, "
                f"this training has {self.classes}; move the file away to start a new log"
            )
        self.epochs = list(data.get("epochs", []))
