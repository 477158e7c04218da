"""Data layer: dataset layouts on disk -> preprocessing -> slice cache -> splits and filters
-> ``SliceDataset``; plus mask files for ``calf analyze`` and the synthetic source.

:func:`prepare` is the one call that prepares a cache (``calf prepare`` and ``calf
benchmark`` use it too): ``prepare("data/BraTS2021", "cache", size=128).open()``.

    sources (one reader per layout) ─► preprocess ─► cache (calf prepare) ─► SliceDataset
                                                        ▲                        ▲
                                    synthetic source ───┘      splits, filters ──┘
"""

from calfseg.data.cache import CacheError, SliceCache
from calfseg.data.dataset import SliceDataset
from calfseg.data.files.masks import (
    DEFAULT_MAX_LABELS,
    MASK_SUFFIXES,
    MaskFileError,
    find_mask_files,
    foreground,
    read_mask,
)
from calfseg.data.preparation.entry import PrepareSettingsError, prepare
from calfseg.data.preparation.pipeline import PrepareError, PrepareReport, merge_cache
from calfseg.data.sources import SOURCES, detect_layout, get_source, open_source
from calfseg.data.sources.synthetic import SYNTHETIC_PRESETS, SyntheticSource
from calfseg.data.splits.assign import LeakageWarning, assign_splits, kfold_splits
from calfseg.data.splits.filters import (
    DropEmpty,
    KeepEveryKthEmpty,
    MinArea,
    TumourSliceRatio,
    apply_filters,
    parse_filter,
)

__all__ = [
    "DEFAULT_MAX_LABELS",
    "MASK_SUFFIXES",
    "SOURCES",
    "SYNTHETIC_PRESETS",
    "CacheError",
    "DropEmpty",
    "KeepEveryKthEmpty",
    "LeakageWarning",
    "MaskFileError",
    "MinArea",
    "PrepareError",
    "PrepareReport",
    "PrepareSettingsError",
    "SliceCache",
    "SliceDataset",
    "SyntheticSource",
    "TumourSliceRatio",
    "apply_filters",
    "assign_splits",
    "detect_layout",
    "find_mask_files",
    "foreground",
    "get_source",
    "kfold_splits",
    "merge_cache",
    "open_source",
    "parse_filter",
    "prepare",
    "read_mask",
]
