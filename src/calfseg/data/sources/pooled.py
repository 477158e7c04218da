"""Several dataset roots read as one source, the way the paper pools its four datasets
(UPENN-GBM, UCSF-PDGM, BraTS, LGG-1p19qDeletion) into one training and one test set.

Each root is read by its own layout (detected, or named). A case keeps its layout as its
``dataset`` (so splits are stratified by dataset) and its id is prefixed with it,
``lgg-1p19q/LGG-104``, so that ids are unique across the pool, for per-case metrics too.
Two roots of one layout would give one dataset name twice, and are refused: put their case
folders under one root instead (every reader also looks one folder level down).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from calfseg.data.sources.base import CaseError, CaseFiles, CaseVolumes, SourceReader
from calfseg.errors import DataValueError, OptionError, unknown_choice

SEPARATOR = "/"  # between the dataset and the case id of a pooled case


def pooled_id(dataset: str, case_id: str) -> str:
    """The id of a case in a pool: ``<dataset>/<case id>``."""
    return f"{dataset}{SEPARATOR}{case_id}"


def accepted_options(cls: type[SourceReader]) -> set[str]:
    """The keyword options a reader class takes."""
    return {
        p.name
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


class PooledSource(SourceReader):
    """The cases of several ``(reader, root)`` members; ``find_cases`` ignores its root."""

    name = "pooled"
    description = "several dataset folders, each read by its own layout"

    def __init__(self, members: Sequence[tuple[SourceReader, Path]]) -> None:
        names = [reader.name for reader, _ in members]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            roots = ", ".join(str(r) for reader, r in members if reader.name in twice)
            raise DataValueError(
                f"several folders have the layout {', '.join(twice)} ({roots}); pooling takes "
                "one folder per dataset: put their case folders under one folder"
            )
        self.members = {reader.name: (reader, Path(root)) for reader, root in members}

    @classmethod
    def detect(cls, root: Path) -> bool:
        return False  # made from several roots, never detected in one

    def find_cases(self, root: Path | None = None) -> list[CaseFiles]:
        cases = []
        for dataset, (reader, member_root) in self.members.items():
            for case in reader.find_cases(member_root):
                patient = None if case.patient_id is None else pooled_id(dataset, case.patient_id)
                cases.append(
                    replace(case, case_id=pooled_id(dataset, case.case_id), patient_id=patient)
                )
        return sorted(cases, key=lambda c: c.case_id)

    def load(self, case: CaseFiles) -> CaseVolumes:
        member = self.members.get(case.dataset)
        prefix = pooled_id(case.dataset, "")
        if member is None or not case.case_id.startswith(prefix):
            raise CaseError(case.case_id, f"not a case of the pooled datasets {list(self.members)}")
        original = case.patient_id
        inner = replace(
            case,
            case_id=case.case_id[len(prefix) :],
            patient_id=None if original is None else original[len(prefix) :],
        )
        try:
            volumes = member[0].load(inner)
        except CaseError as err:  # name the case as the pool does
            raise CaseError(case.case_id, err.reason, err.path) from err
        volumes.case_id = case.case_id
        return volumes


def open_pooled(
    roots: Sequence[str | Path], layouts: Sequence[str] | None = None, **options: Any
) -> tuple[PooledSource, str]:
    """The pool of ``roots``, each read by the layout of the same position in ``layouts``
    (``"auto"`` or absent: detected), and a message naming each root's layout.

    ``options`` go to every member whose layout takes them (``labels=`` to upenn-gbm,
    ``manifest=`` to folder, ``modalities=`` to all).

    Raises:
        ValueError: fewer than two roots, a ``layouts`` list of another length, a layout
            that no root can be read with, two roots of one layout, or an option that no
            member takes.
        FileNotFoundError: a root does not exist.
    """
    from calfseg.data.sources import AUTO, SOURCES, detect_layout

    if len(roots) < 2:
        raise OptionError(f"pooling needs at least two dataset folders, got {len(roots)}")
    names = list(layouts) if layouts is not None else [AUTO] * len(roots)
    if len(names) != len(roots):
        raise OptionError(
            f"--layout lists {len(names)} layout(s) for {len(roots)} folders: give one per "
            "folder (comma-separated, in the same order) or auto"
        )
    members: list[tuple[SourceReader, Path]] = []
    lines = []
    used: set[str] = set()
    for root, name in zip(roots, names, strict=True):
        how = "given"
        if name == AUTO:
            name, how = detect_layout(root), "detected"
        cls = SOURCES.get(name)
        if cls is None:
            raise unknown_choice("layout", name, SOURCES, valid="known layouts")
        mine = {k: v for k, v in options.items() if k in accepted_options(cls)}
        used.update(mine)
        members.append((cls(**mine), Path(root)))
        lines.append(f"{root} -> {name} ({how})")
    unused = sorted(set(options) - used)
    if unused:
        raise OptionError(
            f"no pooled layout takes the option(s) {', '.join(unused)} "
            f"(layouts: {', '.join(reader.name for reader, _ in members)})"
        )
    pool = PooledSource(members)
    return pool, f"pooling {len(members)} datasets: " + "; ".join(lines)
