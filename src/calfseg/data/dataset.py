"""The torch Dataset over the slice cache that ``calf prepare`` writes.

The cache (format ``calfseg.cache/1``, see docs/data.md) is a folder with ``meta.json``,
``images.npy`` ``(N, C, H, W)`` uint8 (0..255 for [0, 1]) or float16, ``masks.npy``
``(N, H, W)`` uint8 0/1, ``index.csv`` (one row per slice) and ``fingerprint.json``.

Two ways to iterate, yielding the same samples:

- :class:`SliceDataset` with a plain ``torch.utils.data.DataLoader``: one slice per
  ``__getitem__``, any per-sample ``transform``;
- :meth:`SliceDataset.batch_loader`: one fancy-indexed read of the memory map per batch of
  sorted rows, whole batches converted at once. Several times faster; use it for training
  (see ``python -m benchmarks.bench_dataset``).

Augmentation (off by default, as in the paper) is one of the 8 flips/rotations by 90 degrees
(the dihedral group D4; D2 for non-square slices), the same for image and mask, chosen by a
hash of ``(seed, epoch, cache row)``: deterministic, independent of worker count, batch
composition and filters.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from calfseg.data.cache import INDEX_FILE, SliceCache, open_memmaps, read_index
from calfseg.data.splits.filters import Filter, apply_filters
from calfseg.errors import DataValueError, OptionError

Sample = tuple[torch.Tensor, torch.Tensor]
Batch = tuple[np.ndarray, torch.Tensor, torch.Tensor]  # (positions, images, masks)
SampleTransform = Callable[[torch.Tensor, torch.Tensor], Sample]


class SliceDataset(Dataset[Sample]):
    """Slices of one split of a cache, after filters, as ``(image, mask)`` float32 tensors.

    ``image`` is ``(C, H, W)`` in [0, 1] (uint8 caches divided by 255, float16 cast);
    ``mask`` is ``(1, H, W)`` with values 0/1.

    Args:
        cache: the cache folder.
        split: ``"train"``, ``"val"``, ``"test"``, several of them, or None for all rows.
        filters: :mod:`calfseg.data.splits.filters` objects applied in order to the split's rows.
        transform: ``f(image, mask) -> (image, mask)`` applied to each sample (after the
            augmentation).
        augment: random flips and 90-degree rotations (same for image and mask), seeded by
            ``(seed, epoch, cache row)``; call :meth:`set_epoch` each epoch.
        seed: seed of the augmentation (and the default seed of :meth:`batch_loader`).
        splits: the split name of every cache row, replacing index.csv's ``split`` column
            (a run that re-deals the rows, e.g.
            :func:`calfseg.data.splits.assign.paper_slice_splits`).

    The memory maps are opened lazily in each process that reads, so the dataset pickles to
    DataLoader workers (fork or spawn) as its path, meta and row numbers only.
    """

    def __init__(
        self,
        cache: str | os.PathLike[str],
        split: str | Sequence[str] | None = "train",
        filters: Sequence[Filter] = (),
        transform: SampleTransform | None = None,
        augment: bool = False,
        seed: int = 0,
        splits: np.ndarray | None = None,
    ) -> None:
        self.path = Path(cache)
        arrays = SliceCache.open(self.path)
        self.meta = arrays.meta
        n_rows = len(arrays.index["split"])
        if splits is not None and len(splits) != n_rows:
            raise OptionError(f"splits has {len(splits)} entries for the cache's {n_rows} rows")
        split_column = arrays.index["split"] if splits is None else np.asarray(splits)
        rows = _split_rows(split_column, split, self.path)
        self.filters = tuple(filters)
        selected = apply_filters(arrays.index, self.filters, rows)
        if selected.size == 0:
            raise DataValueError(
                f"the filters {[str(f) for f in self.filters]} left none of the {rows.size} "
                f"rows of split {split!r} in {self.path}"
            )
        self.rows = selected
        self._index: dict[str, np.ndarray] | None = {
            name: column[selected] for name, column in arrays.index.items()
        }
        self.transform = transform
        self.augment = bool(augment)
        self.seed = int(seed)
        self.epoch = 0
        self._shape = (arrays.images.shape, arrays.masks.shape)
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        self._pid: int | None = None

    # -- metadata for metrics -------------------------------------------------------------

    @property
    def index(self) -> dict[str, np.ndarray]:
        """Every index.csv column, for the selected rows. Not pickled (a worker needs only
        ``rows``); a copy re-reads it from the cache on first access."""
        if self._index is None:
            full = read_index(self.path / INDEX_FILE)
            self._index = {name: column[self.rows] for name, column in full.items()}
        return self._index

    @property
    def areas(self) -> np.ndarray:
        """Foreground pixel count of each selected slice (after resizing)."""
        return self.index["area"]

    @property
    def case_ids(self) -> np.ndarray:
        return self.index["case_id"]

    @property
    def has_tumour(self) -> np.ndarray:
        return self.index["has_tumour"]

    @property
    def spacing(self) -> np.ndarray:
        """``(n, 2)`` pixel size in mm (x, y) of each selected slice after resizing."""
        return np.stack([self.index["spacing_x"], self.index["spacing_y"]], axis=1)

    @property
    def voxel_spacing(self) -> np.ndarray:
        """``(n, 3)`` voxel size in mm of each selected slice's case volume: the pixel size
        after resizing, then the source's slice spacing (``spacing_z``)."""
        columns = ("spacing_x", "spacing_y", "spacing_z")
        return np.stack([self.index[name] for name in columns], axis=1)

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.meta["channels"])

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation of this epoch (also call it on DataLoader workers'
        copies: use non-persistent workers, or :meth:`batch_loader`, which passes the epoch
        along with each batch)."""
        self.epoch = int(epoch)

    # -- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.rows.size)

    def __getitem__(self, i: int) -> Sample:
        row = int(self.rows[i])
        images, masks = self._memmaps()
        image = images[row]
        mask = masks[row]
        if self.augment:
            code = int(dihedral_codes(self.seed, self.epoch, np.array([row]))[0])
            image, mask = _dihedral(image, code), _dihedral(mask, code)
        image_t = to_unit_float(image)
        mask_t = torch.from_numpy(mask.astype(np.float32, order="C")).unsqueeze(0)
        if self.transform is not None:
            image_t, mask_t = self.transform(image_t, mask_t)
        return image_t, mask_t

    def read_batch(self, positions: np.ndarray, epoch: int | None = None) -> Sample:
        """The samples at dataset ``positions`` as ``(B, C, H, W)`` and ``(B, 1, H, W)``
        float32 tensors, read with one fancy-indexed access per array (sorted positions
        read fastest). Equal to stacking ``self[i]`` for each position (``transform`` aside);
        ``epoch`` defaults to the dataset's."""
        return _to_float_batch(*self.read_raw_batch(positions, epoch))

    def read_raw_batch(
        self, positions: np.ndarray, epoch: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`read_batch`, but in the cache's dtypes: images ``(B, C, H, W)`` uint8 or
        float16, masks ``(B, H, W)`` uint8 (a quarter of the bytes to move between
        processes)."""
        rows = self.rows[np.asarray(positions, dtype=np.int64)]
        images, masks = self._memmaps()
        image = images[rows]
        mask = masks[rows]
        if self.augment:
            codes = dihedral_codes(self.seed, self.epoch if epoch is None else epoch, rows)
            for code in np.unique(codes):
                sel = np.flatnonzero(codes == code)
                image[sel] = _dihedral(image[sel], int(code))
                mask[sel] = _dihedral(mask[sel], int(code))
        return torch.from_numpy(image), torch.from_numpy(mask)

    def batch_loader(
        self,
        batch_size: int = 32,
        *,
        shuffle: bool = True,
        num_workers: int = 0,
        drop_last: bool = False,
        seed: int | None = None,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        device: str | torch.device | None = None,
    ) -> SliceBatchLoader:
        """An iterable of ready ``(images, masks)`` batches read with :meth:`read_batch`.

        Each epoch's order is a permutation seeded by ``(seed, epoch)`` (``seed`` defaults to
        the dataset's); a batch holds its rows sorted. Call ``loader.set_epoch(e)`` before
        each epoch. Per-sample ``transform`` is not supported here (it needs one call per
        sample: use a plain DataLoader, or transform the batch).

        Workers (``num_workers > 0``) read and augment batches in the cache's dtype; the
        conversion to float32 runs in the iterating process, or, with ``device`` set, on that
        device after the copy (a quarter of the bytes to copy for uint8 caches;
        ``pin_memory=True`` then pins the raw batches for asynchronous copies). Without a
        device, ``pin_memory=True`` pins the float32 batches.
        """
        if self.transform is not None:
            raise OptionError(
                "batch_loader reads whole batches and cannot apply a per-sample transform; "
                "use torch.utils.data.DataLoader(dataset, ...) or apply it to the batch"
            )
        return SliceBatchLoader(
            self,
            batch_size,
            shuffle=shuffle,
            num_workers=num_workers,
            drop_last=drop_last,
            seed=self.seed if seed is None else seed,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            device=device,
        )

    def _memmaps(self) -> tuple[np.ndarray, np.ndarray]:
        # Reopen in every new process: a forked worker gets its own file mapping.
        if self._arrays is None or self._pid != os.getpid():
            images, masks = open_memmaps(self.path)
            if (images.shape, masks.shape) != self._shape:
                raise DataValueError(f"{self.path}: the cache changed since the dataset was made")
            # Plain ndarray views of the maps: indexing an np.memmap costs ~10x more.
            self._arrays, self._pid = (np.asarray(images), np.asarray(masks)), os.getpid()
        return self._arrays

    def __getstate__(self) -> dict[str, Any]:
        # Workers get the path and the row numbers: no memory maps, no index columns.
        state = self.__dict__.copy()
        state.update(_arrays=None, _pid=None, _index=None)
        return state

    def __repr__(self) -> str:
        return (
            f"SliceDataset({str(self.path)!r}, {len(self)} slices, channels={list(self.channels)}, "
            f"filters={[str(f) for f in self.filters]}, augment={self.augment})"
        )


class SliceBatchSampler(Sampler[tuple[int, np.ndarray]]):
    """Yields ``(epoch, sorted positions)`` per batch; the epoch travels with the request so
    that workers (persistent or not) augment as the main process says."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, drop_last: bool, seed: int):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise OptionError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.n, self.batch_size = n, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        for j in range(len(self)):
            yield self.epoch, np.sort(order[j * self.batch_size : (j + 1) * self.batch_size])


class _BatchReader(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Map-style dataset whose keys are ``(epoch, positions)`` requests; it returns raw
    batches (see :meth:`SliceDataset.read_raw_batch`). The one batch reader behind both
    :class:`SliceBatchLoader` and :func:`read_batches`."""

    def __init__(self, dataset: SliceDataset):
        self.dataset = dataset

    def __getitem__(self, request: tuple[int, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, positions = request
        return self.dataset.read_raw_batch(positions, epoch=epoch)


class SliceBatchLoader:
    """Batches of a :class:`SliceDataset`, one memory-map read each (see
    :meth:`SliceDataset.batch_loader`). Iterate it like a DataLoader."""

    def __init__(
        self,
        dataset: SliceDataset,
        batch_size: int,
        *,
        shuffle: bool,
        num_workers: int,
        drop_last: bool,
        seed: int,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        device: str | torch.device | None = None,
    ) -> None:
        self.dataset = dataset
        self.device = None if device is None else torch.device(device)
        self.pin_memory = pin_memory
        self.sampler = SliceBatchSampler(len(dataset), batch_size, shuffle, drop_last, seed)
        self.loader: DataLoader[tuple[torch.Tensor, torch.Tensor]] = DataLoader(
            _BatchReader(dataset),
            batch_size=None,  # the sampler's requests are whole batches
            sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=pin_memory and self.device is not None,  # pins the raw batches
            persistent_workers=persistent_workers and num_workers > 0,
        )

    def set_epoch(self, epoch: int) -> None:
        """Order and augmentation of the next epoch (as DistributedSampler.set_epoch)."""
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Sample]:
        # Workers send the cache's dtypes (uint8: a quarter of float32's bytes through shared
        # memory); the conversion to float32 happens here, or on the target device.
        for images, masks in self.loader:
            if self.device is not None:
                images = images.to(self.device, non_blocking=self.pin_memory)
                masks = masks.to(self.device, non_blocking=self.pin_memory)
                yield _to_float_batch(images, masks)
            elif self.pin_memory:
                batch = _to_float_batch(images, masks)
                yield batch[0].pin_memory(), batch[1].pin_memory()
            else:
                yield _to_float_batch(images, masks)


def read_batches(
    dataset: SliceDataset,
    batches: Sequence[np.ndarray],
    *,
    epoch: int = 0,
    workers: int = 0,
    device: torch.device | None = None,
) -> Iterator[Batch]:
    """Yield ``(positions, images, masks)`` for each given batch of dataset positions, in
    order (what training and evaluation iterate; the batches come from their own plan).

    ``workers`` DataLoader processes read the raw batches (the cache's dtypes) through the
    same reader as :meth:`SliceDataset.batch_loader`; the conversion to float32 images
    ``(B, C, H, W)`` in [0, 1] and 0/1 masks ``(B, 1, H, W)`` runs on the CPU here, before
    the move to ``device``, so the values do not depend on the device or the worker count.
    The augmentation (if the dataset has it) is that of ``epoch``."""
    requests = [(epoch, np.asarray(b, dtype=np.int64)) for b in batches]
    loader: DataLoader[tuple[torch.Tensor, torch.Tensor]] = DataLoader(
        _BatchReader(dataset), batch_size=None, sampler=requests, num_workers=workers
    )
    for (_, positions), raw in zip(requests, loader, strict=True):
        images, masks = _to_float_batch(*raw)
        if device is not None:
            images, masks = images.to(device), masks.to(device)
        yield positions, images, masks


def dihedral_codes(seed: int, epoch: int, rows: np.ndarray) -> np.ndarray:
    """One of 8 transforms per row, from SplitMix64 (Steele et al., 2014) of
    ``(seed, epoch, row)``: bits 0-1 = quarter turns, bit 2 = flip (uint8 codes 0..7)."""
    with np.errstate(over="ignore"):
        key = _splitmix64(_splitmix64(np.array([seed], dtype=np.uint64)) ^ np.uint64(epoch))
        h = _splitmix64(key ^ np.asarray(rows, dtype=np.uint64))
    return (h >> np.uint64(61)).astype(np.uint8)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _dihedral(array: np.ndarray, code: int) -> np.ndarray:
    """Flip (code bit 2) then rotate by ``code & 3`` quarter turns over the last two axes.
    Non-square slices take only half turns (odd turns become two)."""
    turns = code & 3
    if array.shape[-1] != array.shape[-2]:
        turns = 2 * (turns & 1)
    if code & 4:
        array = array[..., ::-1]
    return np.rot90(array, turns, axes=(-2, -1))


def _to_float_batch(images: torch.Tensor, masks: torch.Tensor) -> Sample:
    """Raw batch -> float32 ``(B, C, H, W)`` in [0, 1] and ``(B, 1, H, W)``."""
    if images.device.type == "cpu":
        images = to_unit_float(images.numpy())
    elif images.dtype == torch.uint8:
        images = torch.div(images, 255)
    else:
        images = images.to(torch.float32)
    return images, masks.to(torch.float32).unsqueeze(1)


def to_unit_float(image: np.ndarray) -> torch.Tensor:
    """uint8 0..255 -> float32 ``x / 255`` (numpy's correctly rounded float32 division, about
    twice as fast as torch's here); float16 -> float32 (torch's cast, about three times as
    fast as numpy's). Used by both read paths and by ``calf predict``, so they agree bit
    for bit."""
    if image.dtype == np.uint8:
        return torch.from_numpy(np.divide(image, np.float32(255), dtype=np.float32, order="C"))
    # torch needs a writable, contiguous array: memory-map views are copied first
    return torch.from_numpy(np.require(image, requirements=["C", "W"])).to(torch.float32)


def _split_rows(splits: np.ndarray, split: str | Sequence[str] | None, path: Path) -> np.ndarray:
    """Rows of the wanted split(s); an unknown or empty split lists what the cache has."""
    if split is None:
        return np.arange(splits.size, dtype=np.int64)
    wanted = [split] if isinstance(split, str) else list(split)
    names, counts = np.unique(splits, return_counts=True)
    available = ", ".join(
        f"{n} ({c} slices)" for n, c in zip(names.tolist(), counts.tolist(), strict=True)
    )
    for name in wanted:
        if name not in names:
            raise DataValueError(
                f"split {name!r} has no rows in {path}; the cache has: {available or 'no rows'}"
            )
    return np.flatnonzero(np.isin(splits, wanted)).astype(np.int64)
