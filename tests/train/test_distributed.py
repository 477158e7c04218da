"""DDP: batch sharding, and torchrun with 2 CPU processes against one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from calfseg.cli import main
from calfseg.data import SliceDataset
from calfseg.train import load_checkpoint
from calfseg.train.distributed import epoch_batches, eval_shard


def test_ranks_split_each_global_batch_of_one_process():
    one = epoch_batches(52, 8, seed=3, epoch=2)
    two = [epoch_batches(52, 4, seed=3, epoch=2, rank=r, world_size=2) for r in (0, 1)]
    assert len(two[0]) == len(two[1]) == len(one)
    for j, batch in enumerate(one):
        assert np.array_equal(np.sort(np.concatenate([two[0][j], two[1][j]])), batch)


def test_one_process_batches_are_those_of_the_batch_loader(cache: Path):
    dataset = SliceDataset(cache, "train", seed=7)
    loader = dataset.batch_loader(8, seed=7)
    loader.set_epoch(1)
    mine = epoch_batches(len(dataset), 8, seed=7, epoch=1)
    theirs = list(loader.sampler)
    assert len(mine) == len(theirs)
    assert all(np.array_equal(a, b[1]) for a, b in zip(mine, theirs, strict=True))


def test_a_last_batch_too_small_for_batch_norm_is_dropped():
    assert [len(b) for b in epoch_batches(17, 8, seed=0, epoch=0)] == [8, 8]
    assert [len(b) for b in epoch_batches(18, 8, seed=0, epoch=0)] == [8, 8, 2]


def test_evaluation_shards_cover_every_image_once():
    parts = [eval_shard(11, r, 3) for r in range(3)]
    assert np.array_equal(np.concatenate(parts), np.arange(11))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["bce", "calf"])
@pytest.mark.slow
def test_torchrun_two_cpu_processes_match_one_process(cache: Path, tmp_path: Path, loss: str):
    """1 process with batch 8 and 2 processes with batch 4 see the same global batches;
    DDP averages the gradients, so the weights agree (BCE: no batch statistics in the loss;
    frozen batch norm: none in the model either, as SyncBatchNorm is CUDA-only). CALF's
    batch statistics are summed over the ranks, so each step picks the branch one process
    picks for the global batch."""
    common = ["--data", str(cache), "--preset", "tiny", "--loss", loss, "--epochs", "1"]
    common += ["--max-steps", "3", "--freeze-bn", "--no-progress", "--device", "cpu"]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    command += ["-m", "calfseg.cli", "train", *common, "--batch-size", "4"]
    command += ["--out", str(tmp_path / "ddp")]
    ddp = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert main(["train", *common, "--batch-size", "8", "--out", str(tmp_path / "one")]) == 0
    out, _ = ddp.communicate(timeout=120)
    assert ddp.returncode == 0, out.decode()[-3000:]
    assert (tmp_path / "ddp" / "done.json").is_file()
    logs = [(tmp_path / run / "log.jsonl").read_text() for run in ("one", "ddp")]
    rows = [json.loads(text.splitlines()[0]) for text in logs]
    for name in rows[0]:
        if name.startswith("branch/"):
            assert rows[1][name] == rows[0][name], name
    a = load_checkpoint(tmp_path / "one" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "ddp" / "last.pt")["model"]
    for name in a:
        if a[name].is_floating_point():
            torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)


def test_worker_processes_read_the_same_batches(cache: Path):
    from calfseg.data.dataset import read_batches

    dataset = SliceDataset(cache, "train", augment=True, seed=5)
    batches = epoch_batches(len(dataset), 8, seed=5, epoch=1)[:3]
    here = list(read_batches(dataset, batches, epoch=1))
    there = list(read_batches(dataset, batches, epoch=1, workers=1))
    for (p, x, y), (q, u, v) in zip(here, there, strict=True):
        assert np.array_equal(p, q) and torch.equal(x, u) and torch.equal(y, v)
