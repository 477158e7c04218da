"""Runs already in a benchmark's OUT, checked against the requested grid before any is
skipped or resumed.

A run folder with ``done.json`` (finished) or ``last.pt`` (started) is kept only when its
provenance record (:mod:`calfseg.train.provenance`) matches the run requested now: the same
result-defining options, the same cache digest and the same calf-seg version. Any other run
is *stale*: its numbers would be reported as the requested run's. Runs of an older
calf-seg, which recorded no provenance, are stale too: nothing says how they were made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import calfseg.run_files as files
from calfseg.bench.grid import RUNS_FOLDER, BenchmarkConfig, RunSpec, runs

NO_PROVENANCE = "no provenance recorded (a run of an older calf-seg: options and cache unknown)"
_LISTED = 4  # run names shown per group of changes


def has_results(spec: RunSpec, out: Path) -> bool:
    """A run that finished or started (it would be skipped or resumed)."""
    folder = spec.folder(out)
    return (folder / files.DONE).is_file() or (folder / files.LAST_CHECKPOINT).is_file()


def find_stale(
    config: BenchmarkConfig,
    requested: Callable[[RunSpec], Mapping[str, Any]],
) -> dict[str, list[str]]:
    """Per finished or started run of ``config`` (its shard) made another way than
    ``requested(spec)`` (the provenance record it would get now), what changed."""
    from calfseg.train.provenance import ProvenanceError, provenance_changes, read_provenance

    stale: dict[str, list[str]] = {}
    for spec in runs(config):
        if not has_results(spec, config.out):
            continue
        try:
            recorded = read_provenance(spec.folder(config.out))
        except ProvenanceError as err:
            stale[spec.name] = [f"unreadable provenance ({err})"]
            continue
        if recorded is None:
            stale[spec.name] = [NO_PROVENANCE]
            continue
        changes = provenance_changes(recorded, requested(spec))
        if changes:
            stale[spec.name] = changes
    return stale


def grid_names(config: BenchmarkConfig) -> set[str]:
    """The run names of the whole grid (every shard)."""
    return {spec.name for spec in runs(replace(config, shard=None))}


def outside_grid(config: BenchmarkConfig) -> list[str]:
    """Run folders in ``OUT/runs`` that are not runs of the requested grid (any shard):
    left out of this benchmark's report."""
    folder = config.out / RUNS_FOLDER
    if not folder.is_dir():
        return []
    grid = grid_names(config)
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in grid)


def describe_stale(stale: Mapping[str, Sequence[str]], out: Path) -> str:
    """The refusal: what changed for how many runs, and the two ways out.

    One line per distinct set of changes, e.g. ``epochs 2 -> 5, cache digest ae20c1d2.. ->
    91bc0a1e.. for 42 runs (unet-bce-s0, unet-bce-s1, ... )``.
    """
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, changes in stale.items():
        groups.setdefault(tuple(changes), []).append(name)
    lines = [
        f"{out} holds {len(stale)} run(s) of this grid made another way than requested; "
        "their results would be reported as the new runs':"
    ]
    for changes, names in groups.items():
        shown = ", ".join(names[:_LISTED]) + (", ..." if len(names) > _LISTED else "")
        plural = "run" if len(names) == 1 else "runs"
        lines.append(f"  {', '.join(changes)} for {len(names)} {plural} ({shown})")
    lines.append(
        "pass --overwrite to retrain those runs, or choose another --out for the new settings"
    )
    return "\n".join(lines)
