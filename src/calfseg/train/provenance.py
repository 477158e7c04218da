"""Where a run's result came from: ``RUN/provenance.json``, written when a run starts.

A run's result is a function of three things, and the record names each:

- its :class:`~calfseg.train.config.TrainConfig`, less the options that change how the run
  is carried out but not what it computes (:data:`NOT_RESULT_DEFINING`: device, loader
  workers, TensorBoard, extra checkpoints, and the cache's path, which the digest replaces:
  the same cache moved elsewhere gives the same result);
- what the cache holds: :func:`calfseg.data.cache.cache_digest` (16 hex digits of its
  meta.json and index.csv), with its path and its train-split fingerprint (S, K, branch);
- the calf-seg version.

``train_run`` refuses to resume (or to report the stored results of) a run whose record
differs from the requested one, and ``calf benchmark`` refuses to skip or resume such runs
(docs/benchmark.md). The record is copied into ``done.json`` as ``"provenance"``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import calfseg.run_files as files
from calfseg.atomic import atomic_write_text
from calfseg.errors import DataValueError

PROVENANCE_FORMAT = "calfseg.provenance/1"
# TrainConfig fields that do not change what a run computes. "cache" is the path only: what
# the cache holds is compared through its digest.
NOT_RESULT_DEFINING: frozenset[str] = frozenset(
    {"cache", "device", "workers", "tensorboard", "checkpoint_every"}
)
_MISSING = object()


class ProvenanceError(DataValueError):
    """A provenance record that cannot be read."""


def run_provenance(
    config: Any, *, digest: str | None = None, version: str | None = None
) -> dict[str, Any]:
    """The provenance record of a run of ``config`` (a TrainConfig or its dict).

    Args:
        config: the run's TrainConfig, or a plain dict of its options (with ``"cache"``).
        digest: the cache's digest when already known; else :func:`cache_digest` of
            ``config["cache"]`` (a :class:`~calfseg.data.cache.CacheError` if it is not a
            finished cache).
        version: the calf-seg version (default: this one's).
    """
    from calfseg import __version__
    from calfseg.data.cache import cache_digest

    options = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    options = json.loads(json.dumps(options))  # tuples -> lists: what the JSON file holds
    cache = str(options.get("cache", ""))
    return {
        "format": PROVENANCE_FORMAT,
        "calfseg_version": version or __version__,
        "cache": {
            "path": os.path.abspath(cache) if cache else cache,
            "digest": digest if digest is not None else cache_digest(cache),
        },
        "fingerprint": cache_fingerprint(cache),
        "config": options,
        "config_hash": config_hash(options),
    }


def config_hash(options: Mapping[str, Any]) -> str:
    """16 hex digits of SHA-256 over the result-defining options (sorted JSON)."""
    defining = {k: v for k, v in options.items() if k not in NOT_RESULT_DEFINING}
    text = json.dumps(defining, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_fingerprint(cache: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The cache's ``fingerprint.json`` as ``{"count", "skewness", "kurtosis", "branch"}``
    (the rule's pick, docs/method.md section 3), or None when the cache has none. Undefined
    statistics (fewer than 2 areas, zero variance) are recorded as None with no branch."""
    from calfseg.data.cache import FINGERPRINT_FILE
    from calfseg.fingerprint import load_fingerprint

    path = Path(cache) / FINGERPRINT_FILE
    try:
        moments = load_fingerprint(path).moments
        s, k = float(moments.skewness()), float(moments.kurtosis())
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return None
    if not (math.isfinite(s) and math.isfinite(k)):
        return {"count": moments.count, "skewness": None, "kurtosis": None, "branch": None}
    from calfseg.rule import select_branch

    pick = select_branch(s, k, count=moments.count)
    return {"count": moments.count, "skewness": s, "kurtosis": k, "branch": str(pick.branch)}


def write_provenance(run_dir: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """Write ``record`` to ``RUN/provenance.json`` atomically; returns the path."""
    path = Path(run_dir) / files.PROVENANCE
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def read_provenance(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The record of the run in ``run_dir``: ``provenance.json``, else the ``"provenance"``
    block of ``done.json``; None when the run records none (a run of an older calf-seg).

    Raises:
        ProvenanceError: a file that is not readable JSON, named in the message.
    """
    run = Path(run_dir)
    for path, key in ((run / files.PROVENANCE, None), (run / files.DONE, "provenance")):
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ProvenanceError(f"{path}: not readable JSON ({err})") from err
        record = data.get(key) if key is not None and isinstance(data, dict) else data
        if isinstance(record, dict) and record.get("format") == PROVENANCE_FORMAT:
            return record
    return None


def provenance_changes(
    recorded: Mapping[str, Any],
    requested: Mapping[str, Any],
    *,
    allowed: frozenset[str] = frozenset(),
) -> list[str]:
    """What differs between two records, one phrase each: ``"epochs 2 -> 5"``,
    ``"cache digest ae20c1d2.. -> 91bc0a1e.."``, ``"calf-seg version 0.1.0 -> 0.2.0"``.

    Compared: every result-defining option (all but :data:`NOT_RESULT_DEFINING` and
    ``allowed``), the cache digest and the version. Empty when the runs are the same.
    """
    changes = []
    old, new = recorded.get("config") or {}, requested.get("config") or {}
    for name in _ordered_union(old, new):
        if name in NOT_RESULT_DEFINING or name in allowed:
            continue
        before, after = old.get(name, _MISSING), new.get(name, _MISSING)
        if before != after:
            changes.append(f"{name} {_show(before)} -> {_show(after)}")
    before_digest = (recorded.get("cache") or {}).get("digest")
    after_digest = (requested.get("cache") or {}).get("digest")
    if before_digest != after_digest:
        changes.append(f"cache digest {_short(before_digest)} -> {_short(after_digest)}")
    before_version = recorded.get("calfseg_version")
    after_version = requested.get("calfseg_version")
    if before_version != after_version:
        changes.append(f"calf-seg version {_show(before_version)} -> {_show(after_version)}")
    return changes


def _ordered_union(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return [*a, *(k for k in b if k not in a)]


def _show(value: Any) -> str:
    if value is _MISSING or value is None:
        return "(not recorded)" if value is _MISSING else "None"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _short(digest: Any) -> str:
    """Digests are told apart by their first 8 hex digits in messages."""
    if not isinstance(digest, str):
        return "(not recorded)"
    return f"{digest[:8]}.."
