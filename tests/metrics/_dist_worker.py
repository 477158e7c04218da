"""Worker for the 2-process all_gather test (imports torch and calfseg only)."""

from __future__ import annotations

import torch

from calfseg.metrics import MetricAccumulator


def shard(rank: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Rank r's images: a fixed random set, different sizes per rank."""
    gen = torch.Generator().manual_seed(100 + rank)
    n = 5 + 3 * rank
    truth = (torch.rand(n, 1, 10, 10, generator=gen) > 0.7).float()
    truth[0] = 0
    logits = torch.randn(n, 1, 10, 10, generator=gen) + 2 * truth - 1
    return logits, truth, [f"case{rank}_{i // 2}" for i in range(n)]


def all_gather_worker(rank: int) -> dict[str, object]:
    """Evaluate this rank's shard and gather every rank's state."""
    logits, truth, cases = shard(rank)
    acc = MetricAccumulator(surface=False)
    acc.update(logits, truth, case_ids=cases)
    return acc.all_gather().compute()
