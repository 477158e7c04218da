"""Fixtures every test folder shares: the thread setting and the synthetic cache.

Markers are declared in pyproject.toml (``slow``: the second tier, ``pytest -m "not slow"``
skips it); processes on several gloo ranks go through :mod:`tests.gloo`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from calfseg.data.cache import cache_digest

from .train.synthetic_cache import make_synthetic_cache


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for the module: tiny models gain nothing from two, and on a
    loaded 2-core machine OpenMP threads spin-waiting for each other make steps many times
    slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The 32x32 ``paper-like`` cache of 8 cases (6 train, 1 val, 1 test), prepared once for
    the session. Read-only: a test that changes a cache copies it first; the digest check
    at the end fails the session if one did not."""
    cache = make_synthetic_cache(tmp_path_factory.mktemp("shared") / "cache")
    before = cache_digest(cache)
    yield cache
    assert cache_digest(cache) == before, "a test wrote into the shared synthetic cache"
