"""Data-parallel training through ``torchrun``: process group, device and batch sharding.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`setup` then joins the
group (``nccl`` on CUDA, ``gloo`` on the CPU). Every rank reads the same permutation of the
training split per epoch (seeded by ``(seed, epoch)``, as
:meth:`calfseg.data.SliceDataset.batch_loader`) cut into global batches of
``batch_size x world_size``; rank ``r`` takes the ``r``-th slice of each global batch. So one
process with batch ``B`` and two with ``B / 2`` see the same global batches, and DDP's
gradient average equals the one-process gradient for losses that are means over images.
Every rank runs the same number of steps (collectives must match). Evaluation shards are
contiguous and unpadded; metrics are joined with ``MetricAccumulator.all_gather``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def setup(device: str = "auto") -> DistContext:
    """Join the torchrun process group when ``WORLD_SIZE > 1`` (once per process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    where = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        if where.type == "cuda":
            torch.cuda.set_device(where)
        dist.init_process_group("nccl" if where.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local, device=where)


def teardown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_mean(ctx: DistContext, value: float) -> float:
    """The mean of ``value`` over ranks (``value`` itself in one process)."""
    if not ctx.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_reduce_device(ctx))
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def all_sum(ctx: DistContext, values: list[float]) -> list[float]:
    """Element-wise sums over ranks."""
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_reduce_device(ctx))
    dist.all_reduce(t)
    return [float(v) for v in t.tolist()]


def _reduce_device(ctx: DistContext) -> torch.device:
    return ctx.device if ctx.device.type == "cuda" else torch.device("cpu")


def epoch_batches(
    n: int, batch_size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> list[np.ndarray]:
    """This rank's training batches (sorted dataset positions) of one epoch.

    The permutation of ``range(n)`` seeded by ``(seed, epoch)`` is cut into global batches of
    ``batch_size * world_size``; each is split into ``world_size`` near-equal parts and this
    rank takes part ``rank``. A last global batch that would give some rank fewer than 2
    images is dropped (batch norm needs 2; every rank must run the same number of steps).
    With ``world_size == 1`` the batches are those of ``SliceDataset.batch_loader``.
    """
    order = np.random.default_rng([seed, epoch]).permutation(n)
    size = batch_size * world_size
    batches = []
    for start in range(0, n, size):
        chunk = order[start : start + size]
        part = np.array_split(chunk, world_size)[rank]
        if min(len(p) for p in np.array_split(chunk, world_size)) < min(2, batch_size):
            break
        batches.append(np.sort(part))
    return batches


def eval_shard(n: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """The contiguous, unpadded part of ``range(n)`` that ``rank`` evaluates."""
    return np.array_split(np.arange(n), world_size)[rank]


def chunks(positions: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """``positions`` in consecutive batches of at most ``batch_size``."""
    for start in range(0, len(positions), batch_size):
        yield positions[start : start + batch_size]
