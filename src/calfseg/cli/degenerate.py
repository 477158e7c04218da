"""Checks that turn degenerate data into a clear message instead of a confident-looking
result: a prepared cache in which no slice has a lesion (``calf prepare --labels 9`` where
label 9 never occurs), or whose train split has none."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def lesion_problems(
    cache: Path, src: Path | None, labels: Sequence[int] | None
) -> tuple[str | None, str | None]:
    """(error, warning) about the lesions of the finished cache at ``cache``.

    The error: no slice has a lesion (it names the labels asked for and the labels found in
    one label file of ``src``). The warning: the train split has none, so a loss fitted on
    it has nothing to learn from. (None, None) when the cache cannot be opened (another
    message has said why) or all is well.
    """
    from calfseg.data.cache import CacheError, SliceCache

    try:
        index = SliceCache.open(cache).index
    except (CacheError, OSError, ValueError):
        return None, None
    areas = np.asarray(index["area"])
    splits = np.asarray(index["split"]).astype(str)
    asked = "every label > 0" if labels is None else f"--labels {','.join(map(str, labels))}"
    if areas.size and not (areas > 0).any():
        found = _labels_found(src)
        return (
            f"no slice of {cache} has a lesion: {asked} selects no voxel in any of the "
            f"{areas.size} slices{found}; choose --labels among the labels present "
            "(calf analyze FILE --label L measures the areas of one label)",
            None,
        )
    train = splits == "train"
    if train.any() and not (areas[train] > 0).any():
        return None, (
            f"the train split of {cache} has no slice with a lesion ({int(train.sum())} "
            f"slices, all empty for {asked}): training on it cannot learn the lesion; "
            "re-split (--seed, --val, --test) or add cases"
        )
    return None, None


def _labels_found(src: Path | None) -> str:
    """`` (labels found in FILE: 0, 1, 2)`` from the first label file of a dataset folder."""
    if src is None:
        return ""
    from calfseg.data.files.masks import MaskFileError, read_mask
    from calfseg.data.scan.labels import layout_label_files

    try:
        found = layout_label_files(src)
        if found is None or not found.files:
            return ""
        first = found.files[0]
        values = np.unique(np.asarray(read_mask(first)))
    except (MaskFileError, OSError, ValueError, ImportError):
        return ""
    listed = ", ".join(str(int(v)) for v in values[:20]) + (" ..." if values.size > 20 else "")
    return f" (labels found in {first}: {listed})"
