"""What the prepare-pipeline tests share: the tiny source of three cases, a prepare call on
it, and two ways to compare caches (their contents, and their files byte for byte)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from calfseg.data.cache import SliceCache
from calfseg.data.preparation.pipeline import PrepareReport, prepare_cache
from calfseg.data.preparation.source import PrepareSource, reader_source
from calfseg.data.preprocess import PreprocessOptions
from calfseg.writer_lock import is_lock_file

from ..tiny_source import TinySource, write_case

OPTIONS = PreprocessOptions(size=16)
CASES = ("c0", "c1", "c2")


def write_source(root: Path, cases: tuple[str, ...] = CASES) -> Path:
    for i, case in enumerate(cases):
        write_case(root, case, seed=i)
    return root


def tiny_source(root: Path, **reader: Any) -> PrepareSource:
    return reader_source(TinySource(**reader), root)


def run_prepare(root: Path, out: Path, **kwargs: Any) -> PrepareReport:
    options = kwargs.pop("options", OPTIONS)
    return prepare_cache(tiny_source(root, **kwargs.pop("reader", {})), out, options, **kwargs)


def comparable_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k != "created"}


def assert_same_cache(a: Path, b: Path) -> None:
    x, y = SliceCache.open(a), SliceCache.open(b)
    np.testing.assert_array_equal(x.images, y.images)
    np.testing.assert_array_equal(x.masks, y.masks)
    assert (a / "index.csv").read_text() == (b / "index.csv").read_text()
    assert (a / "fingerprint.json").read_text() == (b / "fingerprint.json").read_text()
    assert comparable_meta(x.meta) == comparable_meta(y.meta)


def cache_files(cache: Path) -> dict[str, bytes]:
    """Every file under ``cache`` (relative name -> bytes) but the writer locks' files (not
    the cache); meta.json without its creation time, the one field that differs between
    two runs over the same data."""
    files = {}
    for path in sorted(p for p in cache.rglob("*") if p.is_file() and not is_lock_file(p)):
        name = path.relative_to(cache).as_posix()
        data = path.read_bytes()
        if name == "meta.json":
            data = json.dumps(comparable_meta(json.loads(data)), sort_keys=True).encode()
        files[name] = data
    return files


def mtimes(cache: Path) -> dict[str, int]:
    """Modification times of the cache's files; the writer lock's file aside (each run
    takes the lock and so writes its owner record there: that is not the cache)."""
    return {
        p.relative_to(cache).as_posix(): p.stat().st_mtime_ns
        for p in cache.rglob("*")
        if not is_lock_file(p)
    }
