"""``calfseg.data.prepare``: the one call that prepares a slice cache, from Python, from
``calf prepare`` and from ``calf benchmark`` alike.

    from calfseg.data import prepare

    report = prepare("data/BraTS2021", "cache/brats", size=128, seed=1, workers=4)
    cache = report.open()                       # a SliceCache
    prepare(None, "cache/toy", synthetic="paper-like", cases=8, size=32)

It turns plain arguments into a :class:`~calfseg.data.preparation.source.PrepareSource`,
:class:`~calfseg.data.preprocess.PreprocessOptions` and
:class:`~calfseg.data.splits.options.SplitOptions`, then runs
:func:`~calfseg.data.preparation.pipeline.prepare_cache` (plan, execute, finish).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from calfseg.data.preparation.lesions import check_lesions, digest_or_none, notice_replaced
from calfseg.data.preparation.pipeline import (
    OnError,
    PrepareError,
    PrepareReport,
    prepare_cache,
)
from calfseg.data.preparation.source import (
    PrepareSource,
    folder_source,
    pooled_source,
    synthetic_source,
)
from calfseg.data.preprocess import PreprocessOptions
from calfseg.data.splits.options import SplitOptions
from calfseg.errors import DataValueError, OptionError

PathLike = str | os.PathLike[str]
DEFAULT_SIZE = 256  # the paper's slice side


class PrepareSettingsError(PrepareError, OptionError):
    """An option is not valid, whatever the files hold; the message names it (the CLI's
    usage errors, exit 2)."""


class SourceError(PrepareError, DataValueError):
    """The source folder is missing, or no reader can read it (no layout matches, several
    do, a reader refuses it); the message names the folder (exit 1: the files decide)."""


def prepare(
    source: PathLike | Sequence[PathLike] | PrepareSource | None,
    out: PathLike,
    *,
    synthetic: str | None = None,
    cases: int | None = None,
    slices: int | None = None,
    layout: str = "auto",
    manifest: PathLike | None = None,
    label_source: str | None = None,
    options: PreprocessOptions | None = None,
    splits: SplitOptions | None = None,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    on_error: OnError = "stop",
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    **fields: Any,
) -> PrepareReport:
    """Prepare a dataset into the slice cache folder ``out``; returns what the run did
    (:class:`PrepareReport`; ``report.open()`` gives the :class:`SliceCache`).

    Resumable and idempotent: finished cases are kept, and a rerun with the same options
    on unchanged files does nothing (docs/prepare.md).

    Args:
        source: a dataset folder, several folders (pooled into one cache), a
            ``PrepareSource``, or None with ``synthetic``.
        out: the cache folder (new, empty, or a cache made by an earlier run).
        synthetic: a :data:`~calfseg.data.sources.synthetic.SYNTHETIC_PRESETS` name: write
            generated cases instead of a folder (``cases``, ``slices`` per case and ``size``
            override the preset's; ``seed`` seeds the generator as well as the split).
        layout, manifest, label_source: how to read a folder (``layout="auto"`` detects it;
            several folders: ``auto`` or one layout per folder, comma-separated).
        options: the preprocessing, a :class:`PreprocessOptions`; or its fields as keywords.
        splits: the split, a :class:`SplitOptions`; or its fields as keywords (``split``
            names its ``mode``, as ``--split`` does).
        workers: cases prepared in parallel processes.
        shard: ``(K, N)``: prepare only the K-th of N shares of the cases (then
            :func:`~calfseg.data.preparation.pipeline.merge_cache`); no cache is assembled.
        on_error: ``"stop"`` at the first unreadable case, or ``"skip"`` it (listed in the
            report and in meta.json).
        overwrite: replace a cache in ``out`` made from another source or with other options.
        progress: a progress bar on stderr.
        log: called with one line saying which source (layout) was opened.
        **fields: fields of :class:`PreprocessOptions` (``size`` (default 256, or the
            synthetic preset's), ``modalities``, ``stack``, ``labels``, ``normalise``, ...)
            and of :class:`SplitOptions` (``split``, ``val``, ``test``, ``seed``, ``kfold``,
            ``fold``), declared once there.

    Raises:
        PrepareSettingsError: an unknown layout, preset or option, a bad option value, or a
            source that cannot be opened.
        PrepareError: see :func:`~calfseg.data.preparation.pipeline.prepare_cache`.
        NoLesionError: no slice of the finished cache has a lesion (the cache is written;
            :mod:`~calfseg.data.preparation.lesions`).

    Warns:
        NoTrainLesionWarning: the train split of the finished cache has no lesion.
        CacheReplacedWarning: the cache in ``out`` was replaced by one with another digest.
    """
    preprocessing, split_fields = _route(fields)
    if options is None:
        options = _preprocess_options(synthetic, preprocessing)
    elif preprocessing:
        raise PrepareSettingsError("give either options=PreprocessOptions(...) or its fields")
    if splits is None:
        try:
            splits = SplitOptions(**split_fields)
        except OptionError as err:
            raise PrepareSettingsError(str(err)) from err
    elif split_fields:
        raise PrepareSettingsError("give either splits=SplitOptions(...) or its fields")
    prepare_source, note = open_prepare_source(
        source,
        synthetic=synthetic,
        cases=cases,
        slices=slices,
        seed=splits.seed,
        size=options.size,
        layout=layout,
        manifest=manifest,
        label_source=label_source,
    )
    if log is not None:
        log(note)
    before = digest_or_none(Path(out))
    report = prepare_cache(
        prepare_source,
        out,
        options,
        splits,
        workers=workers,
        shard=shard,
        on_error=on_error,
        progress=progress,
        overwrite=overwrite,
    )
    if report.status != "shard-done":  # a finished cache: what it must hold to train on
        notice_replaced(report.cache, before)
        roots = [] if isinstance(source, PrepareSource) else _roots(source)
        check_lesions(report, roots[0] if roots else None, options.labels)
    return report


def _route(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keywords -> (PreprocessOptions fields, SplitOptions fields); ``split`` is ``mode``."""
    names = {f.name for f in dataclasses.fields(SplitOptions)}
    given = {("mode" if k == "split" else k): v for k, v in fields.items()}
    preprocessing = {f.name for f in dataclasses.fields(PreprocessOptions)}
    unknown = sorted(set(given) - names - preprocessing)
    if unknown:
        valid = [*preprocessing, *(("split" if n == "mode" else n) for n in names)]
        raise PrepareSettingsError(
            f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
        )
    split_fields = {k: v for k, v in given.items() if k in names}
    return {k: v for k, v in given.items() if k not in names}, split_fields


def _preprocess_options(synthetic: str | None, fields: dict[str, Any]) -> PreprocessOptions:
    """:class:`PreprocessOptions` of ``fields``; ``size`` defaults to 256, or to the
    synthetic preset's size. PrepareSettingsError names a bad value."""
    size = fields.pop("size", None)
    if size is None:
        size = DEFAULT_SIZE if synthetic is None else _preset_size(synthetic)
    try:
        return PreprocessOptions(size=size, **fields)
    except ValueError as err:
        raise PrepareSettingsError(str(err)) from err


def open_prepare_source(
    source: PathLike | Sequence[PathLike] | PrepareSource | None,
    *,
    synthetic: str | None = None,
    cases: int | None = None,
    slices: int | None = None,
    seed: int = 0,
    size: int | None = None,
    layout: str = "auto",
    manifest: PathLike | None = None,
    label_source: str | None = None,
) -> tuple[PrepareSource, str]:
    """The :class:`PrepareSource` that :func:`prepare` reads, and a line saying what it is.

    Raises:
        PrepareSettingsError: both or neither of ``source`` and ``synthetic``, an unknown
            preset or layout.
        SourceError: a missing folder, or a folder no reader can read.
    """
    if isinstance(source, PrepareSource):
        if synthetic is not None:
            raise PrepareSettingsError("give either a source or synthetic=PRESET, not both")
        return source, f"source: {source.describe()}"
    roots = _roots(source)
    if bool(roots) == (synthetic is not None):
        raise PrepareSettingsError("give either a source folder or synthetic=PRESET")
    if synthetic is not None:
        _check_preset(synthetic)
        generated = synthetic_source(synthetic, cases=cases, slices=slices, seed=seed, size=size)
        return generated, f"synthetic preset {synthetic} (seed {seed})"
    for flag, value in (("cases", cases), ("slices", slices)):
        if value is not None:
            raise PrepareSettingsError(f"{flag} applies to synthetic sources only")
    missing = [str(root) for root in roots if not root.is_dir()]
    if missing:
        raise SourceError(f"no such folder: {', '.join(missing)}")
    reader_options: dict[str, Any] = {}
    if manifest is not None:
        reader_options["manifest"] = Path(manifest)
    if label_source is not None:
        reader_options["labels"] = label_source
    try:
        if len(roots) > 1:
            return pooled_source(roots, layout, **reader_options)
        return folder_source(roots[0], layout, **reader_options)
    except OptionError as err:  # a bad option (an unknown --layout): the call is wrong
        raise PrepareSettingsError(f"{' '.join(map(str, roots))}: {err}") from err
    except (ValueError, TypeError, OSError) as err:  # the folder's files decide
        raise SourceError(f"{' '.join(map(str, roots))}: {err}") from err


def _roots(source: PathLike | Sequence[PathLike] | None) -> list[Path]:
    if source is None:
        return []
    if isinstance(source, (str, os.PathLike)):
        return [Path(source)]
    return [Path(s) for s in source]


def _check_preset(name: str) -> None:
    from calfseg.data.sources.synthetic import SYNTHETIC_PRESETS

    if name not in SYNTHETIC_PRESETS:
        known = ", ".join(sorted(SYNTHETIC_PRESETS))
        raise PrepareSettingsError(f"unknown synthetic preset {name!r}; known: {known}")


def _preset_size(name: str) -> int:
    from calfseg.data.sources.synthetic import SYNTHETIC_PRESETS

    _check_preset(name)
    return int(SYNTHETIC_PRESETS[name].params.size)
