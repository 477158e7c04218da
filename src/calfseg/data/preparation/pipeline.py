"""``calf prepare`` as a library: source cases -> preprocessed parts -> one slice cache.

- :func:`prepare_cache`: prepare every case of a source (or one shard of them) and, without
  a shard, assemble the cache. Resumable: a case whose part (or whose rows in the previous
  cache) was made with the same options from unchanged files is not read again. A rerun
  with the same options on unchanged sources does nothing.
- :func:`merge_cache`: assemble a cache from the parts of finished shards.

Cases are identified by (dataset, case id) and ordered by case id. Change detection looks
at each source file's size and mtime (:mod:`calfseg.data.preparation.file_state`); the
sha256 recorded
in meta.json is computed once, when the case is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from calfseg.data.cache import (
    CACHE_FORMAT,
    IMAGES_FILE,
    INDEX_FILE,
    MASKS_FILE,
    PARTS_DIR,
    SliceCache,
    is_cache,
    read_meta,
)
from calfseg.data.preparation.case_worker import CaseJob, CaseTask, run_cases
from calfseg.data.preparation.file_state import FileState, same_files, stat_files
from calfseg.data.preparation.parts import (
    CaseRecord,
    SkipRecord,
    load_part_arrays,
    part_is_current,
    read_part_record,
    read_shard_markers,
    read_skip,
    remove_parts,
    write_shard_marker,
    write_skip,
)
from calfseg.data.preparation.source import PrepareSource, source_files
from calfseg.data.preparation.writer import CaseRows, assemble_cache
from calfseg.data.preprocess import PreprocessOptions
from calfseg.data.sources.base import CaseFiles
from calfseg.data.splits.options import SplitOptions
from calfseg.errors import DataError, check_choice
from calfseg.shards import check_shard, shard_items
from calfseg.writer_lock import is_lock_file, writing

OnError = Literal["stop", "skip"]
_ARRAY_FILES = (IMAGES_FILE, MASKS_FILE, INDEX_FILE)
CaseKey = tuple[str, str]  # (dataset, case_id)


class PrepareError(DataError):
    """``calf prepare`` cannot go on; the message says why and what to do."""


class CaseFailedError(PrepareError):
    """A case could not be read under ``on_error="stop"``; the message names case and file."""


class CacheReplaceError(PrepareError):
    """``--out`` holds a finished cache made with other settings; replacing it needs
    ``overwrite`` (the message names what differs)."""

    def __init__(self, message: str, differences: Sequence[str]) -> None:
        super().__init__(message)
        self.differences = list(differences)


class MissingPartsError(PrepareError):
    """Assembly needs parts that are not there (unfinished shards or cases)."""

    def __init__(self, message: str, missing: Sequence[str]) -> None:
        super().__init__(message)
        self.missing = list(missing)


@dataclass(frozen=True)
class SkippedCase:
    case_id: str
    dataset: str
    reason: str


@dataclass
class PrepareReport:
    """What a run did. ``status``: ``"written"`` (a new cache), ``"reindexed"`` (same arrays,
    new splits), ``"up-to-date"`` (nothing to do) or ``"shard-done"``."""

    status: str
    cache: Path
    cases: int  # cases this run was responsible for (all, or the shard's)
    processed: int = 0  # read and preprocessed now
    reused: int = 0  # taken from parts or from the previous cache
    skipped: list[SkippedCase] = field(default_factory=list)
    n_slices: int | None = None
    seconds: float = 0.0
    shard: tuple[int, int] | None = None
    meta: dict[str, Any] | None = None

    def open(self) -> SliceCache:
        """The finished cache (:class:`CacheError` after a shard run: nothing is assembled
        until ``merge_cache``)."""
        return SliceCache.open(self.cache)


def options_key(identity: dict[str, Any], options: PreprocessOptions) -> str:
    """A short hash of everything that determines a case's rows."""
    text = json.dumps(
        {"format": CACHE_FORMAT, "source": identity, "options": options.to_dict()},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shard_cases(cases: Sequence[CaseFiles], shard: int, shards: int) -> list[CaseFiles]:
    """The ``shard``-th (1-based) of ``shards`` disjoint, round-robin shares of the cases."""
    return shard_items(cases, (shard, shards))


def prepare_cache(
    source: PrepareSource,
    cache: str | os.PathLike[str],
    options: PreprocessOptions,
    splits: SplitOptions | None = None,
    *,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    on_error: OnError = "stop",
    progress: bool = False,
    overwrite: bool = False,
) -> PrepareReport:
    """Prepare ``source`` into the cache folder ``cache`` (see the module docstring).

    Three stages: :func:`plan_run` (list the cases, decide which are done), :func:`execute`
    (read and preprocess the others into parts) and :func:`finish` (write the shard marker,
    or assemble the cache). :func:`calfseg.data.prepare` is the friendlier front door.

    ``overwrite``: replace a finished cache at ``cache`` that was made from another source
    or with other preprocessing or split options (without it: :class:`CacheReplaceError`).
    An identical rerun, a resumed one and one over changed source files need no overwrite.

    Raises:
        CaseFailedError: a case failed under ``on_error="stop"`` (finished parts stay).
        CacheReplaceError: a cache of other settings is there and ``overwrite`` is False.
        PrepareError: no cases, a target folder that is not a cache, every case skipped.
        FolderBusyError: another process is preparing into ``cache`` (the same shard).
    """
    start = time.perf_counter()
    if shard is not None:
        check_shard(shard)  # before the lock file: a bad shard makes no folder
    check_target(Path(cache))  # and a foreign folder gets nothing
    with writing(cache, "calf prepare", shard=shard):
        plan = plan_run(
            source, Path(cache), options, splits or SplitOptions(), shard, on_error, overwrite
        )
        if plan.up_to_date:
            return _up_to_date_report(plan, start)
        processed, failed = execute(plan, workers=workers, progress=progress)
        return finish(plan, processed, failed, start)


@dataclass
class PreparePlan:
    """What a run of :func:`prepare_cache` is about to do, decided before any case is read.

    ``cases`` are all the source's cases (in cache order), ``mine`` those of this run (its
    shard, or all); of these, ``jobs`` still need reading, ``reused`` have a current part
    or rows in the previous cache, and ``skipped`` failed before with the same options and
    files (under ``on_error="skip"``)."""

    out: Path
    source: PrepareSource
    options: PreprocessOptions
    settings: dict[str, Any]
    cases: list[CaseFiles]
    states: dict[CaseKey, tuple[FileState, ...]]
    previous: dict[str, Any] | None
    shard: tuple[int, int] | None
    on_error: OnError
    up_to_date: bool = False
    mine: list[CaseFiles] = field(default_factory=list)
    jobs: list[CaseJob] = field(default_factory=list)
    reused: int = 0
    skipped: list[SkippedCase] = field(default_factory=list)

    @property
    def key(self) -> str:
        return str(self.settings["options_key"])


def plan_run(
    source: PrepareSource,
    out: Path,
    options: PreprocessOptions,
    splits: SplitOptions,
    shard: tuple[int, int] | None,
    on_error: OnError,
    overwrite: bool,
) -> PreparePlan:
    """Check the target and the settings, list the cases and sort them into done and to do
    (nothing is written)."""
    check_choice("on_error", on_error, get_args(OnError))
    if shard is not None:
        check_shard(shard)
    check_target(out)
    try:
        cases = source.find_cases()
    except (OSError, ValueError) as err:
        raise PrepareError(f"cannot list the cases of {source.describe()}: {err}") from err
    if not cases:
        raise PrepareError(f"no cases found in {source.describe()}")
    _check_kfold(splits, cases, source.describe())
    states = {_key(c): stat_files(source_files(c), source.root) for c in cases}
    settings = _settings(source.identity, options, splits, options_key(source.identity, options))
    previous = read_meta(out)
    if previous is not None and not overwrite:
        _refuse_other_settings(out, previous, settings)
    if previous is not None and not all((out / f).is_file() for f in _ARRAY_FILES):
        previous = None  # a damaged cache: rebuild it
    plan = PreparePlan(out, source, options, settings, cases, states, previous, shard, on_error)
    if shard is None and _up_to_date(previous, settings, states, on_error):
        plan.up_to_date = True
        return plan
    plan.mine = shard_items(cases, shard)
    old = _previous_cases(previous, plan.key)
    for case in plan.mine:
        files = states[_key(case)]
        if part_is_current(read_part_record(out, case.dataset, case.case_id), plan.key, files):
            plan.reused += 1
        elif _old_case_current(old.get(_key(case)), files):
            plan.reused += 1
        elif on_error == "skip" and _skip_current(out, case, plan.key, files):
            record = read_skip(out, case.dataset, case.case_id)
            assert record is not None
            plan.skipped.append(SkippedCase(case.case_id, case.dataset, record.reason))
        else:
            plan.jobs.append(CaseJob(case, files))
    return plan


def execute(
    plan: PreparePlan, *, workers: int = 1, progress: bool = False
) -> tuple[int, list[SkippedCase]]:
    """Read and preprocess the plan's jobs into parts; returns how many were processed and
    the cases that failed now (recorded as skip records under ``on_error="skip"``).

    Raises:
        CaseFailedError: the first failed case under ``on_error="stop"``.
    """
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    (out / PARTS_DIR).mkdir(exist_ok=True)
    task = CaseTask(plan.source.reader, plan.source.root, plan.options, plan.key, out)
    jobs = {_key(j.case): j for j in plan.jobs}
    processed, failed = 0, []
    for outcome in run_cases(
        task, plan.jobs, workers=workers, stop_on_error=plan.on_error == "stop", progress=progress
    ):
        if outcome.ok:
            processed += 1
            continue
        if plan.on_error == "stop":
            raise CaseFailedError(str(outcome.error))
        job = jobs[(outcome.dataset, outcome.case_id)]
        reason = str(outcome.reason)
        write_skip(out, SkipRecord(outcome.case_id, outcome.dataset, plan.key, reason, job.files))
        failed.append(SkippedCase(outcome.case_id, outcome.dataset, reason))
    return processed, failed


def finish(
    plan: PreparePlan, processed: int, failed: Sequence[SkippedCase], start: float
) -> PrepareReport:
    """A shard: write its marker. Otherwise: assemble the cache and remove the parts."""
    skipped = sorted([*plan.skipped, *failed], key=lambda s: (s.case_id, s.dataset))
    report = PrepareReport(
        "shard-done", plan.out, len(plan.mine), processed, plan.reused, skipped, shard=plan.shard
    )
    if plan.shard is not None:
        marker = {**plan.settings, "cases": [[c.dataset, c.case_id] for c in plan.mine]}
        write_shard_marker(plan.out, plan.shard[0], plan.shard[1], marker)
    else:
        order = [_key(c) for c in plan.cases]
        report.meta, report.status = _assemble(
            plan.out, plan.settings, order, plan.states, plan.previous, skipped
        )
        report.n_slices = report.meta["n_slices"]
        remove_parts(plan.out)
    report.seconds = time.perf_counter() - start
    return report


def _up_to_date_report(plan: PreparePlan, start: float) -> PrepareReport:
    previous = plan.previous
    assert previous is not None
    return PrepareReport(
        "up-to-date",
        plan.out,
        len(plan.cases),
        reused=len(previous["cases"]),
        skipped=[_skipped_from_meta(s) for s in previous.get("skipped", [])],
        n_slices=previous["n_slices"],
        seconds=time.perf_counter() - start,
        meta=previous,
    )


def merge_cache(cache: str | os.PathLike[str]) -> PrepareReport:
    """Assemble the cache from the parts of every shard of an earlier ``--shard K/N`` run.

    Raises:
        MissingPartsError: a shard has not finished (its marker is missing) or a part of a
            finished shard has gone.
        PrepareError: no shard was prepared, or shards disagree on options.
        FolderBusyError: another process is merging into ``cache``.
    """
    out = Path(cache)
    if not out.is_dir():
        return _merge_cache(out)  # nothing to merge: said there, no folder made for a lock
    with writing(out, "calf prepare --merge"):
        return _merge_cache(out)


def _merge_cache(out: Path) -> PrepareReport:
    start = time.perf_counter()
    markers = list(read_shard_markers(out))
    if not markers:
        raise PrepareError(
            f"{out}: no finished shard to merge (no {PARTS_DIR}/shard-K-of-N.json); run "
            f"'calf prepare SRC --out {out} --shard K/N' for every K first"
        )
    counts = {n for _, n, _ in markers}
    if len(counts) > 1:
        raise PrepareError(f"{out}: shards of different counts N ({sorted(counts)}); redo them")
    total = counts.pop()
    _, _, reference = markers[0]
    settings = {k: reference[k] for k in ("source", "options", "splits", "options_key")}
    for k, _, marker in markers:
        if any(marker.get(name) != value for name, value in settings.items()):
            raise PrepareError(
                f"{out}: shard {k}/{total} was prepared with other options or another source "
                f"than shard {markers[0][0]}/{total}; rerun it with the same options"
            )
    done = {k for k, _, _ in markers}
    missing = [f"shard {k}/{total}" for k in range(1, total + 1) if k not in done]
    if missing:
        raise MissingPartsError(
            f"{out}: not every shard has finished: {', '.join(missing)}", missing
        )
    order = sorted(
        {(d, c) for _, _, m in markers for d, c in m["cases"]}, key=lambda dc: (dc[1], dc[0])
    )
    skipped = []
    for dataset, case_id in order:
        record = read_skip(out, dataset, case_id)
        has_part = read_part_record(out, dataset, case_id) is not None
        if record is not None and record.key == settings["options_key"] and not has_part:
            skipped.append(SkippedCase(case_id, dataset, record.reason))
    meta, status = _assemble(out, settings, order, None, read_meta(out), skipped)
    remove_parts(out)
    return PrepareReport(
        status,
        out,
        len(order),
        reused=len(order) - len(skipped),
        skipped=skipped,
        n_slices=meta["n_slices"],
        seconds=time.perf_counter() - start,
        meta=meta,
    )


def check_target(out: Path) -> None:
    """Refuse to write into a file, or into a folder holding anything but a calfseg cache."""
    if out.exists() and not out.is_dir():
        raise PrepareError(f"{out} is a file; --out must be a folder")
    if out.is_dir() and any(not is_lock_file(p) for p in out.iterdir()):
        if not is_cache(out):
            raise PrepareError(
                f"{out} is a folder that holds other files, not a calfseg cache; "
                "choose a new or empty folder"
            )


# -- internals ----------------------------------------------------------------------------


def _check_kfold(splits: SplitOptions, cases: Sequence[CaseFiles], where: str) -> None:
    """K folds need K patients: said before any case is read (splits group by patient)."""
    patients = len({(c.dataset, c.patient) for c in cases})
    if splits.kfold is not None and splits.kfold > patients:
        raise PrepareError(
            f"--kfold {splits.kfold} needs at least {splits.kfold} patients, but "
            f"{where} has {patients}; the largest K possible is {patients}"
        )


def settings_differences(meta: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """What a finished cache's meta.json records differently from ``settings`` (source,
    preprocessing options, splits), one ``"name old -> new"`` phrase per option."""
    plain = json.loads(json.dumps(settings))  # tuples -> lists, as meta.json holds them
    found = []
    for section in ("source", "options", "splits"):
        old, new = meta.get(section), plain.get(section)
        if old == new:
            continue
        if not (isinstance(old, dict) and isinstance(new, dict)):
            found.append(f"{section} {_brief(old)} -> {_brief(new)}")
            continue
        for name in [*old, *(k for k in new if k not in old)]:
            if old.get(name) != new.get(name):
                label = name if section != "source" else f"source {name}"
                found.append(f"{label} {_brief(old.get(name))} -> {_brief(new.get(name))}")
    return found


def _refuse_other_settings(out: Path, meta: dict[str, Any], settings: dict[str, Any]) -> None:
    differences = settings_differences(meta, settings)
    if differences:
        raise CacheReplaceError(
            f"{out} holds a cache made with other settings ({'; '.join(differences)}); "
            "replacing it would change what runs and checkpoints trained on it read: pass "
            "--overwrite to replace it, or choose another --out",
            differences,
        )


def _brief(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _key(case: CaseFiles) -> CaseKey:
    return (case.dataset, case.case_id)


def _settings(
    identity: dict[str, Any], options: PreprocessOptions, splits: SplitOptions, key: str
) -> dict[str, Any]:
    """What meta.json and shard markers record about how the cache is made."""
    return {
        "source": identity,
        "options": options.to_dict(),
        "splits": splits.to_meta(),
        "options_key": key,
    }


def _same_settings(meta: dict[str, Any], settings: dict[str, Any]) -> bool:
    # JSON round trip: tuples become lists, so compare what meta.json would hold.
    plain = json.loads(json.dumps(settings))
    return all(meta.get(name) == value for name, value in plain.items())


def _up_to_date(
    previous: dict[str, Any] | None,
    settings: dict[str, Any],
    states: dict[CaseKey, tuple[FileState, ...]],
    on_error: str,
) -> bool:
    if previous is None or not _same_settings(previous, settings):
        return False
    if on_error == "stop" and previous.get("skipped"):
        return False  # retry the skipped cases: under "stop" their error must surface
    recorded = {
        (e["dataset"], e["case_id"]): [FileState.from_dict(f) for f in e["files"]]
        for e in [*previous["cases"], *previous.get("skipped", [])]
    }
    if set(recorded) != set(states):
        return False
    return all(same_files(recorded[k], states[k]) for k in states)


def _previous_cases(previous: dict[str, Any] | None, key: str) -> dict[CaseKey, dict[str, Any]]:
    """The previous cache's case entries, when they were made with the same options."""
    if previous is None or previous.get("options_key") != key:
        return {}
    return {(e["dataset"], e["case_id"]): e for e in previous["cases"]}


def _old_case_current(entry: dict[str, Any] | None, files: Sequence[FileState]) -> bool:
    return entry is not None and same_files([FileState.from_dict(f) for f in entry["files"]], files)


def _skip_current(out: Path, case: CaseFiles, key: str, files: Sequence[FileState]) -> bool:
    record = read_skip(out, case.dataset, case.case_id)
    return record is not None and record.key == key and same_files(record.files, files)


def _skipped_from_meta(entry: dict[str, Any]) -> SkippedCase:
    return SkippedCase(entry["case_id"], entry.get("dataset", ""), entry["reason"])


def _assemble(
    out: Path,
    settings: dict[str, Any],
    order: Sequence[CaseKey],
    states: dict[CaseKey, tuple[FileState, ...]] | None,
    previous: dict[str, Any] | None,
    skipped: Sequence[SkippedCase],
) -> tuple[dict[str, Any], str]:
    """Gather every case's rows (part, else previous cache) and write the cache."""
    key = settings["options_key"]
    left_out = {(s.dataset, s.case_id) for s in skipped}
    old_entries = _previous_cases(previous, key)
    old_cache = SliceCache.open(out) if old_entries else None
    rows: list[CaseRows] = []
    from_old: list[bool] = []
    missing = []
    for case_key in order:
        if case_key in left_out:
            continue
        dataset, case_id = case_key
        files = None if states is None else states[case_key]
        record = read_part_record(out, dataset, case_id)
        if part_is_current(record, key, files):
            assert record is not None
            rows.append(CaseRows(record, *load_part_arrays(out, record)))
            from_old.append(False)
        elif (
            old_cache is not None
            and case_key in old_entries
            and (files is None or _old_case_current(old_entries[case_key], files))
        ):
            rows.append(_rows_from_cache(old_cache, old_entries[case_key], key))
            from_old.append(True)
        else:
            missing.append(case_id)
    if missing:
        raise MissingPartsError(
            f"{out}: {len(missing)} case(s) have no finished part: {', '.join(missing[:20])}"
            + (" ..." if len(missing) > 20 else ""),
            missing,
        )
    if not rows:
        raise PrepareError("every case was skipped: nothing to write")
    # Splits group rows by patient: the cases (time points) of one patient stay together.
    patients = np.repeat([r.record.patient for r in rows], [r.record.n_rows for r in rows])
    datasets = np.repeat([r.record.dataset for r in rows], [r.record.n_rows for r in rows])
    split = SplitOptions(**_split_arguments(settings["splits"])).assign(patients, datasets)
    options = PreprocessOptions.from_dict(settings["options"])
    meta = {
        "channels": list(options.channels),
        "size": [options.size, options.size],
        "image_dtype": options.image_dtype,
        **json.loads(json.dumps(settings)),
        "skipped": [
            {
                "case_id": s.case_id,
                "dataset": s.dataset,
                "reason": s.reason,
                "files": _skip_files(out, s, states),
            }
            for s in skipped
        ],
    }
    unchanged = (
        old_cache is not None
        and all(from_old)
        and [r.record.case_id for r in rows] == [e["case_id"] for e in previous["cases"]]  # type: ignore[index]
    )
    written = assemble_cache(out, rows, split, meta, arrays_unchanged=unchanged)
    return written, "reindexed" if unchanged else "written"


def _rows_from_cache(cache: SliceCache, entry: dict[str, Any], key: str) -> CaseRows:
    start, stop = entry["rows"]
    index = cache.index
    record = CaseRecord(
        case_id=entry["case_id"],
        dataset=entry["dataset"],
        key=key,
        files=tuple(FileState.from_dict(f) for f in entry["files"]),
        spacing=tuple(float(v) for v in entry["spacing"]),
        pixel_spacing=(float(entry["pixel_spacing"][0]), float(entry["pixel_spacing"][1])),
        label_source=entry.get("label_source"),
        modality=tuple(index["modality"][start:stop].tolist()),
        slice_index=tuple(index["slice_index"][start:stop].tolist()),
        area=tuple(index["area"][start:stop].tolist()),
        patient_id=str(entry.get("patient_id") or entry["case_id"]),
    )
    return CaseRows(record, cache.images[start:stop], cache.masks[start:stop])


def _split_arguments(meta: dict[str, Any]) -> dict[str, Any]:
    """SplitOptions arguments back from meta.json's ``splits``."""
    kfold = meta.get("kfold")
    if kfold:
        return {
            "mode": meta["mode"],
            "seed": meta["seed"],
            "kfold": kfold["k"],
            "fold": kfold["fold"],
            "val": kfold["val_fraction"],
        }
    fractions = meta["fractions"]
    return {
        "mode": meta["mode"],
        "seed": meta["seed"],
        "val": fractions["val"],
        "test": fractions["test"],
    }


def _skip_files(
    out: Path, skipped: SkippedCase, states: dict[CaseKey, tuple[FileState, ...]] | None
) -> list[dict[str, Any]]:
    if states is not None:
        files: Sequence[FileState] = states[(skipped.dataset, skipped.case_id)]
    else:
        record = read_skip(out, skipped.dataset, skipped.case_id)
        files = record.files if record is not None else ()
    return [f.to_dict() for f in files]
