"""A calf-seg cache as an nnU-Net raw dataset (2D), so that nnU-Net trains the same slices.

Every cache row (one 2D sample) becomes one nnU-Net case, named
``<case>_<modality>_z<slice>`` (characters other than letters, digits, ``-`` and ``.``
become ``_``)::

    Dataset<ID>_<NAME>/
      dataset.json        channel_names (the cache's channels), labels background 0 /
                          tumour 1, file_ending .png, numTraining
      imagesTr/CASE_0000.png ...   one grey uint8 PNG per channel (train and val rows)
      labelsTr/CASE.png            the mask, 0/1
      imagesTs/, labelsTs/         the test rows, if any
      splits_final.json   one fold: the cache's train rows against its val rows

Images: a uint8 cache's values are written as they are; a float16 cache's [0, 1] values
are rounded to 0..255 (``round(255 x)``), the precision of a uint8 cache. nnU-Net
normalises intensities itself, so the scale does not matter to it.

nnU-Net's default 5-fold split would put slices of one patient on both sides of a fold;
``splits_final.json`` holds the cache's own, patient-grouped, split as fold 0: copy it into
``$nnUNet_preprocessed/Dataset<ID>_<NAME>/`` after planning (docs/nnunet.md).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calfseg.atomic import atomic_write_text
from calfseg.data.cache import SliceCache
from calfseg.errors import DataError, OptionError
from calfseg.extras import require

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
SPLITS_FILE = "splits_final.json"


@dataclass(frozen=True)
class ExportSummary:
    folder: Path
    train: int
    val: int
    test: int
    channels: tuple[str, ...]
    rounded: bool  # float16 images rounded to uint8


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``Dataset<ID>_<NAME>`` after checking both (nnU-Net: 1..999, a plain name)."""
    if not 1 <= dataset_id <= 999:
        raise OptionError(f"--id must be a dataset number from 1 to 999, got {dataset_id}")
    if not _NAME.fullmatch(name):
        raise OptionError(
            f"--name must be letters, digits, '_' and '-' (starting with a letter or digit), "
            f"got {name!r}"
        )
    return f"Dataset{dataset_id:03d}_{name}"


def case_names(cache: SliceCache) -> list[str]:
    """One nnU-Net case identifier per cache row, unique (the row number is added where two
    rows would share one)."""
    index = cache.index
    names = [
        "_".join(
            _UNSAFE.sub("_", str(part)).strip("_") or "x"
            for part in (case, modality, f"z{int(z):03d}")
        )
        for case, modality, z in zip(
            index["case_id"], index["modality"], index["slice_index"], strict=True
        )
    ]
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    return [f"{n}_r{row}" if seen[n] > 1 else n for row, n in enumerate(names)]


def _as_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return np.asarray(image)
    return np.rint(np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0) * 255).astype(np.uint8)


def export_cache(
    cache_path: str | Path,
    out: str | Path,
    dataset_id: int,
    name: str,
    *,
    overwrite: bool = False,
) -> ExportSummary:
    """Write the cache at ``cache_path`` as ``out/Dataset<ID>_<NAME>`` (module docstring).

    Raises:
        CacheError: not a finished cache.
        OptionError: a bad id or name.
        DataError: the dataset folder exists (without ``overwrite``), or the cache has no
            train rows.
    """
    image_module: Any = require("PIL.Image", "writing PNG files for nnU-Net")
    folder = Path(out) / dataset_folder_name(dataset_id, name)
    cache = SliceCache.open(cache_path)
    splits = cache.index["split"]
    if not (splits == "train").any():
        raise DataError(f"{cache.path}: the cache has no train rows to export")
    if folder.exists():
        if not overwrite:
            raise DataError(f"{folder} exists; choose another --id/--name or pass --overwrite")
        if not (folder / "dataset.json").is_file():  # never delete a folder that is not one
            raise DataError(f"{folder} exists and is not an nnU-Net dataset; not replacing it")
        shutil.rmtree(folder)
    names = case_names(cache)
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir(parents=True)
    if (splits == "test").any():
        (folder / "imagesTs").mkdir()
        (folder / "labelsTs").mkdir()
    for row, case in enumerate(names):
        part = "Ts" if splits[row] == "test" else "Tr"
        for c, image in enumerate(cache.images[row]):
            path = folder / f"images{part}" / f"{case}_{c:04d}.png"
            image_module.fromarray(_as_uint8(image)).save(path)
        mask = np.asarray(cache.masks[row], dtype=np.uint8)
        image_module.fromarray(mask).save(folder / f"labels{part}" / f"{case}.png")

    channels = tuple(cache.channels)
    train = [n for n, s in zip(names, splits, strict=True) if s == "train"]
    val = [n for n, s in zip(names, splits, strict=True) if s == "val"]
    dataset = {
        "name": name,
        "description": f"exported by calf nnunet export from the calf-seg cache {cache.path}",
        "channel_names": {str(c): channel for c, channel in enumerate(channels)},
        "labels": {"background": 0, "tumour": 1},
        "numTraining": len(train) + len(val),
        "file_ending": ".png",
        "calfseg_cache_digest": cache.digest,
    }
    atomic_write_text(folder / "dataset.json", json.dumps(dataset, indent=2))
    if val:  # without val rows there is no split to keep; nnU-Net then makes its own
        atomic_write_text(
            folder / SPLITS_FILE, json.dumps([{"train": train, "val": val}], indent=1)
        )
    return ExportSummary(
        folder=folder,
        train=len(train),
        val=len(val),
        test=len(names) - len(train) - len(val),
        channels=channels,
        rounded=cache.images.dtype != np.uint8,
    )
