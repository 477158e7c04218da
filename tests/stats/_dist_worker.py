"""Worker for the 2-process all_reduce test, kept apart from test_moments.py so that the
spawned processes import only torch and calfseg, not scipy and hypothesis."""

from __future__ import annotations

import json
from pathlib import Path

import torch.distributed as dist

from calfseg.stats import AreaMoments
from calfseg.stats.sync import all_reduce_moments

RANK_AREAS = [[0.0, 0.0, 12.0, 30.5, 1e9], [7.0, 7.0, 1e9 + 1, 0.0, 4096.0, 65536.0]]


def all_reduce_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    """Summarise this rank's areas, all_reduce over gloo, write the result as JSON."""
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        m = AreaMoments.from_areas(RANK_AREAS[rank])
        (m,) = all_reduce_moments([m])
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(m.to_dict()))
    finally:
        dist.destroy_process_group()
