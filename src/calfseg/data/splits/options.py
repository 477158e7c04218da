"""The split options of ``calf prepare``: how the cache's rows are divided into train, val
and test (by case, by slice, or one fold of a case-level k-fold), recorded in meta.json."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from calfseg.errors import OptionError, check_choice
from calfseg.options import non_negative_int, option, positive_int

SPLIT_MODES: tuple[str, ...] = ("case", "slice")
SPLITS = "splits"  # the group of calf prepare --help


@dataclass(frozen=True)
class SplitOptions:
    """``mode`` ``"case"`` (each patient in one split, the default) or ``"slice"`` (the
    paper's leaky protocol); ``val`` and ``test`` fractions; ``seed``. With ``kfold`` = K,
    fold ``fold`` (0..K-1) of a case-level K-fold is test and ``val`` is the share of the
    remaining cases held out for validation (``test`` is then 1/K)."""

    mode: str = option(
        "case",
        "case: every patient in one split (default); slice: the paper's split of each "
        "patient's slices (leaks patients between train and test)",
        name="split", choices=SPLIT_MODES, group=SPLITS,
    )  # fmt: skip
    val: float = option(0.1, "validation share (default 0.1)", parse=float, group=SPLITS)
    test: float = option(0.1, "test share (default 0.1)", parse=float, group=SPLITS)
    seed: int = option(
        0, "seed of the split (and of --synthetic; default 0)",
        parse=non_negative_int, metavar="N", group=SPLITS,
    )  # fmt: skip
    kfold: int | None = option(
        None, "case-level K-fold split", parse=positive_int, metavar="K", group=SPLITS
    )
    fold: int | None = option(
        None, "--kfold: the test fold, 0..K-1", parse=non_negative_int, metavar="F",
        group=SPLITS,
    )  # fmt: skip

    def __post_init__(self) -> None:
        check_choice("split mode", self.mode, SPLIT_MODES)
        for name in ("val", "test"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value < 1):
                raise OptionError(f"--{name} must be in [0, 1), got {value!r}")
        if self.kfold is None:
            if self.fold is not None:
                raise OptionError("--fold needs --kfold K")
            if self.val + self.test >= 1:
                raise OptionError(f"--val + --test must be below 1, got {self.val + self.test}")
        else:
            if self.kfold < 2:
                raise OptionError(f"--kfold must be at least 2, got {self.kfold}")
            if self.fold is None or not 0 <= self.fold < self.kfold:
                raise OptionError(f"--kfold {self.kfold} needs --fold F with 0 <= F < {self.kfold}")
            if self.mode != "case":
                raise OptionError(
                    "--kfold splits by case; it cannot be combined with --split slice"
                )
        if self.seed < 0:
            raise OptionError(f"--seed must be >= 0, got {self.seed}")

    @property
    def fractions(self) -> dict[str, float]:
        """Nominal shares of train, val and test (for k-fold: test 1/K, val of the rest)."""
        if self.kfold is None:
            test, val = self.test, self.val
        else:
            test = 1.0 / self.kfold
            val = (1.0 - test) * self.val
        return {"train": 1.0 - val - test, "val": val, "test": test}

    def to_meta(self) -> dict[str, Any]:
        """meta.json's ``splits``: mode, fractions, seed (and ``kfold`` when used)."""
        meta: dict[str, Any] = {"mode": self.mode, "fractions": self.fractions, "seed": self.seed}
        if self.kfold is not None:
            meta["kfold"] = {"k": self.kfold, "fold": self.fold, "val_fraction": self.val}
        return meta

    def assign(
        self, case_ids: Sequence[str] | np.ndarray, datasets: Sequence[str] | np.ndarray
    ) -> np.ndarray:
        """One split name per row (``calfseg.data.splits.assign``); slice mode warns of leakage."""
        from calfseg.data.splits.assign import assign_splits, kfold_splits

        if self.kfold is not None:
            assert self.fold is not None
            return kfold_splits(
                case_ids, datasets, self.kfold, self.fold, seed=self.seed, val_fraction=self.val
            )
        return assign_splits(
            case_ids,
            datasets,
            fractions=self.fractions,
            seed=self.seed,
            mode=self.mode,  # type: ignore[arg-type]
        )
