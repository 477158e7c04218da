"""Why a benchmark cannot start or go on (both are data errors: exit code 1, docs/cli.md)."""

from __future__ import annotations

from calfseg.errors import DataError


class BenchmarkError(DataError):
    """The benchmark cannot start (no data, data preparation failed)."""


class StaleRunsError(BenchmarkError):
    """OUT holds runs of the grid made another way than requested (the message says how,
    for how many runs, and the ways out: ``--overwrite`` or another ``--out``)."""

    def __init__(self, message: str, stale: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.stale = stale
