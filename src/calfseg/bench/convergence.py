"""Which runs of a benchmark can be trusted to have been trained: the report's Convergence
section.

- **Converged** is each run's ``done.json`` key ``"converged"`` (written by training: true
  when the best validation per-case Dice of the last ``patience`` (or 4) validations rose at
  most ``min_delta`` above the best before them, false when the step budget ran out while it
  was still improving, :mod:`calfseg.train.stopping`). A run whose ``done.json`` does not
  name that rule (``convergence_rule``) measured the gain from early stopping's reference,
  a stricter count: it is judged again from the validation scores of its ``log.csv`` under
  its own ``patience`` and ``min_delta``, so that one report never mixes two rules. Runs
  without the key and without a log: "not recorded", never counted as converged.
- **Failed to learn**: a run whose mean per-case test Dice is below
  :data:`calfseg.bench.stats.FAILED_TO_LEARN` (0.1), whatever its convergence: a model that
  predicts (almost) nothing converges too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from calfseg.bench.collect import ResultsTable, RunInfo
from calfseg.bench.stats import FAILED_TO_LEARN, mean_case_dice
from calfseg.train.stopping import CONVERGENCE_RULE, replayed_convergence


@dataclass(frozen=True)
class Convergence:
    """The runs of a table sorted by how far their training can be trusted.

    Attributes:
        converged: runs whose done.json says ``"converged": true``.
        unconverged: runs whose done.json says ``"converged": false``.
        not_recorded: runs whose done.json has no ``"converged"`` (older calf-seg).
        failed_to_learn: (run, mean per-case test Dice) below :data:`FAILED_TO_LEARN`.
    """

    converged: tuple[RunInfo, ...]
    unconverged: tuple[RunInfo, ...]
    not_recorded: tuple[RunInfo, ...]
    failed_to_learn: tuple[tuple[RunInfo, float], ...]

    @property
    def n_runs(self) -> int:
        return len(self.converged) + len(self.unconverged) + len(self.not_recorded)


def convergence(table: ResultsTable) -> Convergence:
    """Sort the finished runs of ``table`` by their done.json and their test Dice."""
    converged, unconverged, unknown = [], [], []
    for run in table.runs:
        flag = _converged(run, table.logs.get(run.name, []))
        if flag is True:
            converged.append(run)
        elif flag is False:
            unconverged.append(run)
        else:
            unknown.append(run)
    means = mean_case_dice(table)
    failed = tuple(
        (run, means[run.name])
        for run in table.runs
        if run.name in means and means[run.name] < FAILED_TO_LEARN
    )
    return Convergence(tuple(converged), tuple(unconverged), tuple(unknown), failed)


def _converged(run: RunInfo, log: list[dict[str, Any]]) -> bool | None:
    """``done.json``'s flag under :data:`CONVERGENCE_RULE` (None: not recorded). A run
    finished under the earlier rule and flagged not converged is judged again from its
    logged validation scores; one flagged converged stays so (no ratchet crossing in the
    window bounds the window's gain by ``min_delta`` too), and so does a run whose log holds
    no validation."""
    flag = run.done.get("converged")
    if not isinstance(flag, bool):
        return None
    if flag or run.done.get("convergence_rule") == CONVERGENCE_RULE:
        return flag
    scores = _validation_scores(log, run.config)
    if not scores:
        return flag
    return replayed_convergence(
        scores, patience=run.config.get("patience"),
        min_delta=float(run.config.get("min_delta", 0.0)),
    )  # fmt: skip


def _validation_scores(log: list[dict[str, Any]], config: dict[str, Any]) -> list[float | None]:
    """The scores early stopping saw, in order: one per validated epoch (every
    ``val_every``-th and the last planned one), an empty cell there being a NaN score (the
    log writes NaN empty, like an epoch without validation)."""
    if config.get("val_split", "val") is None:
        return []  # trained without validation: nothing was seen
    every = int(config.get("val_every") or 1)
    planned = config.get("epochs")
    scores: list[float | None] = []
    for row in log:
        epoch, value = row.get("epoch"), row.get("val_case_dice")
        if not isinstance(epoch, (int, float)):
            continue
        if isinstance(value, (int, float)):
            scores.append(float(value))
        elif int(epoch) % every == 0 or int(epoch) == planned:
            scores.append(None)
    return scores
