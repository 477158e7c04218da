"""What a finished cache must hold to be trained on, checked by :func:`prepare` itself (the
Python API and ``calf prepare`` alike): a lesion in some slice, and in the train split;
and the notice that a cache was replaced by one with other contents.

- No slice has a lesion (``labels=[9]`` where label 9 never occurs): the cache is written,
  but :class:`NoLesionError` is raised, naming the labels asked for and the labels found
  in one label file of the source.
- The train split has none: :class:`NoTrainLesionWarning` (a loss fitted on it has nothing
  to learn from; ``calf train`` refuses such a split).
- The cache at ``out`` was replaced by one with another digest:
  :class:`CacheReplacedWarning` (runs trained on the old one are not resumed or skipped
  against it).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from calfseg.data.cache import CacheError, SliceCache, cache_digest, read_meta
from calfseg.data.preparation.pipeline import PrepareError, PrepareReport


class NoLesionError(PrepareError):
    """No slice of the finished cache has a lesion; ``report`` is the run's report (the
    cache was written)."""

    def __init__(self, message: str, report: PrepareReport) -> None:
        super().__init__(message)
        self.report = report


class NoTrainLesionWarning(UserWarning):
    """The train split of the finished cache has no slice with a lesion."""


class CacheReplacedWarning(UserWarning):
    """The cache in the output folder was replaced by one with another digest."""


def digest_or_none(cache: Path) -> str | None:
    """The digest of a finished cache at ``cache``, or None when there is none."""
    if read_meta(cache) is None:
        return None
    try:
        return cache_digest(cache)
    except CacheError:
        return None


def notice_replaced(cache: Path, before: str | None) -> None:
    """:class:`CacheReplacedWarning` when the finished cache's digest is not ``before``."""
    after = digest_or_none(cache)
    if before is not None and after is not None and before != after:
        warnings.warn(
            CacheReplacedWarning(
                f"the cache in {cache} changed (digest {before} -> {after}): runs trained on "
                "the old one are not resumed or skipped against it (calf train --resume, "
                "calf benchmark)"
            ),
            stacklevel=3,
        )


def check_lesions(report: PrepareReport, src: Path | None, labels: Sequence[int] | None) -> None:
    """:class:`NoLesionError` when no slice of the finished cache has a lesion;
    :class:`NoTrainLesionWarning` when its train split has none."""
    try:
        index = SliceCache.open(report.cache).index
    except (CacheError, OSError):
        return  # not finished: another message says why
    areas = np.asarray(index["area"])
    splits = np.asarray(index["split"]).astype(str)
    asked = "every label > 0" if labels is None else f"--labels {','.join(map(str, labels))}"
    if areas.size and not (areas > 0).any():
        raise NoLesionError(
            f"no slice of {report.cache} has a lesion: {asked} selects no voxel in any of the "
            f"{areas.size} slices{_labels_found(src)}; choose --labels among the labels "
            "present (calf analyze FILE --label L measures the areas of one label)",
            report,
        )
    train = splits == "train"
    if train.any() and not (areas[train] > 0).any():
        warnings.warn(
            NoTrainLesionWarning(
                f"the train split of {report.cache} has no slice with a lesion "
                f"({int(train.sum())} slices, all empty for {asked}): training on it cannot "
                "learn the lesion; re-split (--seed, --val, --test) or add cases"
            ),
            stacklevel=3,
        )


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
