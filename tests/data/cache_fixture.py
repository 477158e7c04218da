"""Write small slice caches (format ``calfseg.cache/1``) directly with numpy, for tests and
benchmarks that must not depend on the cache writer of ``calf prepare``."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from calfseg import __version__
from calfseg.data.splits.assign import assign_splits
from calfseg.stats import AreaMoments

HEADER = (
    "row",
    "case_id",
    "dataset",
    "modality",
    "slice_index",
    "area",
    "has_tumour",
    "split",
    "spacing_x",
    "spacing_y",
    "spacing_z",
)


def write_index(
    path: Path,
    *,
    case_ids: Sequence[str],
    datasets: Sequence[str],
    slice_index: Sequence[int],
    areas: np.ndarray,
    splits: Sequence[str],
    modality: str = "flair",
    spacing: tuple[float, float, float] = (0.9375, 0.9375, 1.0),
) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for row, (case, dataset, k, area, split) in enumerate(
            zip(case_ids, datasets, slice_index, areas.tolist(), splits, strict=True)
        ):
            writer.writerow(
                [row, case, dataset, modality, k, int(area), int(area > 0), split, *spacing]
            )


@contextmanager
def _npy_writer(path: Path, dtype: str, shape: tuple[int, ...]) -> Iterator[BinaryIO]:
    """An open .npy file after its header: write the C-order bytes of the array."""
    with open(path, "wb") as handle:
        header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(handle, header)
        yield handle


def make_cache(
    path: Path,
    *,
    n_cases: int = 6,
    slices_per_case: int = 10,
    size: int = 16,
    channels: Sequence[str] = ("image",),
    image_dtype: str = "uint8",
    n_datasets: int = 2,
    tumour_fraction: float = 0.5,
    seed: int = 0,
    chunk: int = 2048,
    complete: bool = True,
    meta_overrides: dict[str, Any] | None = None,
) -> Path:
    """A cache of ``n_cases * slices_per_case`` random slices: images of noise with a
    brighter square where the mask is 1 (a ``tumour_fraction`` of slices have one), cases
    alternating between ``n_datasets`` datasets, split by case with the default fractions.
    Arrays are written in chunks, so large benchmark caches need little memory."""
    path.mkdir(parents=True, exist_ok=True)
    n = n_cases * slices_per_case
    c = len(channels)
    rng = np.random.default_rng(seed)
    areas = np.zeros(n, dtype=np.int64)
    line = np.arange(size)
    with (
        _npy_writer(path / "images.npy", image_dtype, (n, c, size, size)) as images,
        _npy_writer(path / "masks.npy", "uint8", (n, size, size)) as masks,
    ):
        for start in range(0, n, chunk):
            k = min(chunk, n - start)
            half = rng.integers(1, max(2, size // 4), size=(k, 1))
            cy, cx = rng.integers(size // 4, size - size // 4, size=(2, k, 1))
            in_rows = (np.abs(line - cy) < half) & (rng.random((k, 1)) < tumour_fraction)
            in_cols = np.abs(line - cx) < half
            inside = in_rows[:, :, None] & in_cols[:, None, :]  # a square per lesion slice
            # Cheap texture (xor of a random row and column pattern): 0..127 outside the
            # lesion, 128..255 inside.
            rows_noise = rng.integers(0, 128, size=(k, c, size, 1), dtype=np.uint8)
            cols_noise = rng.integers(0, 128, size=(k, c, 1, size), dtype=np.uint8)
            value = (rows_noise ^ cols_noise) | (inside[:, None].view(np.uint8) << 7)
            if image_dtype != "uint8":
                value = (value / np.float32(255)).astype(np.float16)
            images.write(value.tobytes())
            masks.write(inside.astype(np.uint8).tobytes())
            areas[start : start + k] = in_rows.sum(axis=1) * in_cols.sum(axis=1)
    case_ids = [f"case-{i // slices_per_case:04d}" for i in range(n)]
    datasets = [f"ds{(i // slices_per_case) % n_datasets}" for i in range(n)]
    splits = assign_splits(case_ids, datasets, seed=seed)
    write_index(
        path / "index.csv",
        case_ids=case_ids,
        datasets=datasets,
        slice_index=[i % slices_per_case for i in range(n)],
        areas=areas,
        splits=splits,
    )
    cases = sorted(set(case_ids))
    meta: dict[str, Any] = {
        "format": "calfseg.cache/1",
        "complete": complete,
        "calfseg_version": __version__,
        "channels": list(channels),
        "size": [size, size],
        "image_dtype": image_dtype,
        "n_slices": n,
        "options": {"source": "tests.data.cache_fixture"},
        "cases": cases,
        "splits": {
            "mode": "case",
            "fractions": {"train": 0.8, "val": 0.1, "test": 0.1},
            "seed": seed,
        },
    }
    meta.update(meta_overrides or {})
    (path / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    train = AreaMoments.from_areas(areas[splits == "train"].astype(np.float64))
    (path / "fingerprint.json").write_text(json.dumps(train.to_dict()), encoding="utf-8")
    return path
