"""Shards: the K-th of N disjoint shares of a list of work (cases to prepare, benchmark
runs), so that N machines each take one. The one parser of ``--shard K/N`` and the one
selection rule, shared by ``calf prepare`` and ``calf benchmark``.

Share ``K`` (1-based) of ``N`` holds items ``K-1, K-1+N, K-1+2N, ...`` (round robin), so
the N shares are disjoint, together hold every item, and their sizes differ by one at
most. This module imports nothing from calfseg.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from calfseg.errors import OptionError

__all__ = ["Shard", "check_shard", "parse_shard", "shard_items"]

Shard = tuple[int, int]  # (K, N), 1 <= K <= N
T = TypeVar("T")


def parse_shard(text: str) -> Shard:
    """``"K/N"`` -> ``(K, N)``; ValueError (naming the text and the form) otherwise."""
    try:
        k, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise OptionError(f"shard must be K/N like 1/4, got {text!r}") from None
    return check_shard((k, n))


def check_shard(shard: Shard) -> Shard:
    """``shard`` itself when it is ``(K, N)`` with ``1 <= K <= N``; ValueError otherwise."""
    k, n = shard
    if not 1 <= k <= n:
        raise OptionError(f"shard K/N needs 1 <= K <= N, got {k}/{n}")
    return k, n


def shard_items(items: Sequence[T], shard: Shard | None) -> list[T]:
    """The items of share ``K`` of ``N`` (round robin, see the module docstring); all of
    them when ``shard`` is None."""
    if shard is None:
        return list(items)
    k, n = check_shard(shard)
    return list(items[k - 1 :: n])
