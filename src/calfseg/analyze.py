"""``calf analyze`` as a library: measure the foreground areas of mask files, summarise their
distribution, and say which CALF branch the rule picks and how stable that pick is.

- :func:`scan_masks`: files -> one area per 2D mask, per slice of a 3D volume (along its
  last axis, as stored) or per volume, plus per-file bookkeeping. One file is in memory
  at a time; only the areas are kept. In a dataset folder of a known layout only the
  layout's label files are read (:mod:`calfseg.data.scan.labels`).
- :func:`analyze_areas`: areas -> :class:`AnalysisResult`: counts, quantiles, S and K
  (:class:`~calfseg.stats.AreaMoments`), the rule's :class:`~calfseg.rule.Selection`, how
  often each branch is picked over random mini-batches (what the authors' per-batch CALF
  does) and over bootstrap resamples of the whole set (how stable the dataset-level pick is).
- :func:`cache_areas`: the slice areas of a cache written by ``calf prepare`` (its index).
- :func:`analyze_moments`: the part that needs only the moments, for a saved fingerprint.
- :func:`build_report` / :func:`write_json`: the JSON document of ``calf analyze --json``.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from calfseg import __version__
from calfseg.data.files.masks import (
    DEFAULT_MAX_LABELS,
    MASK_SUFFIXES,
    MaskFileError,
    find_mask_files,
    foreground,
    read_mask,
)
from calfseg.data.scan.labels import LAYOUT_AUTO, LAYOUT_NONE, layout_label_files
from calfseg.progress import progress_bar
from calfseg.rule import BRANCHES, Selection, Thresholds, select_branch
from calfseg.stats import AreaMoments, foreground_areas
from calfseg.stats.areas import AreaMethod
from calfseg.stats.resampling import batch_indices, bootstrap_indices, resampled_skew_kurt

OnError = Literal["stop", "skip"]
ANALYSIS_FORMAT = "calfseg.analysis/1"
QUANTILES: tuple[tuple[str, float], ...] = (
    ("min", 0.0),
    ("p05", 5.0),
    ("p25", 25.0),
    ("p50", 50.0),
    ("p75", 75.0),
    ("p95", 95.0),
    ("max", 100.0),
)


class NoMaskFilesError(MaskFileError):
    """A folder (or a file filtered out by the glob) holds no mask file."""


class FingerprintError(ValueError):
    """A JSON file given as a fingerprint cannot be read as one; the message names it."""


class NoAreasError(ValueError):
    """Nothing is left to analyse (no area, or only empty masks with ``exclude_empty``):
    S and K would be undefined and the rule's pick meaningless. The message gives counts."""


# -- scanning files -----------------------------------------------------------------------


@dataclass(frozen=True)
class FileRecord:
    """One mask file that was read: its array shape and how many (empty) areas it gave."""

    path: Path
    shape: tuple[int, ...]
    areas: int
    empty: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "shape": list(self.shape),
            "areas": self.areas,
            "empty": self.empty,
        }


@dataclass(frozen=True)
class SkippedFile:
    """A file left out under ``on_error="skip"``, and why."""

    path: Path
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "reason": self.reason}


@dataclass
class ScanResult:
    """Areas of every mask read (file order, then slice order) and the bookkeeping."""

    path: Path
    areas: np.ndarray  # float64, one per mask / slice / volume
    empty: np.ndarray  # bool, True where the mask has no foreground pixel
    found: int  # mask files found (and tried)
    files: list[FileRecord] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    per_volume: bool = False
    layout: str | None = None  # the dataset layout whose label files were read, if any

    @property
    def unit(self) -> str:
        """What one area is: ``masks`` (2D files), ``slices`` or ``volumes`` (3D files)."""
        kinds = []
        if any(len(f.shape) == 2 for f in self.files):
            kinds.append("masks")
        if any(len(f.shape) == 3 for f in self.files):
            kinds.append("volumes" if self.per_volume else "slices")
        return " and ".join(kinds) or "masks"

    def to_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "scanned": self.found,
            "read": len(self.files),
            "skipped": [s.to_dict() for s in self.skipped],
            "per_file": [f.to_dict() for f in self.files],
        }


def measure_mask(
    label_array: np.ndarray,
    *,
    labels: Iterable[int] | None = None,
    per_volume: bool = False,
    area: AreaMethod = "pixels",
    slice_axis: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """Areas and emptiness of one label array: one per 2D mask, per slice along
    ``slice_axis`` of a 3D volume, or one per volume with ``per_volume``."""
    fg = foreground(label_array, labels)
    if fg.ndim == 2:
        samples = fg[None]
    elif per_volume:
        samples = fg[None, None]  # (1, 1, *volume): foreground_areas' 3D layout
    else:
        samples = np.ascontiguousarray(np.moveaxis(fg, slice_axis, 0))
    areas = foreground_areas(samples, area).numpy()
    if area == "pixels":
        empty = areas == 0
    else:  # a contour area of 0 does not mean empty (one-pixel blobs, lines)
        empty = ~samples.reshape(samples.shape[0], -1).any(axis=1)
    return areas, empty


def scan_masks(
    path: str | os.PathLike[str],
    *,
    mask_glob: str | None = None,
    layout: str = LAYOUT_AUTO,
    labels: Sequence[int] | None = None,
    per_volume: bool = False,
    area: AreaMethod = "pixels",
    slice_axis: int = -1,
    max_labels: int = DEFAULT_MAX_LABELS,
    on_error: OnError = "stop",
    progress: bool = False,
) -> ScanResult:
    """Measure every mask file at ``path``.

    Which files: a file is itself; in a folder, ``layout`` ``"auto"`` (default) detects a
    known dataset layout as ``calf prepare`` does and reads only its label files (never a
    BraTS ``brainmask.nii.gz``); a layout name forces that layout; ``"none"``, a folder of
    no known layout, or a ``mask_glob`` search every mask-like file below the folder (see
    :func:`~calfseg.data.find_mask_files`).

    ``on_error="stop"`` raises the first :class:`MaskFileError` (a case of the layout
    without a label file included); ``"skip"`` records it in :attr:`ScanResult.skipped`
    and goes on. ``progress`` shows a bar on stderr when it is a terminal. A folder without
    any mask file raises :class:`NoMaskFilesError` in both modes.
    """
    if on_error not in ("stop", "skip"):
        raise ValueError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
    root = Path(path)
    found = None if mask_glob is not None else layout_label_files(root, layout)
    missing: list[SkippedFile] = []
    if found is None:
        if layout not in (LAYOUT_AUTO, LAYOUT_NONE) and root.is_dir():
            raise ValueError(f"layout {layout!r} cannot be combined with a mask glob")
        files = find_mask_files(root, mask_glob)
    else:
        files = found.files
        missing = [SkippedFile(root, f"case {p}") for p in found.problems]
        if missing and on_error == "stop":
            raise MaskFileError(root, missing[0].reason)
    if not files:
        what = f"matching {mask_glob!r} " if mask_glob is not None else ""
        if found is not None:
            what = f"of layout {found.layout} "
        raise NoMaskFilesError(
            root, f"no mask files {what}found (looked for {', '.join(MASK_SUFFIXES)})"
        )
    result = ScanResult(
        root,
        np.empty(0),
        np.empty(0, dtype=bool),
        len(files) + len(missing),
        skipped=list(missing),
        per_volume=per_volume,
        layout=None if found is None else found.layout,
    )
    bar = progress_bar(len(files), "reading masks", progress, unit="file")
    area_parts, empty_parts = [], []
    for file in files:
        if bar is not None:
            bar.update(1)
        try:
            label_array = read_mask(file, max_labels=max_labels)
        except MaskFileError as err:
            if on_error == "stop":
                raise
            result.skipped.append(SkippedFile(file, err.reason))
            continue
        areas, empty = measure_mask(
            label_array, labels=labels, per_volume=per_volume, area=area, slice_axis=slice_axis
        )
        area_parts.append(areas)
        empty_parts.append(empty)
        shape = tuple(label_array.shape)
        result.files.append(FileRecord(file, shape, int(areas.size), int(empty.sum())))
    if bar is not None:
        bar.close()
    if area_parts:
        result.areas = np.concatenate(area_parts).astype(np.float64)
        result.empty = np.concatenate(empty_parts)
    return result


# -- a prepared cache ---------------------------------------------------------------------


@dataclass(frozen=True)
class CacheAreas:
    """The areas of a slice cache's rows (all, or one split), read from its index."""

    path: Path
    areas: np.ndarray  # float64 pixel counts of the prepared (resized) masks
    empty: np.ndarray  # bool
    split: str | None  # None: every row
    cases: int  # cases among the chosen rows
    rows_in_cache: int
    split_rows: dict[str, int] = field(default_factory=dict)  # rows of each split

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "rows": int(self.areas.size),
            "cases": self.cases,
            "rows_in_cache": self.rows_in_cache,
        }


def cache_areas(path: str | os.PathLike[str], split: str | None = None) -> CacheAreas:
    """Areas of the rows of the cache at ``path`` (``split``: only train, val or test).

    Raises :class:`~calfseg.data.cache.CacheError` when ``path`` is not a finished cache."""
    from calfseg.data.cache import SPLIT_NAMES, SliceCache

    cache = SliceCache.open(path)
    rows = cache.rows(split)
    areas = cache.index["area"][rows].astype(np.float64)
    keys = zip(
        cache.index["dataset"][rows].tolist(), cache.index["case_id"][rows].tolist(), strict=True
    )
    split_rows = {name: int(cache.rows(name).size) for name in SPLIT_NAMES}
    return CacheAreas(Path(path), areas, areas == 0, split, len(set(keys)), len(cache), split_rows)


# -- analysing areas ----------------------------------------------------------------------


@dataclass(frozen=True)
class BatchSummary:
    """How the per-batch rule (the authors' dynamic CALF) behaves on this data."""

    batch_size: int
    batches: int
    branch_frequencies: dict[str, float]  # every branch, in BRANCHES order; sums to 1
    condition_frequencies: dict[str, float]  # the rows that fired, most frequent first
    undefined_fraction: float  # batches whose areas are all equal: S, K undefined
    skewness_median: float
    skewness_range95: tuple[float, float]  # 2.5 and 97.5 percentiles over batches
    kurtosis_median: float
    kurtosis_range95: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


@dataclass(frozen=True)
class BootstrapSummary:
    """Stability of the dataset-level pick under resampling the areas with replacement."""

    resamples: int
    branch_frequencies: dict[str, float]
    agreement: float  # share of resamples picking the dataset-level branch
    skewness_ci95: tuple[float, float]  # percentile interval
    kurtosis_ci95: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


@dataclass(frozen=True)
class AnalysisResult:
    """Everything ``calf analyze`` reports about a set of areas (or a fingerprint).

    Fields that need the individual areas (counts of empties, quantiles, batches,
    bootstrap) are None when the result comes from moments alone.
    """

    moments: AreaMoments
    selection: Selection
    n_measured: int | None = None  # areas measured, before excluding empties
    n_empty: int | None = None
    excluded_empty: bool | None = None
    quantiles: dict[str, float] | None = None
    batch: BatchSummary | None = None
    bootstrap: BootstrapSummary | None = None

    @property
    def n(self) -> int:
        """How many areas the statistics come from."""
        return self.moments.count

    @property
    def undefined_reason(self) -> str | None:
        """Why S and K are undefined (the pick is the rule's fallback, not a choice made
        from the data), or None when both are defined."""
        if not (math.isnan(self.skewness) or math.isnan(self.kurtosis)):
            return None
        if self.n < 2:
            return f"only {self.n} area: S and K need at least 2 different values"
        if not self.excluded_empty and self.n_empty == self.n:
            return f"all {self.n} masks are empty (area 0): no foreground of the chosen labels"
        mean = self.moments.mean
        return f"all {self.n} areas are equal ({mean:g}): S and K are undefined"

    @property
    def empty_fraction(self) -> float | None:
        if self.n_empty is None or not self.n_measured:
            return None
        return self.n_empty / self.n_measured

    @property
    def skewness(self) -> float:
        return self.selection.skewness

    @property
    def kurtosis(self) -> float:
        return self.selection.kurtosis

    @property
    def branch(self) -> str:
        return self.selection.branch

    @property
    def condition(self) -> str:
        return self.selection.condition

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN -> None); ``moments`` is the reusable fingerprint."""
        return json_safe(
            {
                "n": self.n,
                "n_measured": self.n_measured,
                "n_empty": self.n_empty,
                "empty_fraction": self.empty_fraction,
                "excluded_empty": self.excluded_empty,
                "mean": self.moments.mean if self.n else None,
                "std": math.sqrt(self.moments.variance) if self.n else None,
                "quantiles": self.quantiles,
                "skewness": self.skewness,
                "kurtosis": self.kurtosis,
                "branch": self.branch,
                "condition": self.condition,
                "batch_branch_frequencies": self.batch.branch_frequencies if self.batch else None,
                "batch": self.batch.to_dict() if self.batch else None,
                "bootstrap": self.bootstrap.to_dict() if self.bootstrap else None,
                "moments": self.moments.to_dict(),
            }
        )


def analyze_moments(
    moments: AreaMoments, thresholds: Thresholds | dict[str, float] | None = None
) -> AnalysisResult:
    """S, K and the rule's pick from moments alone (a fingerprint)."""
    selection = select_branch(
        moments.skewness(), moments.kurtosis(), thresholds, count=moments.count
    )
    return AnalysisResult(moments=moments, selection=selection)


def analyze_areas(
    areas: np.ndarray | Sequence[float],
    *,
    empty: np.ndarray | Sequence[bool] | None = None,
    exclude_empty: bool = False,
    batch_size: int | None = None,
    batches: int = 1000,
    bootstrap: int = 200,
    seed: int = 0,
    thresholds: Thresholds | dict[str, float] | None = None,
) -> AnalysisResult:
    """Summarise a set of areas and apply CALF's rule to it.

    Args:
        areas: one foreground area per mask (empty masks count, with area 0).
        empty: which masks have no foreground (default ``areas == 0``; pass it for contour
            areas, where a non-empty mask can have area 0).
        exclude_empty: drop empty masks before computing anything but the empty count.
        batch_size: if set, draw ``batches`` mini-batches of this size without replacement,
            compute S and K of each and apply the rule to each, as per-batch CALF does.
        bootstrap: number of resamples of the whole set with replacement (0: none).
        seed: seeds both the batches and the bootstrap (independent streams).
        thresholds: the rule's thresholds (default: the paper's).

    Raises:
        NoAreasError: no area to analyse (none given, or all empty with ``exclude_empty``).
        ValueError: non-finite areas, ``batch_size`` larger than the number of areas, or a
            count below its minimum.

    S and K are undefined (NaN) when every area is equal, e.g. all masks empty: the rule
    then falls back to ``bce_dice``; :attr:`AnalysisResult.undefined_reason` says why, for
    callers to warn (``calf analyze`` does, loudly).
    """
    values = np.asarray(areas, dtype=np.float64).ravel()
    if not np.isfinite(values).all():
        raise ValueError("areas must be finite")
    is_empty = values == 0 if empty is None else np.asarray(empty, dtype=bool).ravel()
    if is_empty.shape != values.shape:
        raise ValueError(f"empty has {is_empty.size} entries for {values.size} areas")
    if batches < 1 or bootstrap < 0 or (batch_size is not None and batch_size < 1):
        raise ValueError("batches and batch_size must be >= 1 and bootstrap >= 0")
    n_measured, n_empty = int(values.size), int(is_empty.sum())
    if n_measured == 0:
        raise NoAreasError("no areas to analyse (0 masks measured)")
    if exclude_empty:
        values = values[~is_empty]
        if values.size == 0:
            raise NoAreasError(
                f"no areas to analyse: all {n_measured} masks are empty and --exclude-empty "
                "leaves none; S and K are undefined (check --label, or drop --exclude-empty)"
            )
    if batch_size is not None and batch_size > values.size:
        raise ValueError(
            f"batch size {batch_size} is larger than the number of areas ({values.size})"
        )
    moments = AreaMoments.from_areas(values)
    selection = select_branch(
        moments.skewness(), moments.kurtosis(), thresholds, count=moments.count
    )
    batch_rng, boot_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    batch = None
    if batch_size is not None:
        batch = _batch_summary(values, batch_size, batches, batch_rng, thresholds)
    boot = None
    if bootstrap and values.size:
        boot = _bootstrap_summary(values, bootstrap, boot_rng, selection.branch, thresholds)
    return AnalysisResult(
        moments=moments,
        selection=selection,
        n_measured=n_measured,
        n_empty=n_empty,
        excluded_empty=exclude_empty,
        quantiles=_quantiles(values),
        batch=batch,
        bootstrap=boot,
    )


def _quantiles(values: np.ndarray) -> dict[str, float] | None:
    if values.size == 0:
        return None
    points = np.percentile(values, [q for _, q in QUANTILES])
    return {name: float(v) for (name, _), v in zip(QUANTILES, points, strict=True)}


def _batch_summary(
    values: np.ndarray,
    batch_size: int,
    batches: int,
    rng: np.random.Generator,
    thresholds: Thresholds | dict[str, float] | None,
) -> BatchSummary:
    skew, kurt = resampled_skew_kurt(values, batch_indices(rng, values.size, batch_size, batches))
    branches, conditions = _pick_frequencies(skew, kurt, thresholds)
    return BatchSummary(
        batch_size=batch_size,
        batches=batches,
        branch_frequencies=branches,
        condition_frequencies=conditions,
        undefined_fraction=float(np.isnan(skew).mean()),
        skewness_median=_nan_percentiles(skew, 50.0)[0],
        skewness_range95=_interval(skew),
        kurtosis_median=_nan_percentiles(kurt, 50.0)[0],
        kurtosis_range95=_interval(kurt),
    )


def _bootstrap_summary(
    values: np.ndarray,
    resamples: int,
    rng: np.random.Generator,
    branch: str,
    thresholds: Thresholds | dict[str, float] | None,
) -> BootstrapSummary:
    skew, kurt = resampled_skew_kurt(values, bootstrap_indices(rng, values.size, resamples))
    branches, _ = _pick_frequencies(skew, kurt, thresholds)
    return BootstrapSummary(
        resamples=resamples,
        branch_frequencies=branches,
        agreement=branches[branch],
        skewness_ci95=_interval(skew),
        kurtosis_ci95=_interval(kurt),
    )


def _pick_frequencies(
    skew: np.ndarray, kurt: np.ndarray, thresholds: Thresholds | dict[str, float] | None
) -> tuple[dict[str, float], dict[str, float]]:
    """Share of rows picking each branch (all six listed) and firing each condition."""
    table = Thresholds.coerce(thresholds)
    branch_counts: Counter[str] = Counter()
    condition_counts: Counter[str] = Counter()
    for s, k in zip(skew.tolist(), kurt.tolist(), strict=True):
        picked = select_branch(s, k, table)
        branch_counts[picked.branch] += 1
        condition_counts[f"{picked.branch}: {picked.condition}"] += 1
    total = max(len(skew), 1)
    branches = {b: branch_counts[b] / total for b in BRANCHES}
    conditions = {c: n / total for c, n in condition_counts.most_common()}
    return branches, conditions


def _nan_percentiles(x: np.ndarray, *q: float) -> tuple[float, ...]:
    finite = x[~np.isnan(x)]
    if finite.size == 0:
        return tuple(math.nan for _ in q)
    return tuple(float(v) for v in np.percentile(finite, q))


def _interval(x: np.ndarray) -> tuple[float, float]:
    lo, hi = _nan_percentiles(x, 2.5, 97.5)
    return lo, hi


# -- fingerprints and reports -------------------------------------------------------------


def load_fingerprint(path: str | os.PathLike[str]) -> AreaMoments:
    """The moments in a JSON file written by ``calf analyze --json`` (its ``moments``
    key) or by :meth:`AreaMoments.save`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FingerprintError(f"{path}: cannot read it as JSON ({err})") from err
    source = data.get("moments", data) if isinstance(data, dict) else None
    if not isinstance(source, dict):
        raise FingerprintError(f"{path}: not a fingerprint (expected a JSON object of moments)")
    try:
        return AreaMoments.from_dict(source)
    except (TypeError, ValueError) as err:
        raise FingerprintError(f"{path}: not a fingerprint ({err})") from err


def build_report(
    result: AnalysisResult,
    *,
    path: str | os.PathLike[str],
    scan: ScanResult | None = None,
    options: dict[str, Any] | None = None,
    cache: CacheAreas | None = None,
) -> dict[str, Any]:
    """The JSON document of ``calf analyze --json``: the result, the files (or the cache
    rows), the options."""
    source, unit = "fingerprint", None
    if scan is not None:
        source, unit = "masks", scan.unit
    elif cache is not None:
        source, unit = "cache", "slices"
    report: dict[str, Any] = {
        "format": ANALYSIS_FORMAT,
        "calfseg_version": __version__,
        "path": str(path),
        "source": source,
        "unit": unit,
    }
    report.update(result.to_dict())
    report["files"] = scan.to_dict() if scan is not None else None
    if cache is not None:
        report["cache"] = cache.to_dict()
    report["options"] = options or {}
    return json_safe(report)


def write_json(report: dict[str, Any], out: str | os.PathLike[str]) -> Path:
    """Write a report as strict JSON (NaN and inf become null)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n")
    return out


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` that strict JSON accepts: NaN/inf -> None, numpy -> Python,
    tuples -> lists, paths -> str."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj
