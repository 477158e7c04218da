"""How the runs of a report were made, read from their folders: the cache (path and
digest), its fingerprint (S, K and the rule's branch), the training settings (epochs, batch
size, learning rate, model preset, seeds, the other options) and the calf-seg version; and
the settings on which they disagree (mixed provenance), loss options included.

Each run's provenance record (``provenance.json``, :mod:`calfseg.train.provenance`) is
read; a run of an older calf-seg has none, and then its ``config.json`` gives what it can
(the cache's digest and fingerprint are "not recorded").
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from calfseg.bench.collect import ResultsTable, RunInfo

NOT_RECORDED = "not recorded"
# Options shown in their own row or as the grid's coordinates, or not result-defining.
_NOT_OTHER = frozenset(
    {"model", "loss", "seed", "loss_options", "epochs", "batch_size", "lr", "preset",
     "calfseg_version", "cache", "device", "workers", "tensorboard", "checkpoint_every",
     "cv_fold"}  # cv_fold: a grid coordinate (each fold's runs differ in it by design)
)  # fmt: skip


@dataclass(frozen=True)
class RunSettings:
    """Rows of the report's settings table, and what the runs disagree on.

    Attributes:
        rows: (setting, value) pairs; a value the runs disagree on reads ``mixed: ...``.
        mixed: one phrase per setting the runs disagree on, e.g. ``epochs: 2 (30 runs),
            5 (12 runs)``.
        unrecorded: runs without a provenance record (older calf-seg).
    """

    rows: tuple[tuple[str, str], ...]
    mixed: tuple[str, ...]
    unrecorded: int


def run_settings(table: ResultsTable) -> RunSettings:
    """The settings of the finished runs of ``table``."""
    runs = table.runs
    rows: list[tuple[str, str]] = []
    mixed: list[str] = []
    digests = [_digest(r) for r in runs]
    same_cache = len(set(digests)) == 1 and NOT_RECORDED not in digests
    readers: tuple[tuple[str, Callable[[RunInfo], str], bool], ...] = (
        ("cache", _cache_path, not same_cache),  # moved caches share a digest: not a mix
        ("cache digest", _digest, True),
        ("fingerprint (train split)", _fingerprint, True),
        ("epochs", lambda r: _option(r, "epochs"), True),
        ("batch size", lambda r: _option(r, "batch_size"), True),
        ("learning rate", lambda r: _option(r, "lr"), True),
        ("model preset", lambda r: _option(r, "preset"), True),
        ("calf-seg version", _version, True),
    )
    for label, read, counts in readers:
        value, disagreement = _summarise([read(r) for r in runs])
        rows.append((label, value))
        if disagreement and counts:
            mixed.append(f"{label}: {disagreement}")
    rows.append(("seeds", ", ".join(str(s) for s in table.seeds) or "none"))
    _check_loss_options(table, mixed)  # the report lists them in a sentence of its own
    other = _other_options(runs, mixed)
    if other:
        rows.append(("other options", other))
    unrecorded = sum(r.provenance is None for r in runs)
    return RunSettings(tuple(rows), tuple(mixed), unrecorded)


def _config(run: RunInfo) -> dict[str, Any]:
    if run.provenance is not None and isinstance(run.provenance.get("config"), dict):
        return run.provenance["config"]
    return run.config


def _option(run: RunInfo, name: str) -> str:
    config = _config(run)
    return _text(config[name]) if name in config else NOT_RECORDED


def _cache_path(run: RunInfo) -> str:
    if run.provenance is not None:
        return str((run.provenance.get("cache") or {}).get("path") or NOT_RECORDED)
    return _option(run, "cache")


def _digest(run: RunInfo) -> str:
    if run.provenance is None:
        return NOT_RECORDED
    return str((run.provenance.get("cache") or {}).get("digest") or NOT_RECORDED)


def _fingerprint(run: RunInfo) -> str:
    if run.provenance is None:
        return NOT_RECORDED
    found = run.provenance.get("fingerprint")
    if not isinstance(found, dict):
        return "none in the cache"
    if found.get("skewness") is None or found.get("kurtosis") is None:
        return f"undefined ({found.get('count')} train areas)"
    return (
        f"S {found['skewness']:+.3f}, K {found['kurtosis']:+.3f} -> {found.get('branch')} "
        f"({found.get('count')} train areas)"
    )


def _version(run: RunInfo) -> str:
    if run.provenance is not None and run.provenance.get("calfseg_version"):
        return str(run.provenance["calfseg_version"])
    return str(run.config.get("calfseg_version") or NOT_RECORDED)


def _check_loss_options(table: ResultsTable, mixed: list[str]) -> None:
    """Losses take different options by design; runs of one loss must agree."""
    for loss in table.losses:
        values = [_text(_config(r).get("loss_options") or {}) for r in table.runs if r.loss == loss]
        _, disagreement = _summarise(values)
        if disagreement:
            mixed.append(f"loss options of {loss}: {disagreement}")


def _other_options(runs: list[RunInfo], mixed: list[str]) -> str:
    names: list[str] = []
    for run in runs:
        names += [n for n in _config(run) if n not in _NOT_OTHER and n not in names]
    parts = []
    for name in names:
        value, disagreement = _summarise([_option(r, name) for r in runs])
        parts.append(f"{name} {value}")
        if disagreement:
            mixed.append(f"{name}: {disagreement}")
    return ", ".join(parts)


def _summarise(values: list[str]) -> tuple[str, str | None]:
    """(the value, or ``mixed: ...``; None, or the disagreement ``a (n runs), b (m runs)``)."""
    counts = Counter(values)
    if not counts:
        return "none", None
    if len(counts) == 1:
        return values[0], None
    text = ", ".join(
        f"{value} ({n} run{'' if n == 1 else 's'})" for value, n in counts.most_common()
    )
    return f"mixed: {text}", text


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
