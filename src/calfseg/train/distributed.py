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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from calfseg.errors import DataValueError


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
            raise DataValueError(f"device {name!r} asked for, but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def is_main_process() -> bool:
    """Whether this process is rank 0 (or not under torchrun): the one that writes."""
    return int(os.environ.get("RANK", "0")) == 0


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


def epoch_global_batches(
    n: int, batch_size: int, *, seed: int, epoch: int, world_size: int = 1
) -> list[list[np.ndarray]]:
    """Every global batch of one epoch, as its ``world_size`` per-rank parts (sorted dataset
    positions), in rank order.

    The permutation of ``range(n)`` seeded by ``(seed, epoch)`` is cut into global batches of
    ``batch_size * world_size``; each is split into ``world_size`` near-equal parts. A last
    global batch that would give some rank fewer than 2 images is dropped (batch norm needs
    2; every rank must run the same number of steps). Every rank computes the same list, so
    each knows the whole global batch of every step without communicating.
    """
    order = np.random.default_rng([seed, epoch]).permutation(n)
    size = batch_size * world_size
    batches = []
    for start in range(0, n, size):
        parts = np.array_split(order[start : start + size], world_size)
        if min(len(p) for p in parts) < min(2, batch_size):
            break
        batches.append([np.sort(p) for p in parts])
    return batches


def epoch_batches(
    n: int, batch_size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> list[np.ndarray]:
    """This rank's training batches (sorted dataset positions) of one epoch: part ``rank`` of
    each of :func:`epoch_global_batches`. With ``world_size == 1`` the batches are those of
    ``SliceDataset.batch_loader``."""
    parts = epoch_global_batches(n, batch_size, seed=seed, epoch=epoch, world_size=world_size)
    return [p[rank] for p in parts]


def global_batch_areas(areas: np.ndarray, parts: list[np.ndarray]) -> list[np.ndarray]:
    """The host areas of every rank's part of one global batch, in rank order: what
    ``CALFLoss(..., sync=True)`` takes as ``areas`` under a process group to pool the global
    batch's statistics with no communication (and no device read)."""
    return [np.asarray(areas)[p] for p in parts]


def loss_areas(
    loss_fn: torch.nn.Module,
    areas: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
) -> Callable[[int, np.ndarray], dict[str, Any]]:
    """``(step, positions) -> keyword arguments`` that hand a CALF loss the host areas of the
    step's batch (``{}`` for a loss that takes none):
    ``loss_fn(logits, masks, **kwargs(step, positions))``.

    ``areas`` are the dataset's per-slice pixel counts (``SliceDataset.areas``) and
    ``positions`` the dataset positions of this rank's batch, in the batch's order. A loss
    that pools statistics over the ranks (``loss_fn.pools_ranks``) gets every rank's part of
    the global batch, from :func:`epoch_global_batches` for these arguments (the batches of
    :func:`epoch_batches`); a ``positions`` that is not this rank's part of step ``step``
    there is an error, as the other parts would then not be the other ranks' batches."""
    if not getattr(loss_fn, "takes_loader_areas", False):
        return lambda step, positions: {}
    host = np.asarray(areas)
    if not getattr(loss_fn, "pools_ranks", False):
        return lambda step, positions: {"areas": host[np.asarray(positions)]}
    batches = epoch_global_batches(
        len(host), batch_size, seed=seed, epoch=epoch, world_size=world_size
    )

    def pooled(step: int, positions: np.ndarray) -> dict[str, Any]:
        parts = batches[step]
        if not np.array_equal(parts[rank], positions):
            raise RuntimeError(
                f"step {step} of epoch {epoch}: rank {rank}'s batch is not part {rank} of "
                "epoch_global_batches(...), so the other ranks' areas are unknown; build the "
                "batches with calfseg.train.distributed.epoch_batches and the same arguments"
            )
        return {"areas": global_batch_areas(host, parts)}

    return pooled


def eval_shard(n: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """The contiguous, unpadded part of ``range(n)`` that ``rank`` evaluates."""
    return np.array_split(np.arange(n), world_size)[rank]


def chunks(positions: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """``positions`` in consecutive batches of at most ``batch_size``."""
    for start in range(0, len(positions), batch_size):
        yield positions[start : start + batch_size]
