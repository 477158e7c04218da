"""Read the finished run folders of a benchmark into one table, and write it as CSV.

``OUT/results.csv`` has one row per run and metric (run, model, loss, seed, metric,
reduction, group, value); ``OUT/per_image.csv`` keeps the per-image test scores of every
run (run, model, loss, seed, then the columns of ``per_image_test.csv``);
``OUT/per_case.csv`` the per-case test counts and Dice of every run (run, model, loss,
seed, fold, then the columns of ``per_case_test.csv``), the unit of the verdicts. Only runs
with a ``done.json`` are read; runs with a ``failed.json`` are listed as failed, and run
folders with neither (interrupted) as unfinished. A finished run without a readable
``per_case_test.csv`` is an error naming the file: its cases would silently drop out of the
verdicts.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import calfseg.run_files as files
from calfseg.atomic import atomic_text
from calfseg.bench.errors import BenchmarkError
from calfseg.bench.grid import RUNS_FOLDER
from calfseg.errors import DataValueError

RESULTS_CSV = "results.csv"
PER_IMAGE_CSV = "per_image.csv"
PER_CASE_CSV = "per_case.csv"
RESULT_COLUMNS = ("run", "model", "loss", "seed", "metric", "reduction", "group", "value")
RUN_COLUMNS = ("run", "model", "loss", "seed")
PER_CASE_RUN_COLUMNS = ("run", "model", "loss", "seed", "fold")
TEXT_COLUMNS = ("case_id",)  # kept as text: "007" must not become 7
_FOLD_SUFFIX = re.compile(r"-f(\d+)$")  # "{model}-{loss}-s{seed}-f{fold}" under --folds


@dataclass(frozen=True)
class RunInfo:
    """A finished run: its name, grid coordinates (``fold`` None without cross-validation)
    and folder, its options (config.json), its provenance record
    (:mod:`calfseg.train.provenance`; None for runs of an older calf-seg, which recorded
    none) and its ``done.json``."""

    name: str
    model: str
    loss: str
    seed: int
    folder: Path
    config: dict[str, Any] = field(default_factory=dict, compare=False)
    provenance: dict[str, Any] | None = field(default=None, compare=False)
    fold: int | None = None
    done: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ResultRow:
    """One number of ``eval_test.json``: ``metric/reduction[/group]`` split up."""

    run: str
    model: str
    loss: str
    seed: int
    metric: str
    reduction: str
    group: str
    value: float | None


@dataclass
class ResultsTable:
    """Everything the statistics and the report read, gathered from the run folders.

    Attributes:
        runs: the finished runs, in folder-name order.
        rows: one :class:`ResultRow` per run and numeric result.
        per_image: per run name, the rows of ``per_image_test.csv`` (numbers or None).
        per_case: per run name, the rows of ``per_case_test.csv`` (case_id as text).
        logs: per run name, the rows of ``log.csv`` (numbers or None).
        failed: per failed run name, its error text.
        unfinished: the run folders with neither ``done.json`` nor ``failed.json`` (a run
            interrupted, or still training elsewhere).
    """

    runs: list[RunInfo] = field(default_factory=list)
    rows: list[ResultRow] = field(default_factory=list)
    per_image: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    per_case: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        """The models, in :data:`calfseg.models.MODELS` order, unknown names last."""
        from calfseg.models import MODELS

        return _ordered(_unique(r.model for r in self.runs), MODELS)

    @property
    def losses(self) -> list[str]:
        """The losses, in registry order (CALF first), unknown names last."""
        from calfseg.losses.registry import list_losses

        return _ordered(_unique(r.loss for r in self.runs), list_losses())

    @property
    def seeds(self) -> list[int]:
        return sorted({r.seed for r in self.runs})

    @property
    def folds(self) -> list[int | None]:
        """The folds of the runs, ``[None]`` without cross-validation."""
        return sorted({r.fold for r in self.runs}, key=lambda f: -1 if f is None else f)

    def run(self, model: str, loss: str, seed: int, fold: int | None = None) -> RunInfo | None:
        """The run of these grid coordinates; without ``fold``, the first fold's."""
        for info in self.runs:
            if (info.model, info.loss, info.seed) == (model, loss, seed) and (
                fold is None or info.fold == fold
            ):
                return info
        return None


def collect_results(
    out: str | Path, *, write: bool = True, only: Collection[str] | None = None
) -> ResultsTable:
    """Read every finished run under ``OUT/runs`` (or only the run names in ``only``) and
    (by default) write results.csv, per_image.csv and per_case.csv."""
    out = Path(out)
    table = ResultsTable()
    folders = sorted(
        p for p in (out / RUNS_FOLDER).glob("*") if p.is_dir() and (only is None or p.name in only)
    )
    for folder in folders:
        if (folder / files.DONE).is_file():
            _read_run(folder, table)
        elif (folder / files.FAILED).is_file():
            table.failed[folder.name] = _failure(folder / files.FAILED)
        else:
            table.unfinished.append(folder.name)
    if write:
        _write_results(out / RESULTS_CSV, table)
        _write_per_image(out / PER_IMAGE_CSV, table)
        _write_per_case(out / PER_CASE_CSV, table)
    return table


def split_key(key: str) -> tuple[str, str, str]:
    """``"dice/per_image/small"`` -> ``("dice", "per_image", "small")``; count keys keep
    their prefix in the metric: ``"n_undefined/dice/pooled"`` -> ``("n_undefined/dice",
    "pooled", "")``; ``"n_images"`` -> ``("n_images", "", "")``."""
    parts = key.split("/")
    if parts[0].startswith("n_") and len(parts) > 1:
        parts = [f"{parts[0]}/{parts[1]}", *parts[2:]]
    metric = parts[0]
    reduction = parts[1] if len(parts) > 1 else ""
    return metric, reduction, "/".join(parts[2:])


def _read_run(folder: Path, table: ResultsTable) -> None:
    config = _read_json(folder / files.CONFIG)
    info = _run_info(folder, config)
    done = _read_json(folder / files.DONE)
    info = replace(info, config=config, provenance=_provenance(folder), done=done)
    table.runs.append(info)
    evaluation = _read_json(folder / files.evaluation_report(files.TEST_SPLIT))
    for key, value in sorted((evaluation.get("results") or {}).items()):
        number = _number(value)
        if number is None and value is not None:
            continue  # strings (settings such as the empty-mask policy)
        metric, reduction, group = split_key(key)
        table.rows.append(
            ResultRow(info.name, info.model, info.loss, info.seed, metric, reduction, group, number)
        )
    table.per_image[info.name] = _read_csv(folder / files.per_image_table(files.TEST_SPLIT))
    table.per_case[info.name] = _read_per_case(folder / files.per_case_table(files.TEST_SPLIT))
    table.logs[info.name] = _read_csv(folder / files.LOG_CSV)


def _run_info(folder: Path, config: dict[str, Any]) -> RunInfo:
    """Model, loss, seed and fold from config.json, else from the run folder's name
    (``{model}-{loss}-s{seed}``, with ``-f{fold}`` under cross-validation)."""
    name = folder.name
    suffix = _FOLD_SUFFIX.search(name)
    stem = name[: suffix.start()] if suffix else name
    fold: int | None = int(suffix.group(1)) if suffix else None
    if config.get("split") == "cv" and config.get("cv_fold") is not None:
        fold = int(config["cv_fold"])
    model, loss, seed = config.get("model"), config.get("loss"), config.get("seed")
    if model is None or loss is None or seed is None:
        head, _, seed_text = stem.rpartition("-s")
        model_part, _, loss_part = head.partition("-")
        model, loss = model or model_part, loss or loss_part
        seed = seed if seed is not None else int(seed_text or 0)
    return RunInfo(name, str(model), str(loss), int(seed), folder, fold=fold)


def _provenance(folder: Path) -> dict[str, Any] | None:
    from calfseg.train.provenance import read_provenance

    return read_provenance(folder)  # a ProvenanceError (a ValueError) names the file


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise DataValueError(f"{path}: not readable JSON ({err})") from err
    return data if isinstance(data, dict) else {}


def _failure(path: Path) -> str:
    try:
        return str(_read_json(path).get("error", "unknown error"))
    except (OSError, ValueError) as err:
        return f"unreadable {path.name}: {err}"


def _read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV file with numeric cells as numbers and empty cells as None."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [_converted(row) for row in csv.DictReader(handle)]


def _converted(row: dict[str, str]) -> dict[str, Any]:
    return {k: v if k in TEXT_COLUMNS else _cell(v) for k, v in row.items()}


def _read_per_case(path: Path) -> list[dict[str, Any]]:
    """The per-case rows of a finished run, which every verdict rests on: missing, unreadable
    or without the case and its counts (or its Dice), the run cannot be reported."""
    if not path.is_file():
        raise BenchmarkError(
            f"{path.parent.name} has a {files.DONE} but no {path.name}; retrain it "
            "(calf benchmark ... --overwrite) or move the run folder out of runs/"
        )
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            counts = {"tp", "fp", "fn"} <= set(header)
            if "case_id" not in header or not (counts or "dice" in header):
                raise BenchmarkError(
                    f"{path}: not a per-case table (columns {', '.join(header) or 'none'}; "
                    "expected case_id and tp, fp, fn or dice)"
                )
            return [_converted(row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise BenchmarkError(f"{path}: not a readable CSV ({err})") from err


def _cell(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    if math.isfinite(value) and value.is_integer() and "." not in text and "e" not in text:
        return int(value)
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _write_results(path: Path, table: ResultsTable) -> None:
    with atomic_text(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(RESULT_COLUMNS)
        for r in table.rows:
            value = "" if r.value is None else repr(r.value)
            writer.writerow([r.run, r.model, r.loss, r.seed, r.metric, r.reduction, r.group, value])


def _write_per_image(path: Path, table: ResultsTable) -> None:
    columns: list[str] = []
    for rows in table.per_image.values():
        for key in rows[0] if rows else ():
            if key not in columns:
                columns.append(key)
    with atomic_text(path) as handle:
        writer = csv.writer(handle)
        writer.writerow([*RUN_COLUMNS, *columns])
        for info in table.runs:
            for row in table.per_image.get(info.name, []):
                cells = ["" if row.get(c) is None else row.get(c) for c in columns]
                writer.writerow([info.name, info.model, info.loss, info.seed, *cells])


def _write_per_case(path: Path, table: ResultsTable) -> None:
    from calfseg.train.evaluate import PER_CASE_COLUMNS

    with atomic_text(path) as handle:
        writer = csv.writer(handle)
        writer.writerow([*PER_CASE_RUN_COLUMNS, *PER_CASE_COLUMNS])
        for info in table.runs:
            fold = "" if info.fold is None else info.fold
            for row in table.per_case.get(info.name, []):
                cells = ["" if row.get(c) is None else row.get(c) for c in PER_CASE_COLUMNS]
                writer.writerow([info.name, info.model, info.loss, info.seed, fold, *cells])


def _unique(values: Any) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def _ordered(names: list[str], order: tuple[str, ...]) -> list[str]:
    rank = {name: i for i, name in enumerate(order)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))
