"""Combine area moments across torch.distributed ranks with one collective call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from calfseg.stats.moments import AreaMoments


def all_reduce_moments(moments: Sequence[AreaMoments], group: Any = None) -> list[AreaMoments]:
    """Merge each summary with its counterparts on every rank; every rank gets the same result.

    ``moments[i]`` on one rank is merged with ``moments[i]`` of all other ranks (the list is
    e.g. one summary per channel or per tile, and must have the same length everywhere).
    The fields of all summaries travel in a single ``all_gather`` of float64 values and
    are merged in rank order, so the result is bitwise identical on all ranks. Without an
    initialised process group the input is returned unchanged (as a new list).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or not moments:
        return list(moments)
    device = torch.device("cpu")
    if dist.get_backend(group) == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    mine = torch.tensor([m.as_row() for m in moments], dtype=torch.float64, device=device)
    gathered = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(gathered, mine, group=group)
    per_rank = torch.stack(gathered).cpu().tolist()  # (ranks, len(moments), fields)
    merged = [AreaMoments() for _ in moments]
    for rank_rows in per_rank:
        for total, row in zip(merged, rank_rows, strict=True):
            total.merge(AreaMoments.from_row(row))
    return merged
