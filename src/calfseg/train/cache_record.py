"""What a trained model knows of the cache it was trained on, and what changed since.

A checkpoint (and an exported model's JSON) keeps ``cache``::

    {"path": absolute path, "digest": cache_digest(path) (16 hex digits),
     "fingerprint": {"count", "skewness", "kurtosis", "branch"} of the train split's areas
         (:func:`calfseg.train.provenance.cache_fingerprint`),
     "options", "source", "splits", "counts": the cache's meta.json entries}

``calf evaluate`` compares it with the cache it is given: the same path with another digest
means the cache was prepared again (other labels, options or splits) since training, and
the scores would be against other masks (issue 9, item 3).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from calfseg.data import SliceCache
from calfseg.data.cache import cache_digest
from calfseg.errors import DataValueError
from calfseg.train.provenance import cache_fingerprint

# meta.json entries kept in the record and compared when the digest changed.
META_ENTRIES = ("options", "source", "splits", "counts")


class CacheChangedError(DataValueError):
    """The training cache was prepared again since the model was trained on it."""


class CacheChangedWarning(UserWarning):
    """The same, when the user allowed it (``--allow-changed-cache``)."""


def cache_record(cache: str | os.PathLike[str]) -> dict[str, Any]:
    """The record of ``cache`` described in the module docstring."""
    root = Path(cache)
    meta = SliceCache.open(root).meta
    return {
        "path": str(root.resolve()),
        "digest": cache_digest(root),
        "fingerprint": cache_fingerprint(root),
        **{key: meta.get(key) for key in META_ENTRIES},
    }


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same folder (resolved, so relative paths compare)."""
    return Path(a).resolve() == Path(b).resolve()


def changes(trained: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two records, as ``'options.labels None -> [2]'`` lines: the
    digest first, then each differing entry of the meta and of the fingerprint."""
    lines = []
    if trained.get("digest") != now.get("digest"):
        lines.append(f"cache digest {trained.get('digest')} -> {now.get('digest')}")
    for entry in (*META_ENTRIES, "fingerprint"):
        before, after = trained.get(entry), now.get(entry)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            for key in sorted(set(before) | set(after)):
                if before.get(key) != after.get(key):
                    lines.append(f"{entry}.{key} {_short(before.get(key))} -> "
                                 f"{_short(after.get(key))}")  # fmt: skip
        else:
            lines.append(f"{entry} {_short(before)} -> {_short(after)}")
    return lines


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
