"""Reading a list of batches (dataset positions) of a :class:`SliceDataset`, optionally in
DataLoader worker processes, as float32 tensors on the training device."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from calfseg.data import SliceDataset

Batch = tuple[np.ndarray, torch.Tensor, torch.Tensor]


class _Requests(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Map-style dataset keyed by ``(epoch, positions)``: one batch read per key."""

    def __init__(self, dataset: SliceDataset) -> None:
        self.dataset = dataset

    def __getitem__(self, key: tuple[int, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, positions = key
        return self.dataset.read_batch(positions, epoch=epoch)


def read_batches(
    dataset: SliceDataset,
    batches: Sequence[np.ndarray],
    *,
    epoch: int = 0,
    workers: int = 0,
    device: torch.device | None = None,
) -> Iterator[Batch]:
    """Yield ``(positions, images, masks)`` for each batch of positions, in order.

    Images are ``(B, C, H, W)`` float32 in [0, 1], masks ``(B, 1, H, W)`` 0/1, moved to
    ``device``. The augmentation (if the dataset has it) is that of ``epoch``."""
    keys = [(epoch, np.asarray(b, dtype=np.int64)) for b in batches]
    loader: DataLoader[tuple[torch.Tensor, torch.Tensor]] = DataLoader(
        _Requests(dataset), batch_size=None, sampler=keys, num_workers=workers
    )
    for (_, positions), (images, masks) in zip(keys, loader):
        if device is not None:
            images, masks = images.to(device), masks.to(device)
        yield positions, images, masks
