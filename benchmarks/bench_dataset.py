"""Throughput of reading training batches from a slice cache: a plain DataLoader over
``SliceDataset`` (per-sample ``__getitem__`` + default collate) vs
``SliceDataset.batch_loader`` (one memory-map read per batch).

    python -m benchmarks.bench_dataset [--slices 20000 --size 256 --batch-size 32 --epochs 2
                                        --dtype uint8 --workers 0 2 --device cuda --cache DIR]

Target (data pipeline issue): at least 5,000 slices/s at 256x256, uint8 cache, batch 32.
Each configuration runs one warm-up epoch (page cache, worker start-up), then ``--epochs``
timed ones; the figure is slices per second over the timed epochs. The synthetic cache
(noise with square lesions) is written to a temporary folder unless ``--cache`` names one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from tests.data.cache_fixture import make_cache
from torch.utils.data import DataLoader

from calfseg.data.dataset import SliceDataset

TARGET = 5000.0


def slices_per_second(make_batches: Iterable, epochs: int, set_epoch) -> float:
    """Iterate one warm-up epoch, then time ``epochs`` epochs."""
    for _ in make_batches:
        pass
    count = 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        set_epoch(epoch)
        for images, masks in make_batches:
            count += images.shape[0]
            assert images.dtype == torch.float32 and masks.dtype == torch.float32
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=20000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dtype", choices=("uint8", "float16"), default="uint8")
    parser.add_argument("--cache", type=Path, help="use this cache instead of a synthetic one")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--device", help="batch_loader(device=...): convert there (e.g. cuda)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the loader's own cost, not intra-op parallelism

    with tempfile.TemporaryDirectory(prefix="bench_dataset_") as tmp:
        cache = args.cache
        if cache is None:
            cache = Path(tmp) / "cache"
            start = time.perf_counter()
            make_cache(
                cache,
                n_cases=args.slices // 100,
                slices_per_case=100,
                size=args.size,
                image_dtype=args.dtype,
                n_datasets=1,
                seed=0,
            )
            print(f"wrote {cache} in {time.perf_counter() - start:.1f} s")
        dataset = SliceDataset(cache, split=None)
        print(
            f"{len(dataset)} slices, {dataset.meta['image_dtype']} {dataset.meta['size']}, "
            f"batch {args.batch_size}, {args.epochs} timed epochs after one warm-up"
        )
        print(f"{'path':44s} {'slices/s':>9s} {'vs 5,000':>9s}")
        for workers in args.workers:
            loader = DataLoader(
                dataset,
                batch_size=args.batch_size,
                shuffle=True,
                num_workers=workers,
                generator=torch.Generator().manual_seed(0),
            )
            rate = slices_per_second(loader, args.epochs, dataset.set_epoch)
            report(f"DataLoader(dataset), {workers} workers", rate)
        for workers in args.workers:
            batches = dataset.batch_loader(
                args.batch_size, shuffle=True, num_workers=workers, device=args.device
            )
            rate = slices_per_second(batches, args.epochs, batches.set_epoch)
            report(f"dataset.batch_loader(), {workers} workers", rate)


def report(name: str, rate: float) -> None:
    print(f"{name:44s} {rate:9.0f} {rate / TARGET:8.2f}x")


if __name__ == "__main__":
    main()
