"""Which runs of a benchmark can be trusted to have been trained: the report's Convergence
section.

- **Converged** is each run's ``done.json`` key ``"converged"`` (written by training: true
  when the best validation per-case Dice of the last ``patience`` (or 4) validations rose at
  most ``min_delta`` above the best before them, false when the step budget ran out while it
  was still improving, :mod:`calfseg.train.stopping`). Runs of
  an older calf-seg have no such key: "not recorded", never counted as converged.
- **Failed to learn**: a run whose mean per-case test Dice is below
  :data:`calfseg.bench.stats.FAILED_TO_LEARN` (0.1), whatever its convergence: a model that
  predicts (almost) nothing converges too.
"""

from __future__ import annotations

from dataclasses import dataclass

from calfseg.bench.collect import ResultsTable, RunInfo
from calfseg.bench.stats import FAILED_TO_LEARN, mean_case_dice


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
        flag = run.done.get("converged")
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
