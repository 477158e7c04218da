"""One way for the tests to run a function on several gloo ranks.

``on_gloo_ranks(worker, tmp_path, *args)`` spawns ``world`` processes; each joins one CPU
process group (file rendezvous under ``tmp_path``), calls ``worker(rank, *args)``, leaves
the group and writes what the worker returned as JSON; the caller gets the list, rank 0
first. ``worker`` must be a module-level function (spawn pickles it by name), in a module
that imports only what the ranks need."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

needs_gloo = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is absent")


def _on_rank(
    rank: int, world: int, folder: str, worker: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)  # two ranks on two cores: one thread each
    init = f"file://{Path(folder, 'gloo-init')}"
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        result = worker(rank, *args)
    finally:
        dist.destroy_process_group()
    Path(folder, f"rank{rank}.json").write_text(json.dumps(result))


def on_gloo_ranks(
    worker: Callable[..., Any], tmp_path: Path, *args: Any, world: int = 2
) -> list[Any]:
    """``worker(rank, *args)`` on ``world`` gloo ranks; what each rank returned."""
    mp.spawn(_on_rank, args=(world, str(tmp_path), worker, args), nprocs=world, join=True)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
