"""Worker for the 2-process all_reduce test, kept apart from test_moments.py so that the
spawned processes import only torch and calfseg, not scipy and hypothesis."""

from __future__ import annotations

from calfseg.stats import AreaMoments
from calfseg.stats.sync import all_reduce_moments

RANK_AREAS = [[0.0, 0.0, 12.0, 30.5, 1e9], [7.0, 7.0, 1e9 + 1, 0.0, 4096.0, 65536.0]]


def all_reduce_worker(rank: int) -> dict[str, object]:
    """Summarise this rank's areas and all_reduce them over the group."""
    (m,) = all_reduce_moments([AreaMoments.from_areas(RANK_AREAS[rank])])
    return m.to_dict()
